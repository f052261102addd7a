"""Consistency with the revisits: degrade the SR output back to Sentinel-2 and compare, LR pixel by LR pixel.

The one check the network was trained with and the one that needs no HR image:
degrade the output with the S-2 operator (``core.data.degrade``: PSF,
sub-pixel shift, 3x3 area mean) and compare it with each LR revisit. Two
values per LR pixel, in reflectance:

1. **disagreement** = ``median_t |LR_t - b_t - D_t(SR)|`` over the valid revisits.
   The median (not the mean) so one cloudy or changed revisit does not make the
   SR output look guilty: it lights up only where the output disagrees with
   *most* of what S-2 saw.
2. **revisit spread** = the standard deviation across revisits of the same
   residuals (NaN where fewer than two revisits are valid). The residuals share
   ``D_t(SR)``, so the spread is the disagreement of the revisits *among
   themselves*. Deliberately not robust: a cloud or change in one revisit must
   show here. High spread: "S-2 itself is not sure here"; high disagreement
   with lower spread: "the output invented or missed something the revisits
   agree on".

What it cannot see, by construction: detail above the 10 m Nyquist limit that
averages out over each LR pixel (a zero-mean 3-px checkerboard, a dark road
with bright rims). The instability and grid bands of the trust map are there
for that (``core.inference.tta``, ``core.inference.trust_grid``).

Per-frame corrections, estimated once on a few calibration windows:

* ``D_t`` uses frame t's **sub-pixel shift**: revisits are warped onto the
  reference grid but keep their residual misregistration (real S-2: a fraction
  of a pixel; the synthetic data: up to one LR pixel); without it every edge
  would light up. Found by a coarse grid search (1 HR px steps) refined by a
  pattern search down to 1/16 HR px.
* ``b_t`` is the frame's **brightness offset**, the per-frame bias the cL1 loss
  removes, estimated with the *median* of ``LR_t - D_t(SR)``: the objects to
  flag are exactly the outliers that would drag a mean towards themselves.

Processing is by blocks of LR pixels (rows asked for by the caller, columns in
blocks of :data:`BLOCK`), with a halo of SR context for the PSF, so block seams
are exact and memory grows with the raster's width only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from rasterio.windows import Window

from ..data.degrade import S2_NIR_MTF, Degradation, psf_sigma_from_mtf
from ..io.rasters import Frame, Grid
from ..io.sentinel2 import MTF_NYQUIST, band_at_start, band_key
from ..jobs import InputError

__all__ = ["sr_lr_window", "Consistency", "masked_median", "masked_std", "psf_sigma_for"]

#: LR columns per block of the comparison.
BLOCK = 256
#: Calibration windows: side in LR pixels, at most 2 x 2 of them.
_CAL_SIDE = 96


def sr_lr_window(sr: Grid, lr: Grid, sr_name: str = "SR raster", lr_name: str = "LR inputs",
                 scale_tag: Optional[str] = None) -> Tuple[int, Window]:
    """(scale, LR window covered by the SR raster), or :class:`InputError` saying how they are misaligned."""
    if sr.crs != lr.crs:
        raise InputError(
            f"{sr_name} is in {sr.crs.to_string() if sr.crs else 'no CRS'} but {lr_name} are in "
            f"{lr.crs.to_string()}: the trust map compares pixel by pixel, give the SR output written from these inputs")
    a, b = sr.transform, lr.transform
    if a.b or a.d or b.b or b.d:
        raise InputError(f"{sr_name} or {lr_name} have a rotated grid; the trust map needs north-up rasters")
    ratio = b.a / a.a
    scale = int(round(ratio))
    if scale < 2 or abs(ratio - scale) > 1e-6 * scale or abs(b.e / a.e - ratio) > 1e-6 * scale:
        raise InputError(
            f"{sr_name} has {abs(a.a):.4g} x {abs(a.e):.4g} pixels but {lr_name} have {abs(b.a):.4g} x {abs(b.e):.4g}: "
            "the SR pixel must be the LR pixel divided by a whole scale factor (e.g. 3)")
    if scale_tag and scale_tag.isdigit() and int(scale_tag) != scale:
        raise InputError(f"{sr_name} says it is x{scale_tag} but its pixels are {scale} times smaller than the LR pixels")
    col = (a.c - b.c) / b.a
    row = (a.f - b.f) / b.e
    if abs(col - round(col)) > 1e-3 or abs(row - round(row)) > 1e-3:
        raise InputError(
            f"{sr_name} is not aligned to the LR grid of {lr_name}: its origin is {col - math.floor(col):.3f} LR pixel "
            f"across and {row - math.floor(row):.3f} down from an LR pixel corner; the trust map needs the SR "
            "output on the LR grid, as super-resolution writes it (do not resample it)")
    if sr.width % scale or sr.height % scale:
        raise InputError(f"{sr_name} is {sr.width} x {sr.height} px, not a whole number of {scale} x {scale} LR pixels")
    window = Window(int(round(col)), int(round(row)), sr.width // scale, sr.height // scale)
    if window.col_off < 0 or window.row_off < 0 or window.col_off + window.width > lr.width \
            or window.row_off + window.height > lr.height:
        raise InputError(f"{sr_name} extends beyond {lr_name} (LR window {window.col_off}, {window.row_off}, "
                         f"{window.width} x {window.height} in a {lr.width} x {lr.height} grid)")
    return scale, window


def psf_sigma_for(frame: Frame, scale: int, messages: List[str]) -> float:
    """PSF sigma (HR px) from the band named at the start of the description (B02/B03/B04/B08), else the NIR value."""
    description = frame.description or ""
    band = band_at_start(description) or band_key(description.split("_")[0].split(" ")[0])
    if band in MTF_NYQUIST:
        return psf_sigma_from_mtf(MTF_NYQUIST[band], scale)
    messages.append(f"band of {frame.label} not recognised as B2/B3/B4/B8: using the NIR PSF (MTF {S2_NIR_MTF})")
    return psf_sigma_from_mtf(S2_NIR_MTF, scale)


# --------------------------------------------------------------------------- reading blocks


@dataclass
class _Reader:
    """Reads aligned blocks: SR with a halo (for the PSF) and LR frames, in reflectance."""

    sr: Frame
    frames: List[Frame]
    window: Window  # LR window covered by the SR raster
    scale: int
    halo: int  # LR pixels of SR context on each side

    def sr_block(self, r0: int, r1: int, c0: int, c1: int) -> Tuple[np.ndarray, np.ndarray]:
        """SR [3(h+2H), 3(w+2H)] around LR rows/cols (window-relative), invalid filled; LR-pixel validity [h, w]."""
        s, hh = self.scale, self.halo
        x, v = self.sr.read_padded(s * (r0 - hh), s * (r1 + hh), s * (c0 - hh), s * (c1 + hh))
        if not v.all():
            x = np.where(v, x, np.float32(x[v].mean()) if v.any() else np.float32(0.0))
        core = v[s * hh : s * (r1 - r0 + hh), s * hh : s * (c1 - c0 + hh)]
        lr_ok = core.reshape(r1 - r0, s, c1 - c0, s).all(axis=(1, 3))
        return np.ascontiguousarray(x, dtype=np.float32), lr_ok

    def lr_block(self, r0: int, r1: int, c0: int, c1: int) -> Tuple[np.ndarray, np.ndarray]:
        """LR frames [T, h, w] and their valid masks, window-relative rows/cols."""
        wr, wc = int(self.window.row_off), int(self.window.col_off)
        got = [f.read_padded(wr + r0, wr + r1, wc + c0, wc + c1) for f in self.frames]
        return np.stack([g[0] for g in got]), np.stack([g[1] for g in got])

    def bicubic_block(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Bicubic upsampling of the revisits' per-pixel mean, shaped like :meth:`sr_block`'s SR block.

        The plain reference an SR output should beat: the same input, no
        network. Pixels no revisit saw take the block's mean.
        """
        s, hh, m = self.scale, self.halo, 2  # m: LR context of the bicubic kernel
        lr, v = self.lr_block(r0 - hh - m, r1 + hh + m, c0 - hh - m, c1 + hh + m)
        count = v.sum(0)
        mean = np.divide(np.where(v, lr, 0).sum(0), count, out=np.zeros(count.shape, np.float32), where=count > 0)
        if not (count > 0).all():
            mean = np.where(count > 0, mean, np.float32(mean[count > 0].mean()) if (count > 0).any() else 0)
        up = F.interpolate(torch.from_numpy(np.ascontiguousarray(mean, dtype=np.float32))[None, None],
                           scale_factor=s, mode="bicubic", align_corners=False)[0, 0].numpy()
        return np.ascontiguousarray(up[s * m : up.shape[0] - s * m, s * m : up.shape[1] - s * m])


