"""Georeferenced, tiled, streaming inference on real rasters: super-resolution and segmentation.

What it promises (DESIGN.md section 5): any raster size with memory that
grows at most with the raster's *width* (one strip of tiles is held, rows are
written as soon as they are final); outputs are tiled DEFLATE GeoTIFFs with
overviews, on the input's CRS and extent, written to a hidden temporary file
and renamed only when complete; cancel and errors leave nothing behind.

Radiometry: stored values -> reflectance (the raster's scale/offset metadata,
else Sentinel-2 DN x 1e-4 for integer data above 1.5, see
:func:`core.io.radiometry.detect_radiometry`) -> model units with the checkpoint
card's ``normalization`` -> model -> back to the *first input's* units and
dtype (rounded and clipped for integers).

Nodata: an output pixel is nodata where no frame was valid at its LR pixel.
Invalid pixels of one frame are filled from the other frames at that pixel
(else the strip's mean) before the model sees them. Outputs carry the input's
nodata value, or pick one (0 for unsigned, the minimum for signed integers,
NaN for floats) when invalid pixels exist; valid pixels are nudged off it.

Probabilities: written as float32 in [0, 1] with NaN as nodata (chosen over
uint8 0-255 so the 0.5 threshold and calibration read directly, with no scale
to remember); masks as uint8 1 = target, 0 = background, 255 = nodata.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from affine import Affine
from rasterio.windows import Window

from .. import __version__
from ..io.polygons import write_mask_vectors
from ..io.rasters import FrameSet, Grid, gdal_env, window_from_extent
from ..io.writer import GeoTiffSink, check_output_path, geotiff_profile
from ..jobs import Cancelled, CancelToken, InputError, OutputError, Progress, progress_fn, trust_path_for
from .runner import Axis, StripBlender

__all__ = [
    "CancelToken",
    "Cancelled",
    "InputError",
    "OutputError",
    "Progress",
    "SRResult",
    "SegResult",
    "super_resolve",
    "segment",
    "select_frames",
    "default_tile",
    "plan_tiles",
    "TilePlan",
    "trust_path_for",
]

log = logging.getLogger(__name__)

ModelLike = Union[str, os.PathLike, Tuple[torch.nn.Module, Any]]


@dataclass
class SRResult:
    path: Path
    frames_used: List[str]
    messages: List[str]
    trust_path: Optional[Path] = None
    checkpoint_sha256: Optional[str] = None
    tile: int = 0
    overlap: int = 0
    seconds: float = 0.0
    trust: Optional[Any] = None  # core.trust.TrustSummary when a trust map was written


@dataclass
class SegResult:
    prob_path: Optional[Path]
    mask_path: Optional[Path]
    vectors_path: Optional[Path]
    targets: List[str]
    messages: List[str]
    polygons: Dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


# --------------------------------------------------------------------------- models


@dataclass
class _Loaded:
    model: torch.nn.Module
    card: Any
    source: str
    sha256: Optional[str]

    @property
    def norm(self) -> Tuple[float, float]:
        n = getattr(self.card, "normalization", None) or {}
        return float(n.get("offset", 0.0)), float(n.get("scale", 1.0))

    @property
    def name(self) -> str:
        return str(getattr(self.card, "name", "") or getattr(self.card, "arch", "") or type(self.model).__name__)


def _load(checkpoint: ModelLike, device: torch.device) -> _Loaded:
    """A checkpoint path (via ``core.models.zoo``) or an already loaded ``(model, card)`` pair."""
    if isinstance(checkpoint, (tuple, list)) and len(checkpoint) == 2 and isinstance(checkpoint[0], torch.nn.Module):
        model, card = checkpoint
        source, sha = f"in-memory {type(model).__name__}", None
    else:
        from ..models.zoo import file_sha256, load_checkpoint

        path = Path(checkpoint)
        if not path.is_file():
            raise InputError(f"{path}: checkpoint file not found")
        model, card = load_checkpoint(path, device=str(device))
        source, sha = str(path), file_sha256(path)
    model = model.to(device).eval()
    return _Loaded(model, card, source, sha)


def _device(device: Union[str, torch.device, None], messages: List[str]) -> torch.device:
    dev = torch.device(device or "cpu")
    if dev.type == "cuda" and not torch.cuda.is_available():
        messages.append("CUDA was asked for but is not available here: running on the CPU")
        dev = torch.device("cpu")
    if dev.type == "cpu":
        messages.append(f"running on the CPU with {torch.get_num_threads()} thread(s)")
    return dev


def _available_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


#: PyTorch's CPU convolution takes its fast oneDNN path for a 5-D input only when
#: batch * channels * depth * height exceeds this (measured here with RAMS-small on
#: 128-px tiles: 14 s for one tile alone, 3.4 s per tile two at a time).
_ONEDNN_MIN_BCDH = 20480


@dataclass
class TilePlan:
    """How a raster is cut for a model: tile and overlap (input pixels) and tiles per model call."""

    tile: int
    overlap: int
    batch: int
    min_batch: int = 1  # a smaller last batch of a row is padded with copies up to this


def plan_tiles(card: Any, device: torch.device, task: str = "sr", tile: Optional[int] = None,
               overlap: Optional[int] = None, batch: Optional[int] = None) -> TilePlan:
    """Tile size, overlap and batch for a model: per-architecture defaults, shrunk to fit memory.

    RAMS works on 256-px LR tiles with 8 px of overlap (about 7 % recomputed);
    HAT's attention is heavier, 64 px for HAT/HAT-L and 96 for the small
    presets (multiples of its window) with 1/16 of the tile as overlap (about
    14 %); segmentation runs on 256-px HR tiles with 1/8 overlap (its
    receptive field is wider; about 30 %). Batch: 4 tiles per call on CUDA; on the
    CPU one, except for RAMS, whose 3-D convolutions fall onto PyTorch's slow
    native kernel when batch x filters x frames x rows is small, so enough
    tiles are batched (a short last batch padded with copies) to stay on the
    fast oneDNN path. The memory estimate is a rough per-pixel activation count
    so a small GPU or a busy machine gets smaller tiles. Explicit values win.
    """
    arch = str(getattr(card, "arch", "") or "").lower()
    hp = dict(getattr(card, "hparams", None) or {})
    cuda = device.type == "cuda"
    filters, frames = 0, 1
    if task == "segmentation":
        d_tile, per_px = (512 if cuda else 256), 4 * 64 * 12
    elif arch == "hat":
        preset = str(hp.get("preset", "hat")).lower()
        embed = int(hp.get("embed_dim", 96 if preset in ("hat-s", "hat-tiny", "hat-small") else 180))
        d_tile = 96 if embed <= 144 else 64
        if cuda:
            d_tile *= 2
        per_px = 4 * embed * 24
    elif arch == "rams":
        filters = int(hp.get("filters", 32))
        frames = int(getattr(card, "frames", 9) or 9)
        d_tile, per_px = 256, 4 * filters * frames * 8
    else:
        d_tile, per_px = 128, 4 * 64 * 8
    t = int(tile or d_tile)
    min_batch = 1
    if filters and not cuda:
        needed = -(-(_ONEDNN_MIN_BCDH + 1) // (filters * frames * t))
        min_batch = needed if needed <= 4 else 1  # tiny tiles/models: padding would cost more than it saves
    if batch is None:
        batch = 4 if cuda else min_batch
    batch = max(1, int(batch))
    min_batch = min(min_batch, batch)
    if tile is None:
        budget = _available_memory(device) // 4
        while t > 32 and per_px * t * t * batch > budget:
            t = (t * 3) // 4
    if overlap is None:
        if task == "segmentation":
            overlap = max(4, t // 8)
        elif filters:  # RAMS: 8 px of context already hide the seams; more is recomputation
            overlap = max(4, t // 32)
        else:
            overlap = max(4, t // 16)
    _check_tiling(t, int(overlap))
    return TilePlan(t, int(overlap), batch, min_batch)


def default_tile(card: Any, device: torch.device, task: str = "sr", batch: int = 1) -> Tuple[int, int]:
    """(tile, overlap) of :func:`plan_tiles` (kept for callers that only need the sizes)."""
    plan = plan_tiles(card, device, task, batch=batch)
    return plan.tile, plan.overlap


def _check_tiling(tile: int, overlap: int) -> None:
    if tile < 4:
        raise InputError(f"tile size {tile} is too small (use at least 16 pixels)")
    if overlap < 0 or 2 * overlap >= tile:
        raise InputError(f"overlap {overlap} must be at least 0 and less than half the tile size {tile}")


# --------------------------------------------------------------------------- frames


def select_frames(valid_fractions: Sequence[float], frames: int) -> Tuple[List[int], str]:
    """Fit the available frames to the model's T: the clearest first, repeated when too few.

    Returns indices into ``valid_fractions`` (clearest first, ties in input order)
    and a sentence saying what was done.
    """
    n = len(valid_fractions)
    order = sorted(range(n), key=lambda i: (-valid_fractions[i], i))
    usable = [i for i in order if valid_fractions[i] > 0]
    if not usable:
        raise InputError("no valid pixels in any input frame")
    if len(usable) >= frames:
        chosen = usable[:frames]
        dropped = n - frames
        if dropped > 0:
            note = f"the model takes {frames} frame(s): chose the {frames} clearest of {n}"
        else:
            note = f"the model takes {frames} frame(s): using all {n}"
    else:
        chosen = [usable[i % len(usable)] for i in range(frames)]
        note = (
            f"the model takes {frames} frame(s) but only {len(usable)} with valid pixels were given: "
            f"repeated them (clearest first) to make {frames}"
        )
        if len(usable) < n:
            note += f"; {n - len(usable)} frame(s) without valid pixels were left out"
    return chosen, note


def _fill_invalid(x: np.ndarray, valid: np.ndarray, fallback: float) -> np.ndarray:
    """Invalid pixels of a frame take the mean of the valid frames there, else the strip's mean."""
    if valid.all():
        return x
    count = valid.sum(0)
    total = np.where(valid, x, 0.0).sum(0)
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    if (count == 0).any():
        strip_mean = float(total.sum() / count.sum()) if count.sum() else fallback
        mean[count == 0] = strip_mean
    return np.where(valid, x, mean[None]).astype(np.float32, copy=False)


