"""Super-resolution of georeferenced rasters: one band or Sentinel-2's four 10 m bands, one date or many.

What it promises (DESIGN.md section 5): any raster size with memory that
grows at most with the raster's *width* (one strip of tiles is held, rows are
written as soon as they are final) and a refusal up front when even that does
not fit; outputs are tiled DEFLATE GeoTIFFs with overviews, on the input's CRS
and extent, written to a hidden temporary file and renamed only when complete;
cancel and errors leave nothing behind.

Radiometry: stored values -> reflectance (the raster's scale/offset metadata,
else Sentinel-2 DN x 1e-4 for integer data, see
:func:`core.io.radiometry.detect_radiometry`) -> model units with the
checkpoint card's ``normalization`` -> model -> back to the reference frame's
units and dtype (rounded and clipped for integers).

Nodata: an output pixel is nodata where no date was valid at its LR pixel.
Invalid pixels of one date are filled from the other dates at that pixel
(else the strip's mean) before the model sees them. Outputs carry the input's
nodata value, or pick one when invalid pixels exist; valid pixels are nudged off it.

The tiled pass itself (:func:`sr_tiles`) takes frames that can be read by rows
(files through :class:`core.io.rasters.FrameSet`, or arrays through
:class:`core.inference.runner.ArrayFrame`), so evaluation runs the very same
code on in-memory scenes.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from affine import Affine
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from torch.nn.utils import parametrize

from .. import __version__
from ..io.checks import check_inputs, enforce
from ..io.geo import compose
from ..io.input_signs import input_level
from ..io.qgis_style import style_path_for, write_composite_style
from ..io.radiometry import radiometry_notes
from ..io.rasters import FrameSet, Grid, gdal_env, window_from_extent
from ..io.writer import GeoTiffSink, check_output_path, geotiff_profile
from ..jobs import CancelToken, InputError, Progress, check_cancel, progress_fn
from ..options import SuperResolveOptions
from .anchor import anchor_note, anchor_offsets
from .bands import band_description, group_frames
from .frames import fill_invalid, select_frames
from .loading import LoadedModel, ModelLike, choose_device, load_model
from .planning import TilePlan, check_footprint, estimate_footprint, plan_tiles
from .runner import Axis, OutputSpec, run_tiles
from .values import nodata_candidate, to_output_dtype

__all__ = ["SRResult", "super_resolve", "sr_tiles", "model_input"]

log = logging.getLogger(__name__)

#: Anything with ``read_padded(r0, r1, c0, c1) -> (reflectance, valid)`` on the reference grid.
FrameLike = Any
#: ``emit(out_row0, reflectance [C, n, W*s], lr_valid [n/s, W])``
EmitRows = Callable[[int, np.ndarray, np.ndarray], None]


@dataclass
class SRResult:
    """What a super-resolution run wrote and did (messages are worded for the analyst)."""

    path: Path
    frames_used: List[str]
    messages: List[str]
    trust_path: Optional[Path] = None
    checkpoint_sha256: Optional[str] = None
    tile: int = 0
    overlap: int = 0
    seconds: float = 0.0
    trust: Optional[Any] = None  # core.inference.trust.TrustSummary when a trust map was written
    bands: List[str] = field(default_factory=list)
    style_path: Optional[Path] = None  # the QGIS style written beside a true-colour output

    @property
    def written(self) -> List[Path]:
        """Every file the job wrote: the output, its style, then its trust map and classes when made."""
        return [Path(self.path), *([Path(self.style_path)] if self.style_path else []),
                *(self.trust.written if self.trust is not None else [])]


def model_input(x, frames: int):
    """Arrange a batch ``[B, T, C, h, w]`` (NumPy or torch) the way an SR network takes it.

    Single-image networks (HAT, ``frames == 1``) take ``[B, C, h, w]``; a
    one-band multi-image network (RAMS) the familiar ``[B, T, h, w]``; a
    multi-band one ``[B, T, C, h, w]``. Training and inference both use this, so
    the two can never feed a network differently.
    """
    if frames == 1:
        return x[:, 0]
    if x.shape[2] == 1:
        return x[:, :, 0]
    return x


def strip_reader(dates: Sequence[Sequence[FrameLike]], window: Window, rows: Axis, cols: Axis,
                 fill: float) -> Callable[[int], Tuple[np.ndarray, np.ndarray]]:
    """``read_strip(oy)`` for :func:`run_tiles`: one strip of every date, ``[T, C, h, w]`` and its validity ``[T, h, w]``.

    Each frame is read once even when several dates share it; invalid pixels
    are filled (``fill``) as the network expects. Plain SR and the trust map's
    test-time augmentation read their inputs the same way.
    """
    unique: Dict[int, FrameLike] = {}
    for group in dates:
        for f in group:
            unique.setdefault(id(f), f)

    def read_strip(oy: int) -> Tuple[np.ndarray, np.ndarray]:
        r0 = int(window.row_off) + oy
        c0 = int(window.col_off) + cols.start
        got = {k: f.read_padded(r0, r0 + rows.tile_len, c0, c0 + cols.stop - cols.start) for k, f in unique.items()}
        x = np.stack([np.stack([got[id(f)][0] for f in group]) for group in dates])  # [T, C, h, w]
        v = np.stack([np.logical_and.reduce([got[id(f)][1] for f in group]) for group in dates])  # [T, h, w]
        return fill_invalid(x, v, fill), v

    return read_strip


def sr_tiles(dates: Sequence[Sequence[FrameLike]], window: Window, loaded: LoadedModel, plan: TilePlan,
             anchor: bool, fallback: Sequence[float], emit: EmitRows, cancel: Optional[object] = None,
             report: Optional[Callable[[int, int], None]] = None) -> List[float]:
    """The tiled super-resolution pass shared by the plugin's outputs and evaluation.

    ``dates[t][c]``: the frame of band c at date t (all on one grid; a date's
    bands share its validity). ``window``: the area in grid pixels.
    ``fallback``: per band, the reflectance that fills pixels no date saw.
    Returns the anchoring offsets applied (one per tile and band).
    """
    scale = loaded.scale
    channels = len(dates[0])
    rows, cols = Axis(int(window.height), plan.tile, plan.overlap), Axis(int(window.width), plan.tile, plan.overlap)
    applied: List[float] = []
    fallback_mean = float(np.mean(fallback)) if len(fallback) else 0.0
    read_strip = strip_reader(dates, window, rows, cols, fallback_mean)

    def predict(xb: np.ndarray, vb: np.ndarray):
        with torch.inference_mode(), parametrize.cached():  # weight-norm weights computed once per call
            xm = loaded.to_model(model_input(xb, loaded.frames))
            y = loaded.model(torch.from_numpy(xm).to(loaded.device))
            expected = (xb.shape[0], channels, xb.shape[-2] * scale, xb.shape[-1] * scale)
            if tuple(y.shape) != expected:
                raise RuntimeError(f"{loaded.source}: the model returned {tuple(y.shape)}, expected {expected}")
            refl = loaded.to_reflectance(y)
        if anchor:
            shift = anchor_offsets(xb, vb, refl, scale)  # [B, C]
            refl += shift[:, :, None, None]
            applied.extend(float(v) for v in shift.ravel())
        return [refl]

    run_tiles(rows, cols, read_strip, predict, [OutputSpec(scale, channels)],
              lambda _i, r0, block, lr_valid: emit(r0, block, lr_valid), plan.batch, cancel, report)
    return applied


def _inputs_list(inputs) -> List[Path]:
    if isinstance(inputs, (str, os.PathLike)):
        return [Path(inputs)]
    return [Path(p) for p in inputs]


def _checkpoint_paths(checkpoint: ModelLike) -> List[Path]:
    return [Path(checkpoint)] if isinstance(checkpoint, (str, os.PathLike)) else []


def _write_style(out: Path, band_names: Sequence[str], messages: List[str]) -> Optional[Path]:
    """``<out>.qml`` beside an output holding B02, B03, B04: QGIS opens it in true colour without the plugin.

    A style is a convenience, not the product: failing to write one is said, not raised. Returns the
    style written (None when none was).
    """
    if not {"B02", "B03", "B04"} <= set(band_names) and not style_path_for(out).is_file():
        return None
    try:
        style = write_composite_style(out)
    except (OSError, ValueError) as exc:
        messages.append(f"could not write the QGIS style {style_path_for(out).name}: {exc}")
        return None
    if style is not None:
        messages.append(f"wrote {style.name}: QGIS opens the output in true colour (B04/B03/B02)")
    return style


def super_resolve(
    inputs: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]],
    out_path: Union[str, os.PathLike],
    checkpoint: ModelLike,
    options: Optional[SuperResolveOptions] = None,
    progress: Optional[Progress] = None,
    cancel: Optional[CancelToken] = None,
) -> SRResult:
    """Super-resolve one raster (single-image networks) or several revisits (multi-image) into a GeoTIFF.

    ``inputs``: one raster, several revisits (aligned onto the first one's grid),
    one raster whose bands are dates (``band="all"`` or a name prefixing several
    band descriptions), or rasters holding Sentinel-2's 10 m bands
    (``options.all_bands``). ``checkpoint``: a ``.safetensors`` path or a loaded
    ``(model, card)`` pair. Raises :class:`core.jobs.InputError`,
    :class:`core.jobs.OutputError` or :class:`core.jobs.Cancelled`.
    """
    options = options or SuperResolveOptions()
    t_start = time.perf_counter()
    say = progress_fn(progress)
    messages: List[str] = []
    paths = _inputs_list(inputs)
    out = check_output_path(out_path, [*paths, *_checkpoint_paths(checkpoint)])
    dev = choose_device(options.device, messages)
    loaded = load_model(checkpoint, dev, task="sr")
    say(0.0, "checking inputs")
    checks = check_inputs(paths, "all" if options.all_bands else options.band, loaded.bands or ("B8",),
                          multi_image=loaded.frames > 1, cards=[loaded.card])
    # the processing level is said even when fine: the analyst must know what the networks were given
    messages.extend(str(c) for c in checks if c.level != "ok" or c.code.startswith("level"))
    enforce(checks, options.force)
    level = input_level(paths)
    scale = loaded.scale
    plan = plan_tiles(loaded.card, dev, options.tile, options.overlap, options.batch)
    say(0.0, "reading inputs")

    with gdal_env(), FrameSet(paths, "all" if options.all_bands else options.band, messages) as fs:
        grid = fs.grid
        assert grid is not None
        window = window_from_extent(grid, options.extent)
        groups = group_frames(fs.frames, loaded, options.all_bands)
        ref = groups.dates[0][0]
        out_dtype = np.dtype(ref.dtype)
        check_footprint(
            estimate_footprint(plan, int(window.width), int(window.height), loaded.frames, groups.channels, scale,
                               groups.channels, out_dtype.itemsize), dev, out, "super-resolving this area")
        fs.inspect(window)
        fractions = groups.valid_fractions()
        if max(fractions) <= 0.0:
            names = ", ".join(f.label for f in fs.frames)
            raise InputError(f"no valid pixels in the area to process ({names}): every pixel is nodata")
        chosen, note = select_frames(fractions, loaded.frames)
        messages.append(note)
        frames_used = [groups.labels[i] for i in chosen]
        messages.append("frames used: " + "; ".join(f"{lbl} ({fractions[i]:.0%} valid)"
                                                     for lbl, i in zip(frames_used, chosen)))
        messages.extend(radiometry_notes({id(f): f for i in chosen for f in groups.dates[i]}.values()))
        fallback = groups.fallback(fractions)

        in_nodata = ref.nodata
        nodata = nodata_candidate(out_dtype, in_nodata)
        w_grid = Grid(grid.crs, compose(window_transform(window, grid.transform), Affine.scale(1.0 / scale)),
                      int(window.width) * scale, int(window.height) * scale)
        band_names = groups.band_names
        tags = {
            "SR_CHECKPOINT": loaded.source,
            "SR_CHECKPOINT_SHA256": loaded.sha256 or "",
            "SR_MODEL": loaded.name,
            "SR_SCALE": str(scale),
            "SR_INPUTS": json.dumps([str(p) for p in paths]),
            "SR_FRAMES_USED": json.dumps(frames_used),
            "SR_BAND": "all" if options.all_bands else str(options.band),
            "SR_BANDS": json.dumps(band_names),
            "SR_RADIOMETRY": ref.radiometry.source,
            "SR_TILE": f"{plan.tile}/{plan.overlap}",
            "SR_ANCHOR": "revisit mean per tile" if options.anchor else "none (raw network output)",
            # the inputs' processing level travels with the output: segmenting it checks it against the networks
            **({"S2_LEVEL": level} if level else {}),
            "SOFTWARE": f"s2_taskdriven_sr {__version__}",
        }
        descriptions = [band_description(b, ref.description or f"band {ref.bidx}", scale) for b in band_names]
        ref_per_band = groups.dates[chosen[0]]
        with ExitStack() as stack:
            sink = GeoTiffSink(out, geotiff_profile(w_grid, out_dtype.name, groups.channels, in_nodata), tags,
                               descriptions, ref.scales)
            stack.callback(sink.abort)
            if groups.wavelengths:
                sink.set_band_tags({i + 1: {"WAVELENGTH": f"{w:g}", "WAVELENGTH_UNIT": "nm", "BANDNAME": b}
                                    for i, (b, w) in enumerate(zip(band_names, groups.wavelengths)) if w})

            def emit(r0: int, block: np.ndarray, lr_valid: np.ndarray) -> None:
                values = np.stack([
                    to_output_dtype(f.radiometry.from_reflectance(block[c], inplace=True), out_dtype, nodata)
                    for c, f in enumerate(ref_per_band)])
                if not lr_valid.all():
                    values[:, ~np.repeat(np.repeat(lr_valid, scale, 0), scale, 1)] = nodata
                    sink.wrote_nodata = True
                sink.write_rows(r0, values)

            def report(done: int, total: int) -> None:
                say(0.92 * done / total, f"super-resolving: tile {done}/{total}")

            applied = sr_tiles([groups.dates[i] for i in chosen], window, loaded, plan, options.anchor, fallback,
                               emit, cancel, report)
            check_cancel(cancel)
            if applied:
                messages.append(anchor_note(applied))
            if in_nodata is None and sink.wrote_nodata:
                sink.set_nodata(nodata)
                messages.append(f"some pixels have no valid input: written as nodata = {nodata}")
            say(0.93, "building overviews")
            sink.commit()
            stack.pop_all()
    messages.append(f"wrote {out} ({w_grid.width} x {w_grid.height} px, x{scale}, {groups.channels} band(s), "
                    f"tiles {plan.tile} px with {plan.overlap} px overlap, {plan.batch} per model call)")
    style = _write_style(out, band_names, messages)
    for m in messages:
        log.info(m)
    say(1.0, "done")
    return SRResult(out, frames_used, messages, None, loaded.sha256, plan.tile, plan.overlap,
                    time.perf_counter() - t_start, None, band_names, style)

