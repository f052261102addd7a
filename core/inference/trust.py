"""Trust map of a super-resolved raster: where does it disagree with what Sentinel-2 saw?

An SR output may invent detail. The one check that needs no HR image is the
consistency the network was trained with: degrade the output back to the LR
grid with the S-2 operator (``core.data.degrade``: PSF, sub-pixel shift, 3x3
area mean) and compare it with each LR revisit. This module writes that
comparison as a GeoTIFF beside the output (``<sr>_trust.tif``) with two bands:

1. **disagreement** = ``median_t |LR_t - b_t - D_t(SR)|`` over the valid revisits
   of each LR pixel, in reflectance. The median (not the mean) so one cloudy or
   changed revisit does not make the SR output look guilty: the map lights up
   only where the output disagrees with *most* of what S-2 saw.
2. **revisit spread** = the standard deviation across revisits of the same
   residuals ``r_t = LR_t - b_t - D_t(SR)`` (NaN where fewer than two revisits
   are valid, e.g. for a single-image input). The residuals share ``D_t(SR)``,
   so the spread is the disagreement of the revisits *among themselves* after
   the geometry and brightness of each was accounted for. Deliberately *not*
   robust: a cloud, shadow or change in a single revisit must show here (the
   median of band 1 ignores it). High spread means "S-2 itself is not sure
   here"; high disagreement with lower spread means "the output invented or
   missed something the revisits agree on". (An invented object also raises
   the spread at its edges, since each revisit sees it at its own sub-pixel
   shift, but much less than the disagreement.)

Per-frame corrections, estimated once on a few calibration windows:

* ``D_t`` is the degradation with frame t's **sub-pixel shift**. Revisits are
  warped onto the reference grid (as inference does) but keep their residual
  misregistration (real S-2: a fraction of a pixel; the synthetic data: up to
  one LR pixel); without it every edge would light up. The shift is found by a
  coarse grid search (1 HR px steps) refined by L-BFGS through the
  differentiable operator.
* ``b_t`` is the frame's **brightness offset**, the same per-frame bias the cL1 /
  consistency loss removes (``core.losses``), but estimated with the *median*
  of ``LR_t - D_t(SR)`` instead of the mean: the objects this map must flag are
  exactly the outliers that would drag a mean towards themselves.

Grid: the map is on the **LR grid** (one value per LR pixel, transform = SR
transform x scale, same origin and extent as the SR output): the comparison
exists only at that resolution; QGIS draws it over the SR layer unchanged. The
SR output must sit on the LR reference grid (pixel = LR pixel / integer scale,
origin on an LR pixel corner), as ``super_resolve`` writes it; anything else
is refused with the offsets found.

Nodata: NaN (float32). An LR pixel is nodata where its 3x3 SR block has a
nodata pixel or no revisit is valid there. Processing is strip by strip (rows
of LR pixels, columns in blocks), so memory grows with the raster's width only,
as for inference; written to a hidden temporary file and renamed when complete.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.windows import Window

from .. import __version__
from ..data.degrade import S2_MTF_NYQUIST, S2_NIR_MTF, Degradation, psf_sigma_from_mtf
from ..io.rasters import BandSpec, Frame, FrameSet, Grid, gdal_env
from ..io.writer import GeoTiffSink, check_output_path, geotiff_profile
from ..jobs import Cancelled, CancelToken, InputError, Progress, progress_fn, trust_path_for
from ..options import TrustOptions

__all__ = [
    "TrustSummary",
    "trust_map",
    "read_summary",
    "sr_lr_window",
    "DEFAULT_THRESHOLD",
    "BAND_DESCRIPTIONS",
]

log = logging.getLogger(__name__)
PathLike = Union[str, os.PathLike]

#: Disagreement (reflectance) above which a pixel counts as flagged: about ten
#: times the noise of S-2's 10 m bands (std ~0.002 at reflectance 0.3).
DEFAULT_THRESHOLD = 0.02
BAND_DESCRIPTIONS = (
    "disagreement: median over revisits of |LR - offset - degraded SR| (reflectance)",
    "revisit spread: std of the residuals LR - offset - degraded SR across revisits (reflectance)",
)
#: Histogram for the streamed 95th percentile: bins of 1e-4 reflectance up to 1.0 (plus overflow).
_HIST_STEP = 1e-4
_HIST_BINS = 10000
#: Calibration windows: side in LR pixels, at most 2 x 2 of them.
_CAL_SIDE = 96
_STRIP = 128  # LR rows per strip
_BLOCK = 256  # LR columns per block


@dataclass
class TrustSummary:
    """What the comparison table and the CLI show; also stored as tags in the trust GeoTIFF.

    Reflectance units throughout. ``flagged_share`` is the share of valid LR
    pixels whose disagreement exceeds ``threshold``; ``mean_spread`` is None
    when no pixel has two valid revisits (single-image input).
    """

    path: Path
    sr_path: Path
    mean_disagreement: float
    p95_disagreement: float
    flagged_share: float
    threshold: float
    mean_spread: Optional[float]
    valid_pixels: int
    scale: int
    frames: List[str] = field(default_factory=list)
    shifts_hr: List[Tuple[float, float]] = field(default_factory=list)
    offsets: List[float] = field(default_factory=list)
    messages: List[str] = field(default_factory=list)
    seconds: float = 0.0

    def tags(self) -> Dict[str, str]:
        d = asdict(self)
        d.pop("messages")
        d["path"], d["sr_path"] = str(self.path), str(self.sr_path)
        return {"TRUST_SUMMARY": json.dumps(d)}


def read_summary(trust_path: PathLike) -> Optional[TrustSummary]:
    """The summary stored in a trust GeoTIFF's tags (None when the file holds none)."""
    with rasterio.open(trust_path) as ds:
        raw = ds.tags().get("TRUST_SUMMARY")
    if not raw:
        return None
    d = json.loads(raw)
    d["path"], d["sr_path"] = Path(d["path"]), Path(d["sr_path"])
    d["shifts_hr"] = [tuple(s) for s in d.get("shifts_hr", [])]
    return TrustSummary(**d)