def anchor_offsets(lr: np.ndarray, lr_valid: np.ndarray, sr: np.ndarray, scale: int) -> np.ndarray:
    """Per-tile brightness offsets (reflectance) that give each SR tile the mean of its revisits.

    Why: cL1 and cPSNR subtract a constant bias before they compare, so a network trained on
    them is free to settle on any overall brightness, and some do (a cL1-only HAT can come out
    a quarter of the reflectance range too dark, which its cPSNR does not see but segmentation
    networks and an analyst's eye do). The S-2 degradation keeps the mean, so a faithful SR tile
    has the mean of its LR tile over the pixels the revisits saw; adding the difference restores
    the input's brightness without any HR image. Tiles overlap and are blended, so neighbouring
    offsets join smoothly. ``lr [B, T, h, w]``, ``lr_valid`` alike, ``sr [B, 1, s*h, s*w]``.
    """
    b, _t, h, w = lr.shape
    seen = lr_valid.any(1)  # [B, h, w]
    count = lr_valid.sum(1)
    per_pixel = np.divide(np.where(lr_valid, lr, 0.0).sum(1), count, out=np.zeros((b, h, w), np.float64),
                          where=count > 0)
    sr_blocks = sr[:, 0].reshape(b, h, scale, w, scale).mean(axis=(2, 4))
    n = seen.sum(axis=(1, 2))
    diff = np.where(seen, per_pixel - sr_blocks, 0.0).sum(axis=(1, 2))
    return np.divide(diff, n, out=np.zeros(b, np.float64), where=n > 0).astype(np.float32)