def _degrade(op: Degradation, sr: np.ndarray, shifts: torch.Tensor, halo: int) -> torch.Tensor:
    """D_s(SR) for each shift: [K, h, w] with the halo cropped."""
    x = torch.from_numpy(sr)[None, None].expand(shifts.shape[0], 1, -1, -1)
    out = op(x, shifts)[:, 0]
    return out[:, halo : out.shape[1] - halo, halo : out.shape[2] - halo]


# --------------------------------------------------------------------------- calibration


@dataclass
class _Calibration:
    shifts: np.ndarray  # [T, 2] HR px (dy, dx)
    offsets: np.ndarray  # [T] reflectance, median of LR_t - D_t(SR)


def _cal_windows(h: int, w: int) -> List[Tuple[int, int, int, int]]:
    """Up to 2 x 2 calibration windows (r0, r1, c0, c1), window-relative, away from the edges when possible."""
    def starts(n: int) -> List[Tuple[int, int]]:
        side = min(_CAL_SIDE, n)
        if n < 2 * side + 4:
            s0 = (n - side) // 2
            return [(s0, s0 + side)]
        return [(n // 4 - side // 2 + 1, n // 4 - side // 2 + 1 + side),
                (3 * n // 4 - side // 2 - 1, 3 * n // 4 - side // 2 - 1 + side)]

    return [(r0, r1, c0, c1) for r0, r1 in starts(h) for c0, c1 in starts(w)]


#: Offsets of a 3 x 3 pattern-search step (the centre first, so ties keep it).
_NEIGHBOURS = torch.tensor([[0, 0], [-1, -1], [-1, 0], [-1, 1], [0, -1], [0, 1], [1, -1], [1, 0], [1, 1]],
                           dtype=torch.float32)
_CAL_MIN_STEP = 1 / 16  # HR px: a 0.02 LR px registration error leaves edges well below the noise


def _shift_cost(op: Degradation, data, t: int, shifts: torch.Tensor, halo: int) -> torch.Tensor:
    """Sum over the calibration windows of |LR_t - D_s(SR) - median| for each shift s: [K]."""
    cost = torch.zeros(shifts.shape[0], dtype=torch.float64)
    with torch.no_grad():
        for sr, lr, v in data:
            if int(v[t].sum()) < 16:
                continue
            pred = _degrade(op, sr, shifts, halo)
            res = lr[t][v[t]][None] - pred[:, v[t]]
            cost += (res - res.median(dim=1, keepdim=True).values).abs().sum(dim=1).double()
    return cost


def _calibrate(reader: _Reader, op: Degradation, max_shift_hr: int, messages: List[str],
               labels: Sequence[str]) -> _Calibration:
    """Per-frame sub-pixel shift and brightness offset, from a few windows of the raster."""
    t_count = len(reader.frames)
    h, w = int(reader.window.height), int(reader.window.width)
    grid = torch.arange(-max_shift_hr, max_shift_hr + 1, dtype=torch.float32)
    cand = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    data = []  # per window: (sr block, lr [T,h,w], valid [T,h,w])
    cost = torch.zeros(t_count, cand.shape[0], dtype=torch.float64)
    for r0, r1, c0, c1 in _cal_windows(h, w):
        sr, sr_ok = reader.sr_block(r0, r1, c0, c1)
        lr, lv = reader.lr_block(r0, r1, c0, c1)
        valid = lv & sr_ok[None]
        if min(r1 - r0, c1 - c0) > 4:  # one LR pixel at the window edge: shifted frames see beyond the raster there
            edge = np.zeros_like(sr_ok)
            edge[1:-1, 1:-1] = True
            valid &= edge[None]
        with torch.no_grad():
            pred = _degrade(op, sr, cand, reader.halo)  # [K, h, w]
        lr_t, v_t = torch.from_numpy(lr), torch.from_numpy(valid)
        for t in range(t_count):
            if int(v_t[t].sum()) < 16:
                continue
            res = lr_t[t][v_t[t]][None] - pred[:, v_t[t]]  # [K, n]
            med = res.median(dim=1, keepdim=True).values
            cost[t] += (res - med).abs().sum(dim=1).double()
        data.append((sr, lr_t, v_t))

    shifts = np.zeros((t_count, 2), dtype=np.float64)
    offsets = np.zeros(t_count, dtype=np.float64)
    for t in range(t_count):
        n_valid = sum(int(v[t].sum()) for _, _, v in data)
        if n_valid < 16:
            messages.append(f"{labels[t]}: too few valid pixels to estimate its shift and offset; assumed 0")
            continue
        found = cand[int(torch.argmin(cost[t]))].clone()
        step = 0.5
        while step >= _CAL_MIN_STEP:  # pattern search: 3 x 3 around the best, halving the step
            around = found[None] + step * _NEIGHBOURS
            found = around[int(torch.argmin(_shift_cost(op, data, t, around, reader.halo)))].clone()
            step /= 2
        with torch.no_grad():
            res = torch.cat([lr[t][v[t]] - _degrade(op, sr, found[None], reader.halo)[0][v[t]] for sr, lr, v in data])
        shifts[t] = found.numpy()
        offsets[t] = float(res.median())
        if float(found.abs().max()) >= max_shift_hr - 0.05:
            messages.append(f"{labels[t]}: its shift reaches the search limit ({max_shift_hr} HR px); "
                            "it may be misregistered by more than that")
    return _Calibration(shifts, offsets)


# --------------------------------------------------------------------------- per-pixel statistics


def masked_median(values: np.ndarray, valid: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Median over axis 0 of the valid entries (NaN where none) and the count of valid entries."""
    count = valid.sum(0)
    v = np.where(valid, values, np.inf)
    v.sort(axis=0)
    lo = np.clip((count - 1) // 2, 0, None)
    hi = np.clip(count // 2, 0, None)
    a = np.take_along_axis(v, lo[None], 0)[0]
    b = np.take_along_axis(v, hi[None], 0)[0]
    med = np.where(count > 0, 0.5 * (a + b), np.nan)
    return med.astype(np.float32), count


def masked_std(values: np.ndarray, valid: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Sample standard deviation over axis 0 of the valid entries (NaN where fewer than two)."""
    n = np.maximum(count, 1)
    v = np.where(valid, values, 0.0).astype(np.float64)
    mean = v.sum(0) / n
    ss = (np.where(valid, v - mean[None], 0.0) ** 2).sum(0)
    return np.where(count >= 2, np.sqrt(ss / np.maximum(count - 1, 1)), np.nan).astype(np.float32)




# --------------------------------------------------------------------------- the comparison


class Consistency:
    """Calibrated comparison of one SR band with its LR revisits, for any range of LR rows.

    Build it once (estimates every revisit's shift and brightness offset on a
    few windows), then ask :meth:`rows` for LR rows in any order; each call
    reads only those rows (plus the PSF halo) across the full width, in column
    blocks of :data:`BLOCK`.
    """

    def __init__(self, sr: Frame, frames: Sequence[Frame], window: Window, scale: int, max_shift_lr: float,
                 messages: List[str]) -> None:
        self.frames = list(frames)
        self.labels = [f.label for f in self.frames]
        self.scale = scale
        self.width, self.height = int(window.width), int(window.height)
        self.op = Degradation(scale=scale, sigma_hr=psf_sigma_for(self.frames[0], scale, messages)).eval()
        max_shift_hr = max(1, int(math.ceil(max_shift_lr * scale)))
        # the operator's kernel radius (HR px) for the largest shift the refinement may reach
        radius = int(math.ceil(3.5 * float(self.op.sigma.max()) + max_shift_hr + 1.5)) + 1
        self.halo = int(math.ceil(radius / scale)) + 1
        self.reader = _Reader(sr, self.frames, window, scale, self.halo)
        cal = _calibrate(self.reader, self.op, max_shift_hr, messages, self.labels)
        self.shifts_hr = cal.shifts
        self.offsets = cal.offsets
        self._shifts_t = torch.from_numpy(cal.shifts.astype(np.float32))
        self._offsets = cal.offsets.astype(np.float32)[:, None, None]

    def note(self) -> str:
        """The calibration, worded for the analyst's log."""
        return "revisit shift (HR px, dy/dx) and offset (reflectance): " + "; ".join(
            f"{lbl} {s[0]:+.2f}/{s[1]:+.2f} {o:+.4f}" for lbl, s, o in zip(self.labels, self.shifts_hr, self.offsets))

    def rows(self, r0: int, r1: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(disagreement, spread, beyond bicubic) ``[r1 - r0, width]`` for LR rows ``[r0, r1)``; NaN = no data.

        *Beyond bicubic* is the disagreement minus that of the bicubic
        upsampling of the revisits' mean (same shifts, same offsets): positive
        where the output fits the revisits *worse* than a plain upsampling of
        them, i.e. where it added something they do not show. A blurry output
        disagrees at edges too, but no more than bicubic does: that is detail
        missed, not invented.
        """
        dis = np.full((r1 - r0, self.width), np.nan, dtype=np.float32)
        spread = np.full((r1 - r0, self.width), np.nan, dtype=np.float32)
        excess = np.full((r1 - r0, self.width), np.nan, dtype=np.float32)
        h = self.halo
        for c0 in range(0, self.width, BLOCK):
            c1 = min(self.width, c0 + BLOCK)
            srb, sr_ok = self.reader.sr_block(r0, r1, c0, c1)
            bic = self.reader.bicubic_block(r0, r1, c0, c1)
            lr, lv = self.reader.lr_block(r0, r1, c0, c1)
            with torch.no_grad():
                x = torch.from_numpy(np.stack([srb, bic]))[:, None, None].expand(2, len(self.frames), 1, -1, -1)
                pred = self.op(x.reshape(-1, 1, *srb.shape), self._shifts_t.repeat(2, 1))
                pred = pred.reshape(2, len(self.frames), *pred.shape[-2:])[:, :, h : h + r1 - r0, h : h + c1 - c0]
                pred = pred.numpy()
            valid = lv & sr_ok[None]
            res = lr - self._offsets - pred[0]
            d, count = masked_median(np.abs(res), valid)
            d_bic, _ = masked_median(np.abs(lr - self._offsets - pred[1]), valid)
            dis[:, c0:c1] = d
            spread[:, c0:c1] = masked_std(res, valid, count)
            excess[:, c0:c1] = d - d_bic
        return dis, spread, excess
