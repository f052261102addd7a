"""Radiometry as real Sentinel-2 delivers it, drawn at random for training: path radiance, illumination, haze.

Why: networks trained on one synthetic radiometry learn its absolute
brightness instead of shapes. On real L1C (top of atmosphere) every pixel
carries an additive path radiance, strongest in B02; a road detector trained
on surface reflectance then sees "asphalt-bright blue" everywhere
(``docs/results/real_scenes.md``: 77-91 % of object-free land flagged as road
on real L1C, ~0 % after a dark-object subtraction of the same scenes). Drawing
the radiometry a patch could have been delivered with makes that cue useless,
so the network must use shape and context.

The model, in reflectance units, per band ``b`` of centre wavelength ``l_b``:

    x' = g * j_b * t_b * ((1 - h) * x + h * c_b) + a * (l_b / 490 nm) ** -k

* ``a`` path radiance in B02 (uniform in 0..``path_radiance``); the other bands
  get less, as scattering falls with wavelength (``k`` = 2.5 fits the dark-object
  offsets of the real L1C scene in the evaluation: B03/B02 0.68, B04/B02 0.45,
  B08/B02 0.29; Rayleigh alone would be 4, aerosols bring it down);
* ``g`` illumination (sun elevation and season), ``j_b`` a small per-band gain;
* ``t_b = 1 - d * (l_b / 490 nm) ** -k`` the two-way transmittance, ``d`` uniform in
  0..``transmittance``: scattering that adds path radiance also takes contrast away,
  most in the blue. ESA's own L1C and L2A of one acquisition put the slope of L1C on
  L2A at 0.52-0.67 in B02 and 0.71-0.75 in B08 (``docs/results/l1c_l2a.md``), below
  what ``g * j_b`` alone drew;
* ``h`` haze: a blend toward a bright, nearly flat spectrum ``c_b``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..io.sentinel2 import wavelength_of

__all__ = ["RadiometricJitter", "band_wavelengths"]

#: Reference wavelength of the path-radiance law (B02's nominal centre, nm).
_REF_NM = 490.0
#: Wavelength assumed for a band without an S-2 name (the study's NIR band).
_DEFAULT_NM = 842.0


def band_wavelengths(names: Sequence[Optional[str]]) -> np.ndarray:
    """Centre wavelengths (nm) of named bands; an unnamed band is taken for NIR (B08)."""
    return np.array([wavelength_of(n) or _DEFAULT_NM for n in names], np.float32)


@dataclass(frozen=True)
class RadiometricJitter:
    """How much the delivered radiometry of a training patch may vary (see the module docstring).

    ``prob``: share of patches changed (0 switches it off); ``path_radiance``:
    largest additive offset in B02 (reflectance); ``gain``: range of the
    illumination factor; ``band_gain``: half-width of the per-band gain;
    ``haze``: largest blend toward the haze spectrum; ``exponent``: ``k``;
    ``transmittance``: largest loss of contrast in B02 (``d``; 0 leaves it out and draws
    the same numbers as before it existed).
    """

    prob: float = 0.0
    path_radiance: float = 0.12
    gain_low: float = 0.75
    gain_high: float = 1.3
    band_gain: float = 0.05
    haze: float = 0.15
    exponent: float = 2.5
    transmittance: float = 0.4

    def __post_init__(self) -> None:
        for name in ("prob", "path_radiance", "band_gain", "haze", "transmittance"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name}: must be between 0 and 1 (got {value})")
        if not (0.0 < self.gain_low <= self.gain_high <= 4.0):
            raise ValueError(f"gain_low/gain_high: need 0 < low <= high <= 4 "
                             f"(got {self.gain_low}, {self.gain_high})")
        if not (0.0 <= self.exponent <= 6.0):
            raise ValueError(f"exponent: must be between 0 and 6 (got {self.exponent})")

    @property
    def active(self) -> bool:
        return self.prob > 0.0

    def apply(self, image: np.ndarray, wavelengths: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``image [C, H, W]`` (reflectance) as it might have been delivered; unchanged with probability 1 - prob.

        NaN stays NaN (nodata is not invented); values stay >= 0.
        """
        if not self.active or rng.random() >= self.prob:
            return image
        shape = (-1, 1, 1)
        scatter = (wavelengths / _REF_NM) ** -self.exponent
        offset = rng.uniform(0.0, self.path_radiance) * scatter
        gain = rng.uniform(self.gain_low, self.gain_high) * (
            1.0 + rng.uniform(-self.band_gain, self.band_gain, size=len(wavelengths)))
        if self.transmittance > 0.0:
            gain = gain * (1.0 - rng.uniform(0.0, self.transmittance) * scatter)
        h = rng.uniform(0.0, self.haze)
        haze_colour = 0.25 + 0.1 * scatter  # bright, a little bluer than flat
        out = gain.reshape(shape) * ((1.0 - h) * image + h * haze_colour.reshape(shape)) + offset.reshape(shape)
        return np.maximum(out, 0.0).astype(image.dtype, copy=False)
