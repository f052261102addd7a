"""Urban materials of world v3 in Sentinel-2's four 10 m bands, and which roofs each kind of city uses.

Why a table of its own: a city seen at 3.33 m is mostly roofs and pavements,
and their colours decide whether a network learns "bright rectangle = building"
or the real variety (dark bitumen, red tile, rusty and shiny sheet metal,
white paint, sandy plaster). Values are bottom-of-atmosphere reflectances
(0..1) in B02 (490 nm), B03 (560 nm), B04 (665 nm), B08 (842 nm), read by eye
off published spectra and averaged over each band's width ("convolved
approximately"); the comment on every row names the source family. They are
approximations for training data, not a calibration. docs/world_v3.md lists
the sources in full.

Sources (abbreviations used in the rows):

* ECO: the ECOSTRESS spectral library (Meerdink et al. 2019; formerly ASTER,
  Baldridge et al. 2009), man-made materials and soils;
* USGS: the USGS spectral library version 7 (splib07, Kokaly et al. 2017),
  chapter "Artificial materials" (coatings, construction materials);
* H04: Herold, Roberts, Gardner and Dennison 2004, "Spectrometry for urban
  area remote sensing", Remote Sensing of Environment 91, field spectra of
  roofs and roads in Santa Barbara;
* K14: Kotthaus, Smith, Wooster and Grimmond 2014, "Derivation of an urban
  materials spectral library through emittance and reflectance
  spectroscopy", ISPRS J. Photogramm. 94, laboratory spectra of London
  roofing and paving materials.
"""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from .spectra import SPECTRA, Spectrum

__all__ = ["URBAN_SPECTRA", "ROOF_MIX", "urban_sample", "choose"]

URBAN_SPECTRA: Dict[str, Spectrum] = {
    # --- roofs
    "roof_concrete": Spectrum((0.160, 0.180, 0.195, 0.225), 0.12, 0.03, "ECO concrete (grey, weathered); H04 concrete roof"),
    "roof_concrete_light": Spectrum((0.240, 0.265, 0.285, 0.315), 0.10, 0.03, "USGS concrete (light grey); H04 new concrete"),
    "metal_galvanised": Spectrum((0.300, 0.325, 0.335, 0.355), 0.15, 0.03, "USGS galvanised sheet metal; H04 metal roofs"),
    "metal_rusty": Spectrum((0.060, 0.080, 0.125, 0.200), 0.15, 0.06, "rusted corrugated iron: iron-oxide slope of USGS "
                            "hematite/goethite coatings on H04 dark metal (approx.)"),
    "metal_painted_red": Spectrum((0.060, 0.050, 0.190, 0.330), 0.12, 0.06, "red paint on steel, K14 painted metal (approx.)"),
    "metal_painted_blue": Spectrum((0.140, 0.110, 0.075, 0.280), 0.12, 0.06, "blue paint on steel, K14 painted metal (approx.)"),
    "metal_painted_green": Spectrum((0.050, 0.090, 0.060, 0.170), 0.12, 0.06, "green paint on steel, K14 painted metal (approx.)"),
    "clay_tile": Spectrum((0.070, 0.090, 0.200, 0.310), 0.12, 0.05, "H04 red clay tile; ECO terracotta tile"),
    "clay_tile_aged": Spectrum((0.060, 0.075, 0.130, 0.220), 0.12, 0.05, "K14 weathered clay tile (darker, browner)"),
    "bitumen": Spectrum((0.045, 0.050, 0.055, 0.066), 0.12, 0.04, "K14 bitumen felt / membrane; USGS tar"),
    "asphalt_shingle": Spectrum((0.070, 0.075, 0.080, 0.098), 0.12, 0.04, "H04 composite shingle (grey); ECO roofing shingle"),
    "asphalt_shingle_brown": Spectrum((0.065, 0.078, 0.095, 0.130), 0.12, 0.05, "H04 composite shingle (brown)"),
    "white_paint": Spectrum((0.580, 0.620, 0.620, 0.600), 0.08, 0.03, "ECO white paint; H04 bright coated roofs"),
    "slate": Spectrum((0.065, 0.070, 0.075, 0.086), 0.10, 0.03, "K14 roofing slate"),
    "gravel_roof": Spectrum((0.130, 0.150, 0.170, 0.210), 0.12, 0.04, "H04 gravel (built-up) roof"),
    "sand_plaster": Spectrum((0.220, 0.270, 0.330, 0.385), 0.10, 0.04, "sand-coloured plaster / mud render: ECO light "
                             "aridisol shape (approx.)"),
    # --- roads, pavements, ground
    "asphalt_fresh": Spectrum((0.050, 0.055, 0.060, 0.070), 0.10, 0.03, "USGS asphalt (new, black); H04 new asphalt road"),
    "asphalt_aged": Spectrum((0.100, 0.112, 0.124, 0.140), 0.10, 0.03, "H04 aged asphalt road (brightens with age)"),
    "concrete_road": Spectrum((0.200, 0.228, 0.248, 0.278), 0.10, 0.03, "USGS concrete road (light grey); H04 concrete road"),
    "dirt_road": Spectrum((0.110, 0.140, 0.180, 0.230), 0.10, 0.04, "ECO compacted loam/sandy soil (approx.)"),
    "laterite_road": Spectrum((0.070, 0.090, 0.150, 0.220), 0.10, 0.05, "ECO red tropical soil (oxisol, iron-rich)"),
    "paving_stone": Spectrum((0.130, 0.148, 0.165, 0.190), 0.12, 0.04, "K14 concrete paving slabs / stone setts"),
    "desert_sand": Spectrum((0.200, 0.260, 0.320, 0.380), 0.10, 0.04, "ECO desert sand (quartz with iron stain)"),
    "artificial_turf": Spectrum((0.040, 0.075, 0.050, 0.150), 0.12, 0.06, "synthetic turf sports pitch (approx.)"),
    "pool_water": Spectrum((0.150, 0.165, 0.080, 0.030), 0.12, 0.06, "clear pool water over a pale floor: ECO water plus "
                           "a bright bottom (approx.)"),
    "ship_deck": Spectrum((0.090, 0.085, 0.080, 0.090), 0.20, 0.10, "painted steel deck (approx.)"),
}