# --------------------------------------------------------------------------- the tiled pass


@dataclass
class _Spec:
    scale: int
    channels: int


def _run_tiles(rows: Axis, cols: Axis, read_strip, predict, specs: Sequence[_Spec], emit, batch: int,
               cancel: Optional[CancelToken], report, min_batch: int = 1) -> None:
    """Drive one tiled pass over an area.

    ``read_strip(row_origin) -> (x [F, tile_rows, strip_cols], valid [F, ...])``
    reads the input rows a tile row needs (with context); ``predict(xb, vb)``
    returns one array ``[B, C, s*t, s*t]`` per output spec; ``emit(spec_index,
    out_row0, rows [C, n, W*s], lr_valid [n/s, W])`` receives finished rows in
    order. Cancel is checked before every batch of tiles. A batch shorter than
    ``min_batch`` is padded with copies of its last tile (outputs discarded).
    """
    blenders = [StripBlender(rows, cols, s.scale, s.channels) for s in specs]
    total = len(rows.origins) * len(cols.origins)
    done = 0
    prev_valid: Optional[np.ndarray] = None
    prev_origin = 0
    c0 = -cols.start

    def release(blocks_per_spec):
        for i, blocks in enumerate(blocks_per_spec):
            s = specs[i].scale
            for r0, block in blocks:
                lr0 = r0 // s - prev_origin
                lr_valid = prev_valid[lr0 : lr0 + block.shape[1] // s]
                emit(i, r0, block, lr_valid)

    for oy in rows.origins:
        release([b.start_row(oy) for b in blenders])
        if cancel is not None and cancel.cancelled:
            raise Cancelled("cancelled by the user; no output was written")
        x, valid = read_strip(oy)
        prev_valid = valid.any(0)[:, c0 : c0 + cols.length] if valid.ndim == 3 else valid[:, c0 : c0 + cols.length]
        prev_origin = oy
        for b0 in range(0, len(cols.origins), batch):
            if cancel is not None and cancel.cancelled:
                raise Cancelled("cancelled by the user; no output was written")
            origins = cols.origins[b0 : b0 + batch]
            padded = origins + [origins[-1]] * max(0, min_batch - len(origins))
            xs = np.stack([x[:, :, o - cols.start : o - cols.start + cols.tile_len] for o in padded])
            vs = np.stack([valid[:, :, o - cols.start : o - cols.start + cols.tile_len] for o in padded])
            outs = predict(xs, vs)
            for i, out in enumerate(outs):
                for j, o in enumerate(origins):
                    blenders[i].add(o, out[j])
            done += len(origins)
            report(done, total)
    release([b.finish() for b in blenders])


def _to_output_dtype(values: np.ndarray, dtype: np.dtype, nodata: Optional[float]) -> np.ndarray:
    """Round and clip to an integer dtype, keeping valid pixels off the nodata value."""
    if np.issubdtype(dtype, np.floating):
        return values.astype(dtype)
    info = np.iinfo(dtype)
    out = np.rint(values, out=values)  # in place: these rows are full output width
    np.clip(out, info.min, info.max, out=out)
    if nodata is not None and np.isfinite(nodata):
        nudge = 1 if nodata < info.max else -1
        out[out == nodata] = nodata + nudge
    return out.astype(dtype)


def _nodata_candidate(dtype: np.dtype, given: Optional[float]) -> float:
    if given is not None:
        return given
    if np.issubdtype(dtype, np.floating):
        return float("nan")
    if np.issubdtype(dtype, np.unsignedinteger):
        return 0
    return int(np.iinfo(dtype).min)


def _inputs_list(inputs) -> List[Path]:
    if isinstance(inputs, (str, os.PathLike)):
        return [Path(inputs)]
    return [Path(p) for p in inputs]


# --------------------------------------------------------------------------- super-resolution


def super_resolve(
    inputs: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]],
    out_path: Union[str, os.PathLike],
    checkpoint: ModelLike,
    band: Union[int, str, None] = 1,
    tile: Optional[int] = None,
    overlap: Optional[int] = None,
    device: Union[str, torch.device] = "cpu",
    progress: Optional[Progress] = None,
    cancel: Optional[CancelToken] = None,
    extent: Optional[Sequence[float]] = None,
    trust: bool = False,
    batch: Optional[int] = None,
    anchor: bool = True,
) -> SRResult:
    """Super-resolve one raster (SISR) or several revisits (MISR) into a georeferenced GeoTIFF.

    ``inputs``: one raster, several revisits (aligned onto the first one's grid),
    or one raster whose bands are dates (``band="all"`` or a name prefixing
    several band descriptions). ``band``: 1-based index or band name.
    ``checkpoint``: a ``.safetensors`` path or a loaded ``(model, card)`` pair.
    ``extent``: (minx, miny, maxx, maxy) in the first input's CRS, to process
    only that window (snapped outward to its pixels). ``trust``: also write
    ``<out>_trust.tif`` with :func:`core.trust.trust_map` (disagreement of the
    output degraded back to S-2 with every revisit, and the revisits' spread;
    its summary is ``SRResult.trust``). ``anchor``: shift each tile's brightness to its
    revisits' mean (:func:`anchor_offsets`); off gives the network's raw output.
    Raises :class:`InputError`, :class:`OutputError` or :class:`Cancelled`.
    """
    t_start = time.perf_counter()
    say = progress_fn(progress)
    messages: List[str] = []
    paths = _inputs_list(inputs)
    out = check_output_path(out_path, paths)
    trust_out = check_output_path(trust_path_for(out), paths) if trust else None
    dev = _device(device, messages)
    loaded = _load(checkpoint, dev)
    card = loaded.card
    if str(getattr(card, "task", "sr") or "sr") != "sr":
        raise InputError(f"{loaded.source}: is a {card.task} model, not a super-resolution model")
    scale = int(getattr(card, "scale", None) or getattr(loaded.model, "scale", 3))
    t_frames = int(getattr(card, "frames", None) or getattr(loaded.model, "frames", 1))
    plan = plan_tiles(card, dev, "sr", tile, overlap, batch)
    tile, overlap, batch = plan.tile, plan.overlap, plan.batch
    sr_span = 0.8 if trust else 1.0  # share of the progress bar for the SR pass (the trust map takes the rest)
    say(0.0, "reading inputs")

    with gdal_env(), FrameSet(paths, band, messages) as fs:
        grid = fs.grid
        assert grid is not None
        window = window_from_extent(grid, extent)
        fs.inspect(window)
        fractions = [f.valid_fraction for f in fs.frames]
        if max(fractions) <= 0.0:
            names = ", ".join(f.label for f in fs.frames)
            raise InputError(f"no valid pixels in the area to process ({names}): every pixel is nodata")
        chosen, note = select_frames(fractions, t_frames)
        messages.append(note)
        ref = fs.frames[0]
        frames_used = [fs.frames[i].label for i in chosen]
        messages.append("frames used: " + "; ".join(f"{lbl} ({fractions[i]:.0%} valid)"
                                                     for lbl, i in zip(frames_used, chosen)))
        for f in {id(fs.frames[i]): fs.frames[i] for i in chosen}.values():
            if not f.radiometry.is_identity:
                messages.append(f"{f.label}: {f.radiometry.source}")
        offset, nscale = loaded.norm
        fallback = float(np.average([f.mean_reflectance for f in fs.frames], weights=np.maximum(fractions, 1e-9)))

        out_dtype = np.dtype(ref.dtype)
        in_nodata = ref.nodata
        nodata = _nodata_candidate(out_dtype, in_nodata)
        w_grid = Grid(grid.crs, rasterio_window_transform(window, grid.transform) * Affine.scale(1.0 / scale),
                      int(window.width) * scale, int(window.height) * scale)
        tags = {
            "SR_CHECKPOINT": loaded.source,
            "SR_CHECKPOINT_SHA256": loaded.sha256 or "",
            "SR_MODEL": loaded.name,
            "SR_SCALE": str(scale),
            "SR_INPUTS": json.dumps([str(p) for p in paths]),
            "SR_FRAMES_USED": json.dumps(frames_used),
            "SR_BAND": str(band),
            "SR_RADIOMETRY": ref.radiometry.source,
            "SR_TILE": f"{tile}/{overlap}",
            "SR_ANCHOR": "revisit mean per tile" if anchor else "none (raw network output)",
            "SOFTWARE": f"s2_taskdriven_sr {__version__}",
        }
        rows, cols = Axis(int(window.height), tile, overlap), Axis(int(window.width), tile, overlap)
        unique = list(dict.fromkeys(chosen))
        applied: List[float] = []  # brightness offsets of the tiles (anchor)

        def read_strip(oy: int):
            r0 = int(window.row_off) + oy
            c0 = int(window.col_off) + cols.start
            got = {k: fs.frames[k].read_padded(r0, r0 + rows.tile_len, c0, c0 + cols.stop - cols.start)
                   for k in unique}
            x = np.stack([got[k][0] for k in chosen])
            v = np.stack([got[k][1] for k in chosen])
            return _fill_invalid(x, v, fallback), v

        def predict(xb: np.ndarray, vb: np.ndarray):
            # Element-wise unit changes run in NumPy: on a busy CPU every small multi-threaded
            # torch op waits for a second thread to be scheduled.
            xm = (xb - np.float32(offset)) / np.float32(nscale)
            with torch.inference_mode():
                y = loaded.model(torch.from_numpy(np.ascontiguousarray(xm, dtype=np.float32)).to(dev))
                expected = (xb.shape[0], 1, xb.shape[2] * scale, xb.shape[3] * scale)
                if tuple(y.shape) != expected:
                    raise RuntimeError(f"{loaded.source}: the model returned {tuple(y.shape)}, expected {expected}")
                refl_np = y.float().cpu().numpy() * np.float32(nscale) + np.float32(offset)
            if anchor:
                shift = anchor_offsets(xb, vb, refl_np, scale)
                refl_np += shift[:, None, None, None]
                applied.extend(float(v) for v in shift)
            return [refl_np]

        sinks: List[GeoTiffSink] = []
        with ExitStack() as stack:
            sr_sink = GeoTiffSink(out, geotiff_profile(w_grid, out_dtype.name, 1, in_nodata), tags,
                                  [f"SR x{scale} {ref.description or f'band {ref.bidx}'}"], ref.scales)
            stack.callback(sr_sink.abort)
            sinks.append(sr_sink)

            def emit(i: int, r0: int, block: np.ndarray, lr_valid: np.ndarray) -> None:
                values = _to_output_dtype(ref.radiometry.from_reflectance(block[0], inplace=True),
                                          out_dtype, nodata)
                if not lr_valid.all():
                    values[~np.repeat(np.repeat(lr_valid, scale, 0), scale, 1)] = nodata
                    sr_sink.wrote_nodata = True
                sr_sink.write_rows(r0, values[None])

            def report(done: int, total: int) -> None:
                say(sr_span * 0.92 * done / total, f"super-resolving: tile {done}/{total}")

            _run_tiles(rows, cols, read_strip, predict, [_Spec(scale, 1)], emit, batch, cancel, report,
                       plan.min_batch)
            if cancel is not None and cancel.cancelled:
                raise Cancelled("cancelled by the user; no output was written")
            if applied:
                messages.append(_anchor_note(applied))
            if in_nodata is None and sr_sink.wrote_nodata:
                sr_sink.set_nodata(nodata)
                messages.append(f"some pixels have no valid input: written as nodata = {nodata}")
            say(sr_span * 0.93, "building overviews")
            for s in sinks:
                s.commit()
            stack.pop_all()
    messages.append(f"wrote {out} ({w_grid.width} x {w_grid.height} px, x{scale}, tiles {tile} px with {overlap} px overlap, {batch} per model call)")
    summary = None
    if trust_out is not None:
        summary = _write_trust(out, paths, band, trust_out, say, sr_span, cancel, messages)
    for m in messages:
        log.info(m)
    say(1.0, "done")
    return SRResult(out, frames_used, messages, trust_out, loaded.sha256, tile, overlap, time.perf_counter() - t_start,
                    summary)


