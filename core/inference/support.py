"""What the 10 m data supports: a reference image with no network, and the rule that calls an object supported.

A building or road found on an SR output may be one the network painted. The
same segmentation networks, run on an image that no SR network touched, say
which objects the 10 m input already shows. That reference is the **bicubic
upsampling of the per-pixel mean of the output's LR inputs** (the ones its
``SR_INPUTS`` tag records; the mean, as evaluation's bicubic baseline), on the
SR grid. When those inputs are gone or do not fit, it is the **SR output
degraded to 10 m (3x3 area mean) and upsampled back**: all that is finer than
10 m removed, so only what the output shows at 10 m remains (a weaker check:
an object invented at 10 m scale survives it; the messages say which was used).

Both are read like a :class:`core.io.rasters.Frame` (``read_padded`` on the SR
grid, reflect-padded beyond the raster), so the segmentation pass runs the
networks on output and reference tile by tile in one pass.

**Supported** (the GeoPackage attribute ``supported``, 1 or 0): an object is
supported when at least :data:`SUPPORT_SHARE` of its pixels are also found on
the reference (``on_bicubic``), or when a trust map exists and its mean trust
class is below :data:`SUPPORT_MAX_TRUST` (its pixels are mostly "supported").
Why both: SR exists to find objects too small for 10 m, so "also on bicubic"
alone would throw away exactly what SR adds; the trust map then vouches for
the pixels. Why 0.3: a real object seen at 10 m is found on the blurry
reference over a smaller, shifted footprint (its edges fall below the
threshold), so requiring most of its pixels would drop true objects; a third
of them is enough to say the 10 m data show *something* there. The numbers
were checked on world-v2 scenes (``scripts/evaluate_trust.py``: false objects
removed vs true objects lost).
"""

from __future__ import annotations

import json
import math
import secrets
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import rasterio
import torch
import torch.nn.functional as F

from ..io.polygons import RasterStat
from ..io.rasters import FrameSet, Grid
from ..io.writer import GeoTiffSink, geotiff_profile
from ..jobs import JobError, trust_path_for
from .bands import band_of_frame
from .trust import class_path_for
from .trust_consistency import sr_lr_window

__all__ = ["BicubicFrame", "DegradedFrame", "SUPPORT_SHARE", "SUPPORT_MAX_TRUST", "support_fields", "frames_of_band",
           "SupportPass", "prepare_support"]

#: Share of an object's pixels also found on the reference above which it is ``on_bicubic``.
SUPPORT_SHARE = 0.3
#: Mean trust class (0 supported .. 2 likely invented) below which the trust map vouches for an object.
SUPPORT_MAX_TRUST = 1.0
#: LR pixels of context the bicubic kernel needs on each side.
_CONTEXT = 2


def _reflect_read(inner, row0: int, row1: int, col0: int, col1: int, height: int,
                  width: int) -> Tuple[np.ndarray, np.ndarray]:
    """Rows/cols of a grid via ``inner(r0, r1, c0, c1)`` for the part inside it, reflect-padded beyond."""
    r0, r1 = max(0, row0), min(height, row1)
    c0, c1 = max(0, col0), min(width, col1)
    if r1 <= r0 or c1 <= c0:
        raise ValueError("strip outside the raster")
    data, valid = inner(r0, r1, c0, c1)
    pads = ((r0 - row0, row1 - r1), (c0 - col0, col1 - c1))
    if any(p for pair in pads for p in pair):
        data = np.pad(data, pads, mode="reflect")
        valid = np.pad(valid, pads, mode="reflect")
    return data.astype(np.float32, copy=False), valid


def _bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(lr, dtype=np.float32))[None, None]
    return F.interpolate(t, scale_factor=scale, mode="bicubic", align_corners=False)[0, 0].numpy()


class _UpsampledFrame:
    """Read like a frame on the SR grid: an LR image (``_lr``, with context around the window) upsampled bicubically.

    Subclasses set ``scale``, ``height`` and ``width`` (the SR raster's) and give
    ``_lr(lr0, lr1, lc0, lc1)``: the LR image and its validity over those LR rows and columns.
    """

    scale: int
    height: int
    width: int

    def _lr(self, lr0: int, lr1: int, lc0: int, lc1: int) -> Tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _inner(self, r0: int, r1: int, c0: int, c1: int) -> Tuple[np.ndarray, np.ndarray]:
        s, m = self.scale, _CONTEXT
        lr0, lr1 = r0 // s - m, math.ceil(r1 / s) + m
        lc0, lc1 = c0 // s - m, math.ceil(c1 / s) + m
        lr, seen = self._lr(lr0, lr1, lc0, lc1)
        up = _bicubic(lr, s)
        ok = np.repeat(np.repeat(seen, s, 0), s, 1)
        y0, x0 = r0 - lr0 * s, c0 - lc0 * s
        return (up[y0 : y0 + r1 - r0, x0 : x0 + c1 - c0], ok[y0 : y0 + r1 - r0, x0 : x0 + c1 - c0])

    def read_padded(self, row0: int, row1: int, col0: int, col1: int) -> Tuple[np.ndarray, np.ndarray]:
        return _reflect_read(self._inner, row0, row1, col0, col1, self.height, self.width)