#: Roof materials per building class: ((material, share), ...).
ROOF_MIX: Dict[str, Tuple[Tuple[str, float], ...]] = {
    "european": (("clay_tile", 0.35), ("clay_tile_aged", 0.2), ("slate", 0.2), ("metal_galvanised", 0.1),
                 ("bitumen", 0.1), ("roof_concrete", 0.05)),
    "informal": (("metal_rusty", 0.5), ("metal_galvanised", 0.2), ("metal_painted_blue", 0.07),
                 ("metal_painted_red", 0.05), ("roof_concrete", 0.13), ("clay_tile_aged", 0.05)),
    "informal_dry": (("roof_concrete", 0.4), ("sand_plaster", 0.2), ("clay_tile_aged", 0.12), ("metal_rusty", 0.13),
                     ("metal_galvanised", 0.1), ("white_paint", 0.05)),
    "tower": (("roof_concrete", 0.35), ("roof_concrete_light", 0.2), ("white_paint", 0.15), ("bitumen", 0.15),
              ("gravel_roof", 0.1), ("metal_galvanised", 0.05)),
    "house": (("clay_tile", 0.3), ("asphalt_shingle", 0.25), ("asphalt_shingle_brown", 0.2), ("clay_tile_aged", 0.1),
              ("metal_painted_red", 0.05), ("white_paint", 0.05), ("slate", 0.05)),
    "slab": (("bitumen", 0.35), ("roof_concrete", 0.3), ("gravel_roof", 0.15), ("metal_painted_blue", 0.08),
             ("metal_painted_green", 0.05), ("white_paint", 0.07)),
    "warehouse": (("metal_galvanised", 0.35), ("white_paint", 0.2), ("roof_concrete", 0.15), ("bitumen", 0.1),
                  ("metal_painted_blue", 0.1), ("metal_painted_red", 0.05), ("metal_painted_green", 0.05)),
    "desert": (("sand_plaster", 0.5), ("roof_concrete_light", 0.25), ("white_paint", 0.1), ("roof_concrete", 0.15)),
    "tropical": (("clay_tile", 0.3), ("metal_rusty", 0.2), ("metal_galvanised", 0.2), ("metal_painted_red", 0.1),
                 ("roof_concrete", 0.1), ("metal_painted_blue", 0.05), ("clay_tile_aged", 0.05)),
}


def urban_sample(name: str, n: int, rng: np.random.Generator, bright_scale: float = 1.0) -> np.ndarray:
    """``n`` spectra [n, 4] of ``name`` from this table or world v2's (same model as :func:`.spectra.sample`)."""
    s = URBAN_SPECTRA.get(name) or SPECTRA[name]
    mean = np.asarray(s.mean, np.float32)
    common = np.exp(s.bright * bright_scale * rng.standard_normal((n, 1)))
    tint = np.exp(s.tint * rng.standard_normal((n, 4)))
    return (mean[None] * common * tint).astype(np.float32)


def choose(rng: np.random.Generator, mix: Tuple[Tuple[str, float], ...], n: int) -> np.ndarray:
    """``n`` material names drawn from ``mix`` (object array of str)."""
    names, p = zip(*mix)
    p = np.asarray(p, np.float64)
    return np.asarray(names, object)[rng.choice(len(names), size=n, p=p / p.sum())]
