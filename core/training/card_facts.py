"""What a card records about the data a network was trained on: its processing level and its reflectances.

Why: a network trained on surface reflectance (L2A, or the synthetic worlds'
L2A-like spectra) given top-of-atmosphere L1C paints roads over every bright
field (docs/results/real_scenes.md); the input checks
(:mod:`core.io.input_signs`) can only warn about that if the card says what
the network saw. Both facts are read from the training scenes themselves when
the card is written, never typed in a recipe.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from ..data.radiometric import RadiometricJitter, band_wavelengths
from ..data.scene import Scene
from ..data.seasons import SeasonJitter
from ..io.input_signs import band_statistics
from ..io.sentinel2 import band_key

__all__ = ["scene_level", "training_level", "training_stats", "STATS_PIXELS_PER_SCENE"]

#: Pixels per band and scene that the percentiles are computed on (a decimated read: seconds, not minutes).
STATS_PIXELS_PER_SCENE = 65536


def scene_level(scene: Scene) -> Optional[str]:
    """A scene's processing level: what its scene.json says (``extra.level``), else what its source implies.

    Synthetic scenes (world v1 towns, world v2) are drawn with surface
    reflectance spectra, so they count as L2A; MuS2 is built from L2A
    revisits. Anything else unknown (None).
    """
    extra = scene.extra or {}
    level = extra.get("level")
    if isinstance(level, str) and level.upper() in ("L1C", "L2A", "L1C+L2A"):
        return level.upper()
    if extra.get("synthetic") or extra.get("world"):
        return "L2A"
    if extra.get("source") == "MuS2":
        return "L2A"
    return None


def training_level(scenes: Sequence[Scene], jitter: Optional[RadiometricJitter] = None) -> Optional[str]:
    """The level of a set of training scenes: one level, ``L1C+L2A`` when both, None when any is unknown.

    ``jitter``: the recipe's ``data.radiometry``; when it adds path radiance to
    surface-reflectance patches, the network also saw L1C-like inputs.
    """
    found = set()
    for s in scenes:
        level = scene_level(s)
        if level is None:
            return None
        found.update(level.split("+"))
    if jitter is not None and jitter.active and jitter.path_radiance > 0 and "L2A" in found:
        found.add("L1C")
    return "+".join(sorted(found)) if found else None


def training_stats(scenes: Sequence[Scene], band_idx: Sequence[int], bands: Sequence[str], hr: bool,
                   jitter: Optional[RadiometricJitter] = None, seed: int = 0,
                   season: Optional[SeasonJitter] = None) -> Dict[str, Dict[str, float]]:
    """p2 / p50 / p98 reflectance per band of what the network read in training (HR images or LR revisits).

    ``band_idx``: the scene bands the network reads, named ``bands``.
    ``jitter``: the radiometry drawn for training patches (``data.radiometry``),
    applied to each scene's decimated HR image (or revisits) as training applies it to patches;
    ``season`` (``data.season``) likewise, before it, as light meets them: a network
    that learned snow must not be told a snowy scene lies outside what it saw.
    """
    names = [band_key(b) or str(b) for b in bands]
    wavelengths = band_wavelengths(list(bands))
    rng = np.random.default_rng(seed)
    per_band: List[List[np.ndarray]] = [[] for _ in names]
    for s in scenes:
        if hr:
            if s.hr is None:
                continue
            img = np.asarray(s.hr[list(band_idx)], np.float32)
            ok = np.asarray(s.hr_valid, bool) if s.hr_valid is not None else np.ones(img.shape[1:], bool)
            step = max(1, int(np.sqrt(ok.size / STATS_PIXELS_PER_SCENE)))
            img, ok = img[:, ::step, ::step], ok[::step, ::step]
            if season is not None and season.active:
                objects = [np.asarray(s.masks[k], bool)[::step, ::step] if k in s.masks
                           else np.zeros(ok.shape, bool) for k in ("buildings", "roads")]
                img = season.apply(img, wavelengths, objects[0], objects[1], rng)
            if jitter is not None and jitter.active:
                img = jitter.apply(img.copy(), wavelengths, rng)
            for k in range(len(names)):
                per_band[k].append(img[k][ok])
        else:
            ok = np.asarray(s.lr_valid, bool)
            lr = np.asarray(s.lr[:, list(band_idx)])
            if jitter is not None and jitter.active:  # SR patches draw it too, for revisits and HR alike
                lr = np.stack([jitter.apply(np.asarray(f, np.float32).copy(), wavelengths, rng) for f in lr])
            for k in range(len(names)):
                v = lr[:, k][ok]
                per_band[k].append(v[:: max(1, v.size // STATS_PIXELS_PER_SCENE)])
    out: Dict[str, Dict[str, float]] = {}
    for name, values in zip(names, per_band):
        if values:
            stats = band_statistics(np.concatenate(values))
            if stats:
                out[name] = stats
    return out
