"""Instability of an SR output under test-time augmentation: where the network's detail moves, it invented it.

Detail the input determines comes out the same whatever harmless change is
made to the input: flip the revisits and flip the output back, shift them by a
third of a pixel and shift the output back, leave one revisit out. Detail the
network makes up is tied to something other than the ground (its output
lattice, the tile's corner, one revisit's noise), so it moves, and the
per-pixel spread of the K un-augmented outputs lights up there.

Augmentations (:func:`augmentations`), each undone on the output:

* ``flip_x``, ``flip_y``, ``rot90``: flips and a quarter turn of every revisit.
  A pixel-shuffle grid is tied to the output lattice and comes back permuted.
* ``shift_x``, ``shift_y``: every revisit shifted by 1/3 LR pixel (Lanczos-3
  interpolation), the output shifted back by 1 HR pixel. Content lands where it
  was; a grid tied to the output lattice moves by one pixel against it.
* ``drop_<t>`` (multi-image networks, when at least three distinct revisits
  are used): revisit t replaced by its neighbour in the stack. Detail that
  exists in one revisit only (noise, a cloud edge) moves or vanishes.

Everything happens inside one tiled pass through
:func:`core.inference.runner.run_tiles`: for every tile the K predictions are
made, un-augmented, anchored to the tile's revisits (as the SR output was, so a
difference in overall brightness does not count), and two channels are emitted
for the band judged: ``E[d]`` and ``E[d^2]`` with ``d = x_k - c``, ``c`` one
constant for the whole raster (the band's mean reflectance, so float32 keeps
the digits a small spread needs). The runner blends them like any output, so
``sqrt(E[d^2] - E[d]^2)`` is the spread of every prediction that reached the
pixel (from each augmentation and each overlapping tile): seam-free, and memory
stays flat. Near a tile's edge a network sees little context and its augmented
predictions differ for that reason alone, wildly (a variance hundreds of times
the rest): even the ramps' 1 % weight there would draw every seam. So a tile
gives no moments on its outer :data:`EDGE_MARGIN` input pixels (a third channel
carries each tile's coverage, by which the blended moments are divided), and
the pass uses a wider overlap than plain super-resolution (:data:`MIN_OVERLAP`)
so the next tile covers them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from rasterio.windows import Window
from torch.nn.utils import parametrize

from .anchor import anchor_offsets
from .loading import LoadedModel
from .planning import TilePlan
from .runner import Axis, OutputSpec, run_tiles
from .sr import model_input, strip_reader

__all__ = ["Augmentation", "augmentations", "augment", "undo", "subpixel_shift", "instability_tiles",
           "instability_from_moments", "edge_mask"]

EmitRows = Callable[[int, np.ndarray, np.ndarray], None]
#: Input pixels at each tile's edge that give no moments (the network sees almost no context there).
EDGE_MARGIN = 3
#: Least tile overlap (input pixels) of the instability pass, and at least this share of the tile.
MIN_OVERLAP = 12
MIN_OVERLAP_SHARE = 0.125


@dataclass(frozen=True)
class Augmentation:
    """One change of the input and its inverse on the output."""

    name: str
    flip_x: bool = False
    flip_y: bool = False
    rot90: bool = False
    shift: Tuple[int, int] = (0, 0)  # (dy, dx) HR pixels the content moves by
    drop: Optional[int] = None  # revisit replaced by its neighbour


def augmentations(frames: int, distinct: int) -> List[Augmentation]:
    """The augmentation set for a network taking ``frames`` revisits, ``distinct`` of them different.

    The identity comes first (every difference is taken to it).
    """
    augs = [Augmentation("identity"), Augmentation("flip_x", flip_x=True), Augmentation("flip_y", flip_y=True),
            Augmentation("rot90", rot90=True), Augmentation("shift_x", shift=(0, 1)),
            Augmentation("shift_y", shift=(1, 0))]
    if frames > 1 and distinct >= 3:
        for t in sorted({frames - 1, frames // 2}):
            augs.append(Augmentation(f"drop_{t}", drop=t))
    return augs


def _lanczos_taps(shift: float, a: int = 3) -> Tuple[np.ndarray, int]:
    """Weights for ``out[i] = sum_m w[m] x[i - m0 - m]`` moving content by ``shift`` px (|shift| < 1), and m0."""
    m = np.arange(int(np.ceil(shift - a)), int(np.floor(shift + a)) + 1)
    t = m - shift
    w = np.sinc(t) * np.sinc(t / a) * (np.abs(t) < a)
    return (w / w.sum()).astype(np.float32), int(m[0])


def subpixel_shift(x: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Shift the last two axes by ``(dy, dx)`` pixels (content moves down/right), Lanczos-3, reflect at the edges.

    Why not a Fourier phase ramp: Sentinel-2 is aliased, and an exact
    band-limited shift rings across a whole tile from every sharp edge; the
    3-lobe windowed sinc keeps that within three pixels of the edge.
    """
    out = np.asarray(x, dtype=np.float32)
    for axis, shift in ((-2, dy), (-1, dx)):
        if not shift:
            continue
        w, m0 = _lanczos_taps(float(shift))
        n = out.shape[axis]
        lo, hi = len(w) + m0, max(0, -m0) + len(w)
        pad = [(0, 0)] * out.ndim
        pad[axis] = (lo, hi)
        p = np.pad(out, pad, mode="reflect")
        acc = np.zeros_like(out)
        for k, wk in enumerate(w):
            start = lo - (m0 + k)
            acc += wk * np.take(p, np.arange(start, start + n), axis=axis)
        out = acc
    return out


