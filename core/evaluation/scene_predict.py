"""Super-resolve and segment whole in-memory scenes through the plugin's own tiled passes.

Why: metrics must score the pixels an analyst gets. So a scene is not
predicted by a tiler of its own: its revisits become
:class:`core.inference.runner.ArrayFrame` objects, the SR pass is
:func:`core.inference.sr.sr_tiles` with the same tile plan, frame choice,
fill, anchoring and blending as ``super_resolve``, and the result is quantised
to the integer values the GeoTIFF would hold (DN x 1e-4) before it is scored
or segmented (with :func:`core.inference.segment.seg_tiles`, like
``segment`` on that GeoTIFF).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from rasterio.windows import Window

from ..inference.frames import select_frames
from ..inference.loading import LoadedModel
from ..inference.planning import TilePlan
from ..inference.runner import ArrayFrame, ArraySink
from ..inference.segment import seg_tiles
from ..inference.sr import sr_tiles
from ..inference.values import quantize_reflectance
from ..io.radiometry import S2_DN_SCALE, Radiometry

__all__ = ["SceneSR", "scene_frames", "predict_sr_scene", "predict_seg_image", "valid_hr", "bicubic_baseline",
           "object_free"]

#: What the plugin writes for a scene's revisits (uint16 DN without scale metadata -> S-2 DN x 1e-4).
OUTPUT_DTYPE = np.dtype("uint16")
OUTPUT_NODATA = 0


@dataclass
class SceneSR:
    """An SR prediction of a scene: reflectance ``[C, H, W]`` as written, its valid pixels, what was used."""

    image: np.ndarray
    valid: np.ndarray
    frames: List[int]
    offsets: List[float]


def scene_frames(scene, bands: Sequence[int]) -> List[List[ArrayFrame]]:
    """``dates[t][c]``: band ``bands[c]`` of revisit t as an :class:`ArrayFrame`."""
    lr_valid = np.asarray(scene.lr_valid, dtype=bool)
    return [[ArrayFrame(np.asarray(scene.lr[t, b], dtype=np.float32), lr_valid[t],
                        f"{scene.name}:t{t}:{scene.bands[b]}") for b in bands]
            for t in range(scene.lr.shape[0])]


def predict_sr_scene(loaded: LoadedModel, scene, plan: TilePlan, anchor: bool, bands: Sequence[int],
                     quantize: bool = True) -> SceneSR:
    """Super-resolve a whole scene exactly as ``super_resolve`` would its GeoTIFF revisits."""
    dates = scene_frames(scene, bands)
    fractions = [min(f.valid_fraction for f in group) for group in dates]
    chosen, _note = select_frames(fractions, loaded.frames)
    weights = np.maximum(np.asarray(fractions, dtype=np.float64), 1e-9)
    fallback = [float(np.average([g[c].mean_reflectance for g in dates], weights=weights)) for c in range(len(bands))]
    h, w = scene.lr.shape[-2:]
    s = loaded.scale
    sink = ArraySink(len(bands), h * s, w * s)
    valid = np.zeros((h * s, w * s), dtype=bool)
    radiometry = Radiometry(S2_DN_SCALE, 0.0, "scene DN")

    def emit(r0: int, block: np.ndarray, lr_valid: np.ndarray) -> None:
        if quantize:
            block = np.stack([quantize_reflectance(block[c], radiometry, OUTPUT_DTYPE, OUTPUT_NODATA)
                              for c in range(block.shape[0])])
        seen = np.repeat(np.repeat(lr_valid, s, 0), s, 1)
        block[:, ~seen] = 0.0
        valid[r0 : r0 + seen.shape[0]] = seen
        sink.write_rows(r0, block)

    offsets = sr_tiles([dates[i] for i in chosen], Window(0, 0, w, h), loaded, plan, anchor, fallback, emit)
    return SceneSR(sink.array, valid, list(chosen), offsets)


def predict_seg_image(models: Sequence[LoadedModel], image: np.ndarray, valid: np.ndarray,
                      plan: TilePlan) -> np.ndarray:
    """Probabilities ``[targets, H, W]`` of segmentation networks over an image ``[C, H, W]`` (reflectance)."""
    frames = [ArrayFrame(np.asarray(image[c], dtype=np.float32), valid) for c in range(image.shape[0])]
    fallback = float(np.mean([f.mean_reflectance for f in frames]))
    h, w = image.shape[-2:]
    sink = ArraySink(len(models), h, w)
    seg_tiles(frames, Window(0, 0, w, h), models, plan, fallback, lambda r0, block, _v: sink.write_rows(r0, block))
    return sink.array


def valid_hr(scene) -> np.ndarray:
    """Pixels that count on the HR grid: the HR clear mask, else where any revisit saw the ground."""
    if scene.hr_valid is not None:
        return np.asarray(scene.hr_valid, dtype=bool)
    seen = np.asarray(scene.lr_valid, dtype=bool).any(axis=0)
    return np.repeat(np.repeat(seen, scene.scale, axis=0), scene.scale, axis=1)


def bicubic_baseline(scene, bands: Sequence[int], frames: Sequence[int]) -> np.ndarray:
    """Bicubic upsampling of the per-pixel mean of the chosen revisits: the no-network reference ``[C, H, W]``.

    The mean of the revisits (where each is valid) is MuS2's baseline too; a
    network that flags more objects on land than this does is inventing them.
    """
    lr = np.asarray(scene.lr[list(frames)][:, list(bands)], dtype=np.float64)  # [T, C, h, w]
    v = np.asarray(scene.lr_valid, dtype=bool)[list(frames)][:, None]
    count = v.sum(0)
    mean = np.divide(np.where(v, lr, 0).sum(0), count, out=np.zeros(lr.shape[1:]), where=count > 0)
    if (count == 0).any():
        mean = np.where(count > 0, mean, mean[count > 0].mean() if (count > 0).any() else 0.0)
    up = F.interpolate(torch.from_numpy(mean[None]).float(), scale_factor=scene.scale, mode="bicubic",
                       align_corners=False)
    return up[0].numpy()


def object_free(masks: Sequence[np.ndarray], margin: int) -> np.ndarray:
    """Pixels farther than ``margin`` pixels (Chebyshev) from every object of every mask: land with no object."""
    if not masks:
        raise ValueError("no masks to find object-free land in")
    objects = np.zeros(np.asarray(masks[0]).shape, dtype=bool)
    for m in masks:
        objects |= np.asarray(m, dtype=bool)
    if margin > 0:
        t = torch.from_numpy(objects[None, None].astype(np.float32))
        objects = F.max_pool2d(t, 2 * margin + 1, stride=1, padding=margin)[0, 0].numpy() > 0
    return ~objects