class BicubicFrame(_UpsampledFrame):
    """Bicubic upsampling of the mean of LR frames, read on the SR grid like a frame.

    ``frames``: one band of every revisit on the LR grid; ``col_off``/``row_off``:
    the LR pixel under the SR raster's corner; ``height``/``width``: the SR raster's size.
    """

    def __init__(self, frames: Sequence[object], scale: int, row_off: int, col_off: int, height: int,
                 width: int, description: str = "") -> None:
        self.frames, self.scale = list(frames), scale
        self.row_off, self.col_off = row_off, col_off
        self.height, self.width = height, width
        self.description = description
        self.bidx = 1
        self.label = f"bicubic of {len(self.frames)} revisit(s)"
        self.valid_fraction = min(getattr(f, "valid_fraction", 1.0) for f in self.frames)
        self.mean_reflectance = float(np.mean([getattr(f, "mean_reflectance", 0.0) for f in self.frames]))

    def _lr(self, lr0: int, lr1: int, lc0: int, lc1: int) -> Tuple[np.ndarray, np.ndarray]:
        got = [f.read_padded(self.row_off + lr0, self.row_off + lr1, self.col_off + lc0, self.col_off + lc1)
               for f in self.frames]
        x = np.stack([g[0] for g in got])
        v = np.stack([g[1] for g in got])
        count = v.sum(0)
        mean = np.divide(np.where(v, x, 0).sum(0), count, out=np.zeros(count.shape, np.float32), where=count > 0)
        seen = count > 0
        if not seen.all():
            mean = np.where(seen, mean, np.float32(mean[seen].mean()) if seen.any() else np.float32(0))
        return mean, seen


class DegradedFrame(_UpsampledFrame):
    """An SR band brought down to 10 m (``scale`` x ``scale`` area mean) and bicubic-upsampled back."""

    def __init__(self, frame: object, scale: int, height: int, width: int) -> None:
        self.frame, self.scale, self.height, self.width = frame, scale, height, width
        self.description = getattr(frame, "description", "")
        self.bidx = getattr(frame, "bidx", 1)
        self.label = f"{getattr(frame, 'label', 'SR')} at 10 m, upsampled back"
        self.valid_fraction = getattr(frame, "valid_fraction", 1.0)
        self.mean_reflectance = getattr(frame, "mean_reflectance", 0.0)

    def _lr(self, b0: int, b1: int, a0: int, a1: int) -> Tuple[np.ndarray, np.ndarray]:
        s = self.scale
        x, v = self.frame.read_padded(b0 * s, b1 * s, a0 * s, a1 * s)
        h, w = b1 - b0, a1 - a0
        if not v.all():
            x = np.where(v, x, np.float32(x[v].mean()) if v.any() else np.float32(0))
        return x.reshape(h, s, w, s).mean(axis=(1, 3)), v.reshape(h, s, w, s).all(axis=(1, 3))


def frames_of_band(frames: Sequence[object], name: Optional[str]) -> List[object]:
    """The LR frames holding the S-2 band ``name`` (all of them when ``name`` is None or none is named)."""
    if name is None:
        return list(frames)
    chosen = [f for f in frames if band_of_frame(f) == name]
    return chosen or list(frames)


def support_fields(stats: Dict[str, Optional[float]]) -> Dict[str, object]:
    """``on_bicubic`` and ``supported`` (1/0) of one object from its ``bicubic_share`` and ``trust_class``."""
    share = stats.get("bicubic_share")
    trust = stats.get("trust_class")
    on_bicubic = share is not None and share >= SUPPORT_SHARE
    vouched = trust is not None and trust < SUPPORT_MAX_TRUST
    return {"on_bicubic": int(on_bicubic), "supported": int(on_bicubic or vouched)}


# --------------------------------------------------------------------------- the segmentation job's side