# --------------------------------------------------------------------------- grids


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


def _sigma_for(frame: Frame, scale: int, messages: List[str]) -> float:
    """PSF sigma (HR px) from the band name in the description (B2/B3/B4/B8), else the NIR value."""
    token = (frame.description or "").split("_")[0].split(" ")[0].upper()
    token = {"B02": "B2", "B03": "B3", "B04": "B4", "B08": "B8", "NIR": "B8"}.get(token, token)
    if token in S2_MTF_NYQUIST:
        return psf_sigma_from_mtf(S2_MTF_NYQUIST[token], scale)
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


def _masked_median(values: np.ndarray, valid: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
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


def _masked_std(values: np.ndarray, valid: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Sample standard deviation over axis 0 of the valid entries (NaN where fewer than two)."""
    n = np.maximum(count, 1)
    v = np.where(valid, values, 0.0).astype(np.float64)
    mean = v.sum(0) / n
    ss = (np.where(valid, v - mean[None], 0.0) ** 2).sum(0)
    return np.where(count >= 2, np.sqrt(ss / np.maximum(count - 1, 1)), np.nan).astype(np.float32)


@dataclass
class _Stats:
    """Streaming sums for the summary (exact mean; 95th percentile from a 1e-4 histogram)."""

    threshold: float
    n: int = 0
    total: float = 0.0
    flagged: int = 0
    spread_n: int = 0
    spread_total: float = 0.0
    hist: np.ndarray = field(default_factory=lambda: np.zeros(_HIST_BINS + 1, dtype=np.int64))

    def add(self, dis: np.ndarray, spread: np.ndarray) -> None:
        d = dis[np.isfinite(dis)].astype(np.float64)
        self.n += d.size
        self.total += float(d.sum())
        self.flagged += int((d > self.threshold).sum())
        idx = np.minimum((d / _HIST_STEP).astype(np.int64), _HIST_BINS)
        self.hist += np.bincount(idx, minlength=_HIST_BINS + 1)
        s = spread[np.isfinite(spread)]
        self.spread_n += s.size
        self.spread_total += float(s.sum(dtype=np.float64))

    def p95(self) -> float:
        if not self.n:
            return float("nan")
        k = int(np.searchsorted(np.cumsum(self.hist), 0.95 * self.n))
        return (k + 1) * _HIST_STEP


# --------------------------------------------------------------------------- the map


def _inputs_from_tags(sr_path: Path) -> Tuple[List[Path], Optional[str]]:
    """The LR inputs and band recorded by ``super_resolve`` in the SR output's tags."""
    with rasterio.open(sr_path) as ds:
        tags = ds.tags()
    raw = tags.get("SR_INPUTS")
    if not raw:
        raise InputError(f"{sr_path.name}: give the LR revisits it was made from (it does not record its inputs)")
    paths = [Path(p) for p in json.loads(raw)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise InputError(f"{sr_path.name}: its recorded inputs are gone ({', '.join(missing)}); give them explicitly")
    return paths, tags.get("SR_BAND")


def _band_value(band: Optional[str]) -> BandSpec:
    if band is None:
        return 1
    return int(band) if str(band).strip().isdigit() else band


def trust_map(
    sr_path: PathLike,
    inputs: Optional[Sequence[PathLike]] = None,
    out_path: Optional[PathLike] = None,
    options: Optional[TrustOptions] = None,
    progress: Optional[Progress] = None,
    cancel: Optional[CancelToken] = None,
) -> TrustSummary:
    """Write the trust map of ``sr_path`` (band 1) against LR ``inputs`` and return its summary.

    ``inputs`` and ``options.band`` as for :func:`core.inference.sr.super_resolve`
    (revisits on other grids are warped onto the first one's grid the same way);
    when ``inputs`` is None they are read from the SR output's tags. ``out_path``
    defaults to ``<sr>_trust.tif``. ``options.max_shift``: largest misregistration
    of a revisit searched for, in LR pixels. Raises :class:`InputError` (SR not
    on the LR grid, no valid pixels), ``OutputError`` or :class:`Cancelled`
    (nothing is left behind).
    """
    options = options or TrustOptions()
    band, threshold, max_shift_lr = options.band, options.threshold, options.max_shift
    t_start = time.perf_counter()
    say = progress_fn(progress)
    messages: List[str] = []
    sr = Path(sr_path)
    if not sr.is_file():
        raise InputError(f"{sr}: SR raster not found")
    tag_band: Optional[str] = None
    if inputs is None:
        paths, tag_band = _inputs_from_tags(sr)
        messages.append(f"LR inputs read from {sr.name}'s metadata: {', '.join(p.name for p in paths)}")
    else:
        paths = [Path(p) for p in ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)]
    if band is None:
        band = _band_value(tag_band)
    out = check_output_path(out_path if out_path is not None else trust_path_for(sr), [sr, *paths])
    say(0.0, "reading inputs")

    with gdal_env(), FrameSet([sr], 1, []) as sr_set, FrameSet(paths, band, messages) as fs, ExitStack() as guard:
        assert sr_set.grid is not None and fs.grid is not None
        with rasterio.open(sr) as ds:
            scale_tag = ds.tags().get("SR_SCALE")
        scale, window = sr_lr_window(sr_set.grid, fs.grid, sr.name, f"the LR inputs (grid of {paths[0].name})",
                                     scale_tag)
        sr_set.inspect(Window(0, 0, sr_set.grid.width, sr_set.grid.height))
        fs.inspect(window)
        frames = [f for f in fs.frames if f.valid_fraction > 0]
        for f in fs.frames:
            if f.valid_fraction <= 0:
                messages.append(f"{f.label}: no valid pixel under the SR output; left out")
        if not frames:
            raise InputError("no LR input has a valid pixel under the SR output")
        labels = [f.label for f in frames]
        op = Degradation(scale=scale, sigma_hr=_sigma_for(frames[0], scale, messages)).eval()
        max_shift_hr = max(1, int(math.ceil(max_shift_lr * scale)))
        # the operator's kernel radius (HR px) for the largest shift the refinement may reach
        radius = int(math.ceil(3.5 * float(op.sigma.max()) + max_shift_hr + 1.5)) + 1
        halo = int(math.ceil(radius / scale)) + 1
        reader = _Reader(sr_set.frames[0], frames, window, scale, halo)

        say(0.02, "estimating each revisit's shift and brightness offset")
        cal = _calibrate(reader, op, max_shift_hr, messages, labels)
        shifts_t = torch.from_numpy(cal.shifts.astype(np.float32))
        offsets = cal.offsets.astype(np.float32)[:, None, None]
        messages.append("revisit shift (HR px, dy/dx) and offset (reflectance): " + "; ".join(
            f"{lbl} {s[0]:+.2f}/{s[1]:+.2f} {o:+.4f}" for lbl, s, o in zip(labels, cal.shifts, cal.offsets)))

        h, w = int(window.height), int(window.width)
        grid = Grid(fs.grid.crs, sr_set.grid.transform * Affine.scale(scale), w, h)
        tags = {
            "TRUST_SR": str(sr),
            "TRUST_INPUTS": json.dumps([str(p) for p in paths]),
            "TRUST_FRAMES": json.dumps(labels),
            "TRUST_BAND": str(band),
            "TRUST_SCALE": str(scale),
            "TRUST_DEGRADATION": repr(op),
            "TRUST_UNITS": "reflectance",
            "SOFTWARE": f"s2_taskdriven_sr {__version__}",
        }
        sink = GeoTiffSink(out, geotiff_profile(grid, "float32", 2, float("nan")), tags, list(BAND_DESCRIPTIONS))
        guard.callback(sink.abort)
        stats = _Stats(threshold=float(threshold))
        n_blocks = math.ceil(h / _STRIP) * math.ceil(w / _BLOCK)
        done = 0
        for r0 in range(0, h, _STRIP):
            r1 = min(h, r0 + _STRIP)
            rows = np.full((2, r1 - r0, w), np.nan, dtype=np.float32)
            for c0 in range(0, w, _BLOCK):
                if cancel is not None and cancel.cancelled:
                    raise Cancelled("cancelled by the user; no trust map was written")
                c1 = min(w, c0 + _BLOCK)
                srb, sr_ok = reader.sr_block(r0, r1, c0, c1)
                lr, lv = reader.lr_block(r0, r1, c0, c1)
                with torch.no_grad():
                    x = torch.from_numpy(srb)[None, None].expand(len(frames), 1, -1, -1)
                    pred = op(x, shifts_t)[:, 0, halo : halo + r1 - r0, halo : halo + c1 - c0].numpy()
                valid = lv & sr_ok[None]
                res = lr - offsets - pred
                dis, count = _masked_median(np.abs(res), valid)
                spread = _masked_std(res, valid, count)
                rows[0, :, c0:c1] = dis
                rows[1, :, c0:c1] = spread
                stats.add(dis, spread)
                done += 1
                say(0.05 + 0.88 * done / n_blocks, f"trust map: block {done}/{n_blocks}")
            sink.write_rows(r0, rows)
        if cancel is not None and cancel.cancelled:
            raise Cancelled("cancelled by the user; no trust map was written")
        if not stats.n:
            raise InputError(f"{sr.name}: no LR pixel where both the SR output and a revisit are valid")
        summary = TrustSummary(
            path=out, sr_path=sr, mean_disagreement=stats.total / stats.n, p95_disagreement=stats.p95(),
            flagged_share=stats.flagged / stats.n, threshold=float(threshold),
            mean_spread=stats.spread_total / stats.spread_n if stats.spread_n else None,
            valid_pixels=stats.n, scale=scale, frames=labels,
            shifts_hr=[(round(float(a), 4), round(float(b), 4)) for a, b in cal.shifts],
            offsets=[round(float(o), 6) for o in cal.offsets], messages=messages,
        )
        sink.update_tags(**summary.tags())
        say(0.94, "building overviews")
        sink.commit()
        guard.pop_all()
    summary.seconds = time.perf_counter() - t_start
    messages.append(
        f"wrote the trust map {out} ({w} x {h} LR px): mean disagreement {summary.mean_disagreement:.4f}, "
        f"95th percentile {summary.p95_disagreement:.4f}, {100 * summary.flagged_share:.1f} % of pixels above "
        f"{threshold:g} (reflectance)")
    for m in messages:
        log.info(m)
    say(1.0, "done")
    return summary