def _write_trust(out: Path, paths: Sequence[Path], band, trust_out: Path, say, start: float,
                 cancel: Optional[CancelToken], messages: List[str]):
    """The trust map of a finished SR output (``core.trust``); on cancel or error the SR output goes too.

    One job, one answer: a run asked for SR + trust map that stops half-way
    leaves neither, as a cancelled SR run leaves nothing.
    """
    from .trust import trust_map

    try:
        summary = trust_map(out, paths, band, trust_out, cancel=cancel,
                            progress=lambda f, m: say(start + (1.0 - start) * f, m))
    except BaseException:
        for p in (out, Path(f"{out}.aux.xml")):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        raise
    messages.extend(summary.messages)
    return summary


def _anchor_note(offsets: Sequence[float]) -> str:
    """Say how far the network's own brightness was from the revisits' (in reflectance)."""
    mean, spread = float(np.mean(offsets)), float(np.max(np.abs(offsets)))
    text = f"brightness anchored to the revisits: mean offset {mean:+.4f} reflectance (largest {spread:.4f})"
    if spread > 0.02:
        text += ("; the network's raw output is off in brightness (a cL1-trained network is blind to a "
                 "constant offset); anchor=False / --no-anchor writes it as it is")
    return text


def rasterio_window_transform(window: Window, transform: Affine) -> Affine:
    """Transform of a window's top-left pixel (whole-pixel windows)."""
    return transform * Affine.translation(int(window.col_off), int(window.row_off))