@dataclass
class SupportPass:
    """The reference frames of one segmentation job and the temporary raster of both images' probabilities.

    The raster (hidden, beside the vectors; removed after vectorizing) holds
    ``targets`` bands of the output's probabilities, then ``targets`` bands of
    the reference's: what the per-polygon statistics read.
    """

    reference: List[object]
    sink: GeoTiffSink
    path: Path
    targets: int
    class_path: Optional[Path]

    def write_rows(self, r0: int, block: np.ndarray, invalid: np.ndarray) -> None:
        p = block.astype(np.float32, copy=True)
        p[:, invalid] = np.nan
        self.sink.write_rows(r0, p)

    def vector_options(self, targets: Sequence[str], threshold: float, supported_only: bool,
                       messages: List[str]) -> Dict[str, Any]:
        """``stats``, ``derive`` and ``keep`` for :func:`core.io.polygons.write_mask_vectors`."""
        n = len(targets)
        stats = [RasterStat("prob_mean", self.path, {t: i + 1 for i, t in enumerate(targets)}),
                 RasterStat("bicubic_share", self.path, {t: n + i + 1 for i, t in enumerate(targets)},
                            above=float(threshold))]
        stats.append(RasterStat("trust_class", self.class_path, {t: 1 for t in targets}, ignore=255))
        messages.append(
            f"polygon attributes: prob_mean, bicubic_share (share of its pixels also found on the reference), "
            f"on_bicubic (share >= {SUPPORT_SHARE:g}), "
            + ("trust_class (mean trust class, 0 supported .. 2 likely invented), " if self.class_path else "")
            + f"supported = on_bicubic{f' or trust_class < {SUPPORT_MAX_TRUST:g}' if self.class_path else ''}"
            + ("; only supported objects written" if supported_only else ""))
        return {"stats": stats, "derive": support_fields,
                "keep": (lambda a: a["supported"] == 1) if supported_only else None}

    def remove(self) -> None:
        for p in (self.path, Path(f"{self.path}.aux.xml")):
            try:
                p.unlink()
            except FileNotFoundError:
                pass


def _band_spec(value: Optional[str]):
    if value is None or str(value).strip().lower() == "all":
        return "all"
    return int(value) if str(value).strip().isdigit() else value


def _bicubic_reference(src: Path, tags: Dict[str, str], grid: Grid, bands: Sequence[object],
                       messages: List[str], stack: ExitStack) -> List[object]:
    """Bicubic frames of the recorded LR inputs for each band read, or :class:`JobError` saying why not."""
    raw = tags.get("SR_INPUTS")
    if not raw:
        raise JobError("it records no LR inputs")
    paths = [Path(p) for p in json.loads(raw)]
    gone = [p.name for p in paths if not p.is_file()]
    if gone:
        raise JobError(f"its recorded inputs are gone ({', '.join(gone)})")
    spec = _band_spec(tags.get("SR_BAND"))
    lr = stack.enter_context(FrameSet(paths, spec, []))
    assert lr.grid is not None
    scale, window = sr_lr_window(grid, lr.grid, src.name, "its recorded inputs", tags.get("SR_SCALE"))
    lr.inspect(window)
    frames = [f for f in lr.frames if f.valid_fraction > 0]
    if not frames:
        raise JobError("no recorded input has a valid pixel under it")
    out = []
    for b in bands:
        chosen = frames_of_band(frames, band_of_frame(b)) if spec == "all" else frames
        out.append(BicubicFrame(chosen, scale, int(window.row_off), int(window.col_off), grid.height, grid.width,
                                getattr(b, "description", "")))
    messages.append(f"support: the same networks also segment the bicubic upsampling of the mean of its "
                    f"{len(frames) // max(1, len(bands)) if spec == 'all' else len(frames)} recorded input "
                    f"revisit(s) ({', '.join(p.name for p in paths[:3])}{'...' if len(paths) > 3 else ''})")
    return out


def _class_raster(src: Path, grid: Grid, messages: List[str]) -> Optional[Path]:
    """The trust class raster beside ``src`` when it exists and lies on the segmented grid."""
    path = class_path_for(trust_path_for(src))
    if not path.is_file():
        return None
    with rasterio.open(path) as ds:
        same = (ds.width, ds.height) == (grid.width, grid.height) and ds.transform.almost_equals(grid.transform)
    if not same:
        messages.append(f"support: {path.name} is not on the segmented grid (a sub-extent?); no trust_class")
        return None
    messages.append(f"support: mean trust class of each polygon from {path.name}")
    return path


def prepare_support(src: Path, fs: FrameSet, bands: Sequence[object], grid: Grid, vectors: Path, targets: int,
                    messages: List[str], stack: ExitStack) -> SupportPass:
    """Reference frames for ``bands`` of ``src`` (segmented on ``grid``) and the temporary raster, in ``stack``."""
    assert fs.grid is not None
    with rasterio.open(src) as ds:
        tags = ds.tags()
    try:
        reference = _bicubic_reference(src, tags, fs.grid, bands, messages, stack)
    except JobError as exc:
        scale = int(tags["SR_SCALE"]) if str(tags.get("SR_SCALE", "")).isdigit() else 3
        reference = [DegradedFrame(b, scale, fs.grid.height, fs.grid.width) for b in bands]
        messages.append(f"support: {src.name}: {exc}; the reference is the input itself degraded to "
                        f"{scale}x coarser pixels and upsampled back (a weaker check: objects invented at that "
                        "scale survive it)")
    path = vectors.with_name(f".{vectors.stem}.support-{secrets.token_hex(4)}.tif")
    sink = GeoTiffSink(path, geotiff_profile(grid, "float32", 2 * targets, float("nan")))
    support = SupportPass(reference, sink, path, targets, _class_raster(src, grid, messages))
    stack.callback(support.remove)
    stack.callback(sink.abort)
    return support
