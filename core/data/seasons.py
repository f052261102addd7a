"""Seasons the simulator's summer land never shows, drawn at random for training: snow, frost, dry season, burnt and flooded land, leaf-off winter.

Why: the segmenters learned world v2/v3 in one green season. On a real snowy
February patch (``docs/results/real_scenes.md``, the bigearthnet scene) the
buildings network flags a quarter of the land, because bright, flat, cold
surfaces were never shown to it as "not a building". Drawing the season a patch
could have been seen in teaches it that land cover changes while objects and
their masks do not.

What each season does to a patch ``x [C, H, W]`` (reflectance, bands named so
that B04 and B08 can be found; other bands follow the nearest of them):

* **snow**: a smooth random cover field over the land, thinner under canopy
  (NDVI), blended toward a snow spectrum (bright, a little darker in NIR). Roads
  are mostly ploughed (they keep at most a third of the cover), roofs keep a
  random share of it: a snowy roof is still a building in the mask.
  With ``shade`` (off by default), part of the snowy land lies in the shade of
  terrain and trees at a low winter sun: lit by the blue sky only, it is grey-blue
  and dark in NIR (B02 > B03 > B04 > B08). Why: on a real snowy February patch
  (bigearthnet, sun about 10 degrees high) a buildings network that had learned
  cities' grey and blue roofs called such shaded snow a building.
* **frost**: a light, even whitening of vegetation.
* **dry**: vegetation browns: NIR falls, red rises.
* **burnt**: smooth patches of non-object land turn to dark char (low NIR).
* **flood**: smooth patches of non-object land turn to turbid water.
* **dormant**: a temperate winter without snow. Leafless trees, dormant grass and
  bare or barely green fields lose most of their near-infrared (real February land
  near Brandenburg reads NDVI 0.1-0.3, against 0.6-0.8 in the simulated summer)
  and turn a little browner. Why it matters: in summer a roof is the NIR-dark
  spot among bright vegetation, and a network trained only on summer learns that
  cue; in winter the cue is gone (the roofs are as NIR-bright as the land around
  them) and the houses must be found by their visible contrast and shape.

Objects (the union of the scene's masks) are never burnt or flooded: the masks
would then lie.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
from scipy.ndimage import gaussian_filter

from ..models.card import SEASON_NAMES

__all__ = ["SeasonJitter", "SEASONS"]

#: The seasons that can be drawn, in the order of ``SeasonJitter.weights`` (named once, where cards read them).
SEASONS: Tuple[str, ...] = SEASON_NAMES

#: Reflectance spectra at the four 10 m bands' wavelengths (B02, B03, B04, B08), from
#: the USGS spectral library's broad shapes: snow bright and flat with a NIR dip,
#: char dark and flat, turbid water darkest in NIR.
_SNOW = np.array([1.0, 0.99, 0.97, 0.87], np.float32)
_CHAR = np.array([0.035, 0.04, 0.045, 0.07], np.float32)
_WATER = np.array([0.06, 0.07, 0.05, 0.02], np.float32)
#: snow in the shade, lit only by the sky (reflectance as the image shows it, relative to the sunlit land):
#: diffuse skylight is strongest in the blue and weak in the NIR, so shaded snow is grey-blue and NIR-dark
_SHADED_SNOW = np.array([0.32, 0.24, 0.17, 0.09], np.float32)
_WAVELENGTHS = np.array([490.0, 560.0, 665.0, 842.0], np.float32)


def _spectrum(spectrum: np.ndarray, wavelengths: np.ndarray) -> np.ndarray:
    """A four-band spectrum at other bands' wavelengths (linear in wavelength, flat outside)."""
    return np.interp(wavelengths, _WAVELENGTHS, spectrum).astype(np.float32)