def augment(x: np.ndarray, aug: Augmentation, scale: int) -> np.ndarray:
    """Apply ``aug`` to a batch of tiles ``[B, T, C, h, w]`` (reflectance)."""
    if aug.drop is not None:
        x = x.copy()
        t = aug.drop
        x[:, t] = x[:, t - 1] if t > 0 else x[:, 1]
    if aug.flip_x:
        x = x[..., ::-1]
    if aug.flip_y:
        x = x[..., ::-1, :]
    if aug.rot90:
        x = np.rot90(x, 1, axes=(-2, -1))
    if aug.shift != (0, 0):
        x = subpixel_shift(x, aug.shift[0] / scale, aug.shift[1] / scale)
    return np.ascontiguousarray(x, dtype=np.float32)


def undo(y: np.ndarray, aug: Augmentation) -> np.ndarray:
    """Bring an output ``[B, C, H, W]`` of the augmented input back onto the plain output's geometry."""
    if aug.shift != (0, 0):
        dy, dx = aug.shift
        h, w = y.shape[-2:]
        y = np.pad(y, ((0, 0), (0, 0), (0, dy), (0, dx)), mode="edge")[..., dy : dy + h, dx : dx + w]
    if aug.rot90:
        y = np.rot90(y, -1, axes=(-2, -1))
    if aug.flip_y:
        y = y[..., ::-1, :]
    if aug.flip_x:
        y = y[..., ::-1]
    return np.ascontiguousarray(y)


def edge_mask(shape: Tuple[int, int], margin: int) -> np.ndarray:
    """1 inside a tile, 0 on its outer ``margin`` pixels (float32)."""
    m = np.zeros(shape, dtype=np.float32)
    h, w = shape
    if 2 * margin < min(h, w):
        m[margin : h - margin, margin : w - margin] = 1.0
    else:
        m[:] = 1.0
    return m


def instability_from_moments(mean_d: np.ndarray, mean_d2: np.ndarray,
                             coverage: Optional[np.ndarray] = None) -> np.ndarray:
    """Standard deviation from the blended moments of the differences (never negative; NaN where uncovered).

    ``coverage``: the blended edge masks; the moments were blended with them
    as weights, so they are divided by it first.
    """
    if coverage is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_d = np.where(coverage > 1e-6, mean_d / coverage, np.nan)
            mean_d2 = np.where(coverage > 1e-6, mean_d2 / coverage, np.nan)
    return np.sqrt(np.maximum(mean_d2 - mean_d * mean_d, 0.0)).astype(np.float32)


def instability_tiles(dates: Sequence[Sequence[object]], window: Window, loaded: LoadedModel, plan: TilePlan,
                      fallback: Sequence[float], channel: int, emit: EmitRows, cancel: Optional[object] = None,
                      report: Optional[Callable[[int, int], None]] = None,
                      augs: Optional[Sequence[Augmentation]] = None) -> List[str]:
    """One tiled pass emitting ``[3, n, W*s]`` rows: ``E[d]``, ``E[d^2]`` of band ``channel`` (``d = x - c``)
    and the coverage they are to be divided by (:func:`instability_from_moments`).

    ``dates[t][c]``, ``window``, ``fallback``: as for :func:`core.inference.sr.sr_tiles`
    (the same frames, in the same order, the SR output was made from).
    Returns the names of the augmentations used.
    """
    scale = loaded.scale
    overlap = min(max(plan.overlap, MIN_OVERLAP, int(MIN_OVERLAP_SHARE * plan.tile)), (plan.tile - 1) // 2)
    margin = scale * min(EDGE_MARGIN, overlap // 3)
    rows, cols = Axis(int(window.height), plan.tile, overlap), Axis(int(window.width), plan.tile, overlap)
    distinct = len({tuple(id(f) for f in group) for group in dates})
    augs = list(augs) if augs is not None else augmentations(loaded.frames, distinct)
    fallback_mean = float(np.mean(fallback)) if len(fallback) else 0.0
    centre = np.float32(fallback[channel] if len(fallback) > channel else fallback_mean)
    read_strip = strip_reader(dates, window, rows, cols, fallback_mean)

    def run(xb: np.ndarray, vb: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), parametrize.cached():  # weight-norm weights computed once per call
            y = loaded.model(torch.from_numpy(loaded.to_model(model_input(xb, loaded.frames))).to(loaded.device))
        return loaded.to_reflectance(y)

    def predict(xb: np.ndarray, vb: np.ndarray):
        s1 = s2 = None
        for aug in augs:
            y = undo(run(augment(xb, aug, scale), vb), aug)
            y = y + anchor_offsets(xb, vb, y, scale)[:, :, None, None]
            d = y[:, channel] - centre
            s1 = d.copy() if s1 is None else s1 + d
            s2 = d * d if s2 is None else s2 + d * d
        k = np.float32(len(augs))
        cover = np.broadcast_to(edge_mask(s1.shape[-2:], margin), s1.shape)
        return [np.stack([cover * s1 / k, cover * s2 / k, cover], axis=1)]

    run_tiles(rows, cols, read_strip, predict, [OutputSpec(scale, 3)],
              lambda _i, r0, block, lr_valid: emit(r0, block, lr_valid), plan.batch, cancel, report)
    return [a.name for a in augs]