# --------------------------------------------------------------------------- segmentation


def _as_model_list(checkpoint) -> List[ModelLike]:
    if isinstance(checkpoint, (str, os.PathLike)):
        return [checkpoint]
    if isinstance(checkpoint, (tuple, list)) and len(checkpoint) == 2 and isinstance(checkpoint[0], torch.nn.Module):
        return [checkpoint]
    return list(checkpoint)


def segment(
    input_path: Union[str, os.PathLike],
    checkpoint: Union[ModelLike, Sequence[ModelLike]],
    out_prob: Optional[Union[str, os.PathLike]] = None,
    out_mask: Optional[Union[str, os.PathLike]] = None,
    vectors: Optional[Union[str, os.PathLike]] = None,
    band: Union[int, str] = 1,
    tile: Optional[int] = None,
    overlap: Optional[int] = None,
    device: Union[str, torch.device] = "cpu",
    progress: Optional[Progress] = None,
    cancel: Optional[CancelToken] = None,
    extent: Optional[Sequence[float]] = None,
    threshold: float = 0.5,
    batch: Optional[int] = None,
) -> SegResult:
    """Segment buildings and/or roads on a raster (an SR output or any HR raster).

    ``checkpoint``: one or several segmentation checkpoints (paths or
    ``(model, card)`` pairs), one output band per target (``card.target``).
    ``out_prob``: float32 probabilities; ``out_mask``: uint8 mask (prob >
    ``threshold``); ``vectors``: a GeoPackage with one polygon layer per target
    (needs ``out_mask``).
    """
    t_start = time.perf_counter()
    say = progress_fn(progress)
    messages: List[str] = []
    src = Path(input_path)
    if out_prob is None and out_mask is None:
        raise OutputError("give at least one output: a probability raster or a mask raster")
    if vectors is not None and out_mask is None:
        raise OutputError("vectors are made from the mask: give a mask output too")
    prob_out = check_output_path(out_prob, [src]) if out_prob is not None else None
    mask_out = check_output_path(out_mask, [src]) if out_mask is not None else None
    vec_out = check_output_path(vectors, [src]) if vectors is not None else None
    outs_given = [p for p in (prob_out, mask_out, vec_out) if p is not None]
    if len({p.resolve() for p in outs_given}) < len(outs_given):
        raise OutputError("the probability, mask and vector outputs must be different files")
    dev = _device(device, messages)
    models = [_load(c, dev) for c in _as_model_list(checkpoint)]
    if not models:
        raise InputError("no segmentation checkpoint given")
    targets: List[str] = []
    for m in models:
        if str(getattr(m.card, "task", "") or "") != "segmentation":
            raise InputError(f"{m.source}: is not a segmentation model (task {getattr(m.card, 'task', None)!r})")
        target = str(getattr(m.card, "target", None) or f"class{len(targets) + 1}")
        if target in targets:
            raise InputError(f"{m.source}: a second model for {target!r}; give one model per target")
        targets.append(target)
    plan = plan_tiles(models[0].card, dev, "segmentation", tile, overlap, batch)
    tile, overlap, batch = plan.tile, plan.overlap, plan.batch
    say(0.0, "reading input")

    with gdal_env(), FrameSet([src], band, messages) as fs:
        if len(fs.frames) != 1:
            raise InputError(f"{src.name}: band {band!r} selects {len(fs.frames)} bands; segmentation takes one")
        grid = fs.grid
        assert grid is not None
        window = window_from_extent(grid, extent)
        fs.inspect(window)
        frame = fs.frames[0]
        if frame.valid_fraction <= 0.0:
            raise InputError(f"{frame.label}: no valid pixels in the area to process (every pixel is nodata)")
        if not frame.radiometry.is_identity:
            messages.append(f"{frame.label}: {frame.radiometry.source}")
        fallback = frame.mean_reflectance
        o_grid = Grid(grid.crs, rasterio_window_transform(window, grid.transform), int(window.width), int(window.height))
        tags = {
            "SEG_CHECKPOINTS": json.dumps([m.source for m in models]),
            "SEG_CHECKPOINTS_SHA256": json.dumps([m.sha256 for m in models]),
            "SEG_TARGETS": json.dumps(targets),
            "SEG_INPUT": str(src),
            "SEG_BAND": str(band),
            "SEG_THRESHOLD": str(threshold),
            "SOFTWARE": f"s2_taskdriven_sr {__version__}",
        }
        rows, cols = Axis(int(window.height), tile, overlap), Axis(int(window.width), tile, overlap)

        def read_strip(oy: int):
            r0 = int(window.row_off) + oy
            c0 = int(window.col_off) + cols.start
            x, valid = frame.read_padded(r0, r0 + rows.tile_len, c0, c0 + cols.stop - cols.start)
            return _fill_invalid(x[None], valid[None], fallback), valid[None]

        def predict(xb: np.ndarray, vb: np.ndarray):
            with torch.inference_mode():
                probs = []
                for m in models:
                    o, s = m.norm
                    xm = np.ascontiguousarray((xb - np.float32(o)) / np.float32(s), dtype=np.float32)
                    logits = m.model(torch.from_numpy(xm).to(dev))
                    if tuple(logits.shape) != tuple(xb.shape):
                        raise RuntimeError(f"{m.source}: returned {tuple(logits.shape)}, expected {tuple(xb.shape)}")
                    probs.append(torch.sigmoid(logits.float()).cpu().numpy())
                return [np.concatenate(probs, 1)]

        with ExitStack() as stack:
            sinks: Dict[str, GeoTiffSink] = {}
            if prob_out is not None:
                sinks["prob"] = GeoTiffSink(prob_out, geotiff_profile(o_grid, "float32", len(targets), float("nan")),
                                            dict(tags, SEG_KIND="probability 0..1"), targets)
                stack.callback(sinks["prob"].abort)
            if mask_out is not None:
                sinks["mask"] = GeoTiffSink(mask_out, geotiff_profile(o_grid, "uint8", len(targets), 255),
                                            dict(tags, SEG_KIND="mask 1=target 0=background 255=nodata"), targets)
                stack.callback(sinks["mask"].abort)

            def emit(i: int, r0: int, block: np.ndarray, lr_valid: np.ndarray) -> None:
                invalid = ~lr_valid
                if "prob" in sinks:
                    p = block.astype(np.float32, copy=True)
                    p[:, invalid] = np.nan
                    sinks["prob"].write_rows(r0, p)
                if "mask" in sinks:
                    mk = (block > threshold).astype(np.uint8)
                    mk[:, invalid] = 255
                    sinks["mask"].write_rows(r0, mk)

            def report(done: int, total: int) -> None:
                say(0.85 * done / total, f"segmenting: tile {done}/{total}")

            _run_tiles(rows, cols, read_strip, predict, [_Spec(1, len(targets))], emit, batch, cancel, report,
                       plan.min_batch)
            if cancel is not None and cancel.cancelled:
                raise Cancelled("cancelled by the user; no output was written")
            say(0.87, "building overviews")
            for s in sinks.values():
                s.commit()
            stack.pop_all()
    counts: Dict[str, int] = {}
    if vec_out is not None and mask_out is not None:
        say(0.9, "vectorizing the mask")
        counts = write_mask_vectors(mask_out, vec_out, targets)
        messages.append("vectors: " + ", ".join(f"{n} {t} polygon(s)" for t, n in counts.items()) + f" in {vec_out}")
    for p in (prob_out, mask_out):
        if p is not None:
            messages.append(f"wrote {p} ({', '.join(targets)}; {o_grid.width} x {o_grid.height} px)")
    for m in messages:
        log.info(m)
    say(1.0, "done")
    return SegResult(prob_out, mask_out, vec_out, targets, messages, counts, time.perf_counter() - t_start)