def _smooth_field(shape: Tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A smooth random field in [0, 1] whose blobs are a sixth to a third of the patch wide."""
    h, w = shape
    sigma = max(2.0, min(h, w) * rng.uniform(1 / 12, 1 / 6))
    f = gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    lo, hi = float(f.min()), float(f.max())
    return (f - lo) / (hi - lo) if hi > lo else np.full(shape, 0.5, np.float32)


@dataclass(frozen=True)
class SeasonJitter:
    """How often, and which, seasons are drawn for a training patch (see the module docstring).

    ``prob``: share of patches changed (0 switches it off); ``weights``: relative
    odds of snow, frost, dry, burnt, flood and dormant (five odds, as older recipes
    hold, mean no dormant season: such a recipe draws exactly what it drew before).
    The dormant season is off by default: on the real February village of
    ``docs/results/real_scenes.md`` a buildings network fine-tuned with it found
    fewer houses, not more (``docs/results/segmenters.md``, "A buildings network
    for cities and villages").
    """

    prob: float = 0.0
    weights: Tuple[float, ...] = (3.0, 1.0, 2.0, 1.0, 1.0, 0.0)
    #: share of snowy patches with part of their snow in the shade (0: every draw as before it existed)
    shade: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.prob) and 0.0 <= self.prob <= 1.0):
            raise ValueError(f"prob: must be between 0 and 1 (got {self.prob})")
        w = tuple(float(x) for x in self.weights)
        if len(w) == len(SEASONS) - 1:  # recipes from before the dormant season: it was never drawn
            w = w + (0.0,)
        if not (math.isfinite(self.shade) and 0.0 <= self.shade <= 1.0):
            raise ValueError(f"shade: must be between 0 and 1 (got {self.shade})")
        if len(w) != len(SEASONS) or any(not math.isfinite(x) or x < 0 for x in w) or sum(w) <= 0:
            raise ValueError(f"weights: need {len(SEASONS)} non-negative odds ({', '.join(SEASONS)}), "
                             f"not all zero (got {list(self.weights)})")
        object.__setattr__(self, "weights", w)  # YAML gives a list

    @property
    def active(self) -> bool:
        return self.prob > 0.0

    def draw(self, rng: np.random.Generator) -> Optional[str]:
        """The season of one patch, or None (unchanged) with probability 1 - prob."""
        if not self.active or rng.random() >= self.prob:
            return None
        p = np.asarray(self.weights, np.float64)
        return SEASONS[int(rng.choice(len(SEASONS), p=p / p.sum()))]

    def apply(self, image: np.ndarray, wavelengths: Sequence[float], buildings: np.ndarray, roads: np.ndarray,
              rng: np.random.Generator) -> np.ndarray:
        """``image [C, H, W]`` seen in a drawn season; unchanged with probability 1 - prob.

        ``buildings``/``roads``: the patch's object masks ``[H, W]`` (all False
        where a scene has no such mask). NaN stays NaN; values stay >= 0.
        """
        season = self.draw(rng)
        if season is None:
            return image
        return apply_season(season, image, np.asarray(wavelengths, np.float32), np.asarray(buildings, bool),
                            np.asarray(roads, bool), rng, shade=self.shade).astype(image.dtype, copy=False)


def _ndvi(image: np.ndarray, wavelengths: np.ndarray) -> np.ndarray:
    red = image[int(np.argmin(np.abs(wavelengths - 665.0)))]
    nir = image[int(np.argmin(np.abs(wavelengths - 842.0)))]
    return np.nan_to_num((nir - red) / np.maximum(nir + red, 1e-4))


def apply_season(season: str, image: np.ndarray, wavelengths: np.ndarray, buildings: np.ndarray,
                 roads: np.ndarray, rng: np.random.Generator, shade: float = 0.0) -> np.ndarray:
    """One season on one patch (see the module docstring); ``season`` is one of ``SEASONS``.

    ``shade``: probability that a snowy patch has part of its open land's snow in the shade.
    """
    x = image.astype(np.float32, copy=True)
    shape = x.shape[1:]
    objects = buildings | roads
    ndvi = _ndvi(x, wavelengths)
    canopy = np.clip((ndvi - 0.4) / 0.4, 0.0, 1.0)
    if season in ("snow", "frost"):
        if season == "snow":
            cover = np.clip(_smooth_field(shape, rng) * 1.6 - 0.6 + rng.uniform(0.3, 0.9), 0.0, 1.0)
            cover = cover * (1.0 - rng.uniform(0.4, 0.8) * canopy)
            cover = np.where(roads, cover * rng.uniform(0.0, 0.35), cover)
            cover = np.where(buildings, cover * rng.uniform(0.0, 1.0), cover)
            white = (_spectrum(_SNOW, wavelengths) * np.float32(rng.uniform(0.55, 0.95)))[:, None, None]
            if shade > 0.0 and rng.random() < shade:  # drawn only when asked: older recipes draw as before
                share = rng.uniform(0.2, 0.6)
                field = _smooth_field(shape, rng)
                shaded = gaussian_filter((field > np.quantile(field, 1.0 - share)).astype(np.float32), 1.0)
                shaded = np.where(objects, 0.0, shaded)[None]
                dark = _spectrum(_SHADED_SNOW, wavelengths) * np.float32(rng.uniform(0.6, 1.4))
                white = (1.0 - shaded) * white + shaded * dark[:, None, None]
        else:
            cover = np.where(objects, 0.0, canopy + 0.5 * (1 - canopy)) * rng.uniform(0.1, 0.3)
            white = (_spectrum(_SNOW, wavelengths) * np.float32(rng.uniform(0.6, 0.9)))[:, None, None]
        x = (1.0 - cover) * x + cover * white
    elif season == "dormant":
        # vegetation (by its summer NDVI) loses NIR down to a winter NDVI, visible bands rise a little
        green = np.where(objects, 0.0, np.clip(ndvi / 0.6, 0.0, 1.0))
        gain = np.interp(wavelengths, _WAVELENGTHS,
                         [rng.uniform(1.0, 1.3), rng.uniform(0.95, 1.25), rng.uniform(1.1, 1.6), rng.uniform(0.35, 0.6)])
        x = x * (1.0 + green * (gain.astype(np.float32)[:, None, None] - 1.0))
    elif season == "dry":
        green = np.where(objects, 0.0, np.clip(ndvi / 0.6, 0.0, 1.0))
        gain = np.interp(wavelengths, _WAVELENGTHS,
                         [1.0, rng.uniform(1.0, 1.2), rng.uniform(1.15, 1.6), rng.uniform(0.5, 0.8)])
        x = x * (1.0 + green * (gain.astype(np.float32)[:, None, None] - 1.0))
    else:  # burnt or flooded patches of open land
        share = rng.uniform(0.1, 0.5)
        field = _smooth_field(shape, rng)
        patch = (field > np.quantile(field, 1.0 - share)) & ~objects
        edge = gaussian_filter(patch.astype(np.float32), 1.0)  # a soft shore or burn scar edge
        edge = np.where(objects, 0.0, edge)
        target = _CHAR if season == "burnt" else _WATER
        spectrum = _spectrum(target, wavelengths) * np.float32(rng.uniform(0.8, 1.4))
        x = (1.0 - edge) * x + edge * spectrum[:, None, None]
    x = np.maximum(x, 0.0)
    x[np.isnan(image)] = np.nan
    return x
