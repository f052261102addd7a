"""Surface reflectance of the synthetic world in Sentinel-2's four 10 m bands.

Why a table of its own: every land-cover class, road surface and roof of
world v2 takes its colour from here, and docs/world_v2.md quotes these
numbers with their provenance. Values are typical L2A bottom-of-atmosphere
reflectances (0..1) in B02 (490 nm), B03 (560 nm), B04 (665 nm) and B08
(842 nm), read off published spectral libraries (USGS splib07, ECOSTRESS) and
Sentinel-2 studies, band-averaged by eye; they are approximations, not a
calibration.

Each entry is a *sunlit, flat* surface. Shading (terrain, crowns, cast
shadows) is applied later by the renderer, so canopy entries are a little
brighter than the mean of a forest pixel in a real image.

Variation: :func:`sample` draws one spectrum per parcel or object as the mean
times a common brightness factor (log-normal, ``bright`` = its sigma, as
materials of one kind vary mostly in albedo) times a small independent
per-band factor (``tint``), which keeps the spectral *shape* of the class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

from ...io.sentinel2 import BANDS_10M, NOMINAL_WAVELENGTH_NM

__all__ = ["BANDS", "WAVELENGTHS_NM", "Spectrum", "SPECTRA", "AMBIENT", "sample", "spectrum"]

BANDS: Tuple[str, ...] = BANDS_10M
WAVELENGTHS_NM: Tuple[int, ...] = tuple(int(NOMINAL_WAVELENGTH_NM[b]) for b in BANDS_10M)

#: Share of the illumination that is diffuse sky light per band: what a fully
#: shadowed surface still receives. Sky light is blue, so blue shadows are the
#: least dark; NIR shadows in canopies stay lit by light scattered by leaves.
AMBIENT = np.array([0.42, 0.32, 0.27, 0.30], np.float32)


@dataclass(frozen=True)
class Spectrum:
    """Mean reflectance in (B02, B03, B04, B08), brightness sigma, per-band tint sigma, provenance note."""

    mean: Tuple[float, float, float, float]
    bright: float
    tint: float
    note: str


# Grouped as in docs/world_v2.md. "approx." marks values set from the general
# shape of a library family rather than read from a specific measurement.
SPECTRA: Dict[str, Spectrum] = {
    # --- vegetation end-members (full cover, sunlit)
    "crop_green": Spectrum((0.030, 0.065, 0.035, 0.43), 0.10, 0.08, "green cereal/maize canopy, S-2 crop studies"),
    "grass_green": Spectrum((0.034, 0.072, 0.045, 0.37), 0.10, 0.08, "managed grassland, ECOSTRESS grass"),
    "straw": Spectrum((0.100, 0.135, 0.165, 0.27), 0.12, 0.05, "senescent cereal / stubble, USGS dry grass"),
    "hay": Spectrum((0.070, 0.095, 0.105, 0.25), 0.12, 0.06, "cut grass drying (approx., between grass and straw)"),
    "rape_flower": Spectrum((0.045, 0.125, 0.105, 0.38), 0.08, 0.06, "flowering oilseed rape, S-2 crop studies"),
    "understory": Spectrum((0.035, 0.055, 0.045, 0.22), 0.15, 0.08, "forest floor with litter and herbs (approx.)"),
    "leaf_deciduous": Spectrum((0.030, 0.062, 0.034, 0.40), 0.10, 0.07, "broadleaf canopy (oak, beech), ECOSTRESS"),
    "leaf_conifer": Spectrum((0.020, 0.038, 0.021, 0.205), 0.10, 0.07, "pine/spruce canopy, ECOSTRESS needles + canopy"),
    "branches": Spectrum((0.045, 0.055, 0.065, 0.15), 0.12, 0.05, "leaf-off broadleaf crowns (approx.)"),
    "autumn_leaf": Spectrum((0.040, 0.070, 0.090, 0.31), 0.12, 0.08, "yellowing broadleaf canopy (approx.)"),
    "shrub": Spectrum((0.028, 0.055, 0.034, 0.33), 0.12, 0.08, "hazel/blackthorn/willow scrub (approx.)"),
    "reed": Spectrum((0.035, 0.065, 0.050, 0.31), 0.10, 0.07, "green common reed, wetland spectra"),
    "reed_dry": Spectrum((0.095, 0.115, 0.135, 0.23), 0.12, 0.05, "last year's reed stems (approx.)"),
    "bog_moss": Spectrum((0.034, 0.057, 0.050, 0.22), 0.12, 0.08, "Sphagnum lawn with dwarf shrubs, peatland studies"),
    "sedge": Spectrum((0.036, 0.066, 0.052, 0.29), 0.10, 0.07, "wet sedge meadow (approx.)"),
    # --- soils (dry-ish surface; wetness darkens them per pixel)
    "soil_loam": Spectrum((0.080, 0.110, 0.140, 0.215), 0.15, 0.04, "brown loam, USGS/ECOSTRESS soils"),
    "soil_sand": Spectrum((0.120, 0.160, 0.200, 0.270), 0.12, 0.04, "light sandy soil, ECOSTRESS soils"),
    "soil_dark": Spectrum((0.050, 0.065, 0.080, 0.130), 0.15, 0.05, "humic / moist dark soil, USGS soils"),
    "soil_loess": Spectrum((0.100, 0.140, 0.180, 0.250), 0.12, 0.04, "loess-derived soil, ECOSTRESS soils"),
    "mud": Spectrum((0.040, 0.050, 0.058, 0.080), 0.15, 0.06, "wet mud / peat at a shore (approx.)"),
    # --- water (deep, optically; shallow water adds some bottom signal per pixel)
    "water_clear": Spectrum((0.038, 0.032, 0.016, 0.008), 0.15, 0.08, "clear lake, S-2 water studies"),
    "water_humic": Spectrum((0.016, 0.019, 0.014, 0.006), 0.15, 0.08, "brown humic (bog) lake, S-2 water studies"),
    "water_green": Spectrum((0.025, 0.040, 0.022, 0.013), 0.15, 0.10, "eutrophic lake with algae, S-2 water studies"),
    "water_turbid": Spectrum((0.055, 0.075, 0.066, 0.032), 0.15, 0.08, "sediment-laden river, S-2 water studies"),
    # --- man-made surfaces
    "asphalt_new": Spectrum((0.055, 0.060, 0.066, 0.076), 0.10, 0.03, "fresh asphalt, USGS/ECOSTRESS man-made"),
    "asphalt_old": Spectrum((0.100, 0.110, 0.122, 0.138), 0.10, 0.03, "weathered asphalt, ECOSTRESS man-made"),
    "concrete": Spectrum((0.190, 0.215, 0.235, 0.265), 0.10, 0.03, "road/pavement concrete, ECOSTRESS man-made"),
    "gravel": Spectrum((0.145, 0.170, 0.195, 0.235), 0.12, 0.04, "gravel track (approx.)"),
    "dirt_track": Spectrum((0.125, 0.155, 0.190, 0.240), 0.10, 0.04, "compacted dry soil track (approx., brighter than tilled soil)"),
    "ballast": Spectrum((0.105, 0.115, 0.125, 0.150), 0.10, 0.04, "rail ballast with sleepers and rails (approx.)"),
    "paving": Spectrum((0.120, 0.140, 0.155, 0.190), 0.12, 0.04, "yards, squares, cobbles (approx.)"),
    "roof_red_tile": Spectrum((0.070, 0.090, 0.180, 0.280), 0.12, 0.06, "red clay tile, ECOSTRESS man-made"),
    "roof_brown": Spectrum((0.050, 0.060, 0.085, 0.140), 0.12, 0.06, "brown tile / coated steel (approx.)"),
    "roof_graphite": Spectrum((0.060, 0.065, 0.070, 0.085), 0.12, 0.04, "dark grey coated steel / slate (approx.)"),
    "roof_asbestos": Spectrum((0.150, 0.165, 0.180, 0.230), 0.12, 0.04, "weathered fibre cement, ECOSTRESS man-made"),
    "roof_bitumen": Spectrum((0.045, 0.050, 0.055, 0.066), 0.10, 0.04, "tar paper / bitumen, USGS man-made"),
    "roof_metal": Spectrum((0.340, 0.360, 0.370, 0.390), 0.12, 0.03, "galvanised steel / aluminium, ECOSTRESS"),
    "roof_white": Spectrum((0.560, 0.580, 0.580, 0.550), 0.08, 0.03, "white membrane roof (approx.)"),
    "roof_concrete": Spectrum((0.180, 0.200, 0.220, 0.250), 0.10, 0.03, "flat concrete roof, ECOSTRESS man-made"),
    "roof_green": Spectrum((0.050, 0.090, 0.060, 0.120), 0.12, 0.06, "green painted metal (approx.)"),
    # --- atmosphere / clouds (used on the LR revisits only)
    "cloud": Spectrum((0.520, 0.500, 0.490, 0.500), 0.15, 0.02, "thick cumulus top, S-2 cloud studies"),
}


def spectrum(name: str) -> np.ndarray:
    """The mean spectrum of ``name`` as float32 [4]."""
    return np.asarray(SPECTRA[name].mean, np.float32)


def sample(name: str, n: int, rng: np.random.Generator, bright_scale: float = 1.0) -> np.ndarray:
    """``n`` spectra [n, 4] of class ``name``: mean x common brightness x small per-band tint."""
    s = SPECTRA[name]
    mean = np.asarray(s.mean, np.float32)
    common = np.exp(s.bright * bright_scale * rng.standard_normal((n, 1)))
    tint = np.exp(s.tint * rng.standard_normal((n, 4)))
    return (mean[None] * common * tint).astype(np.float32)
