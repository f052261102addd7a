"""Building and road segmentation of georeferenced rasters (SR outputs or any HR image).

Probabilities are written as float32 in [0, 1] with NaN as nodata (chosen
over uint8 0-255 so the 0.5 threshold and calibration read directly, with no
scale to remember); masks as uint8 1 = target, 0 = background, 255 = nodata;
polygons as one GeoPackage layer per target. The tiled pass
(:func:`seg_tiles`) is the same one evaluation runs on in-memory images.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from .. import __version__
from ..io.checks import check_inputs, enforce
from ..io.input_signs import is_snowy_scene, networks_saw_snow, snow_cloud_mask
from ..io.polygons import write_mask_vectors
from ..io.radiometry import radiometry_notes
from ..io.rasters import FrameSet, Grid, gdal_env, window_from_extent
from ..io.writer import GeoTiffSink, check_output_path, geotiff_profile
from ..jobs import CancelToken, InputError, OutputError, Progress, check_cancel, progress_fn
from ..options import SegmentOptions
from .bands import band_of_frame, canonical_band
from .frames import fill_invalid
from .loading import LoadedModel, ModelLike, choose_device, load_models
from .planning import TilePlan, check_footprint, estimate_footprint, plan_tiles
from .runner import Axis, OutputSpec, run_tiles
from .support import prepare_support

__all__ = ["SegResult", "segment", "seg_tiles", "check_targets", "SNOW_BANDS"]

#: The bands the snow / thick cloud test reads (:func:`core.io.input_signs.snow_cloud_mask`).
SNOW_BANDS = ("B02", "B03", "B04", "B08")

log = logging.getLogger(__name__)

EmitRows = Callable[[int, np.ndarray, np.ndarray], None]


@dataclass
class SegResult:
    """What a segmentation run wrote (messages are worded for the analyst)."""

    prob_path: Optional[Path]
    mask_path: Optional[Path]
    vectors_path: Optional[Path]
    targets: List[str]
    messages: List[str]
    polygons: Dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def written(self) -> List[Path]:
        """Every file the job wrote (probabilities, mask, vectors: those it was asked for)."""
        return [Path(p) for p in (self.prob_path, self.mask_path, self.vectors_path) if p is not None]


def check_targets(models: Sequence[LoadedModel]) -> List[str]:
    """One segmentation network per target (buildings, roads); their targets in order."""
    if not models:
        raise InputError("no segmentation checkpoint given")
    targets: List[str] = []
    for m in models:
        target = str(m.card.target or f"class{len(targets) + 1}")
        if target in targets:
            raise InputError(f"{m.source}: a second model for {target!r}; give one model per target")
        targets.append(target)
    return targets


def seg_tiles(bands: Sequence[object], window: Window, models: Sequence[LoadedModel], plan: TilePlan,
              fallback: float, emit: EmitRows, cancel: Optional[object] = None,
              report: Optional[Callable[[int, int], None]] = None, reference: Sequence[object] = ()) -> None:
    """The tiled segmentation pass shared by the plugin's outputs and evaluation.

    ``bands``: the frames the networks read (one, or the four bands a 4-band
    network's card names), all on one grid; ``emit`` receives probability rows
    ``[targets, n, W]`` with the pixels where the input was valid.
    ``reference``: frames of a second image on the same grid, one per band
    (e.g. the bicubic upsampling of an SR output's inputs,
    :mod:`core.inference.support`); the same networks segment it in the same
    tiles and ``emit`` receives ``[2 * targets, n, W]`` (the reference's after).
    """
    rows, cols = Axis(int(window.height), plan.tile, plan.overlap), Axis(int(window.width), plan.tile, plan.overlap)
    n_targets = len(models)
    n_bands = len(bands)
    sources = [*bands, *reference]

    def read_strip(oy: int):
        r0 = int(window.row_off) + oy
        c0 = int(window.col_off) + cols.start
        got = [f.read_padded(r0, r0 + rows.tile_len, c0, c0 + cols.stop - cols.start) for f in sources]
        x = np.stack([g[0] for g in got[:n_bands]])[None]  # [1, C, h, w]
        v = np.logical_and.reduce([g[1] for g in got[:n_bands]])[None]  # [1, h, w]
        x = fill_invalid(x, v, fallback)[0]
        if reference:
            xr = np.stack([g[0] for g in got[n_bands:]])[None]
            vr = np.logical_and.reduce([g[1] for g in got[n_bands:]])[None]
            x = np.concatenate([x, fill_invalid(xr, vr, fallback)[0]])
        return x, v

    def segment_batch(xb: np.ndarray) -> np.ndarray:
        probs = []
        with torch.inference_mode():
            for m in models:
                xm = m.to_model(xb)
                logits = m.run(torch.from_numpy(xm).to(m.device))
                expected = (xb.shape[0], 1, xb.shape[-2], xb.shape[-1])
                if tuple(logits.shape) != expected:
                    raise RuntimeError(f"{m.source}: returned {tuple(logits.shape)}, expected {expected}")
                probs.append(torch.sigmoid(logits.float()).cpu().numpy())
        return np.concatenate(probs, 1)

    def predict(xb: np.ndarray, vb: np.ndarray):
        if not reference:
            return [segment_batch(xb)]
        return [np.concatenate([segment_batch(xb[:, :n_bands]), segment_batch(xb[:, n_bands:])], 1)]

    run_tiles(rows, cols, read_strip, predict, [OutputSpec(1, n_targets * (2 if reference else 1))],
              lambda _i, r0, block, valid: emit(r0, block, valid), plan.batch, cancel, report)


def _input_bands(frames: Sequence[object], models: Sequence[LoadedModel], band, src: Path,
                 messages: List[str]) -> List[object]:
    """The frames the networks read: the bands their cards name, found by name when the raster names them.

    A 4-band network reads B02, B03, B04, B08 by name; a one-band network on an
    SR output with four bands reads the band its card names (B8); otherwise a
    one-band network reads the band the user picked (number or name).
    """
    wanted = [canonical_band(b) or b for b in (models[0].bands or [])]
    if any(m.bands != models[0].bands for m in models[1:]):
        raise InputError("the buildings and roads networks read different bands "
                         f"({', '.join(models[0].bands)} vs {', '.join(models[1].bands)}); give a matching pair")
    named = {}
    for f in frames:
        named.setdefault(band_of_frame(f), f)
    if len(frames) > 1 and wanted and all(b in named for b in wanted):
        messages.append(f"{src.name}: reading band(s) {', '.join(wanted)} by name, as the networks' cards ask")
        return [named[b] for b in wanted]
    if models[0].channels > 1:
        missing = [b for b in wanted if b not in named]
        raise InputError(f"{src.name}: band(s) {', '.join(missing)} not found by name; the networks read "
                         f"{', '.join(wanted)} (name the raster's bands, e.g. a 4-band output of this plugin)")
    if isinstance(band, int):
        chosen = [f for f in frames if f.bidx == band]
    else:
        key = str(band).strip().lower()
        chosen = [f for f in frames if (f.description or "").strip().lower() == key
                  or (canonical_band(key) is not None and band_of_frame(f) == canonical_band(key))]
    if not chosen:
        names = ", ".join(f"{f.bidx} {f.description!r}" if f.description else f"{f.bidx} (no name)" for f in frames)
        raise InputError(f"{src.name}: band {band!r} does not exist; the raster has {len(frames)} band(s): {names}")
    return chosen[:1]


def _snow_frames(frames: Sequence[object], wanted: bool, src: Path, messages: List[str]) -> List[object]:
    """The raster's B02, B03, B04, B08 frames (by name) for the snow / thick cloud test; [] when off or absent."""
    if not wanted:
        return []
    named: Dict[str, object] = {}
    for f in frames:
        named.setdefault(band_of_frame(f), f)
    if not all(b in named for b in SNOW_BANDS):
        messages.append(f"{src.name}: snow and thick cloud not looked for (it needs bands {', '.join(SNOW_BANDS)} "
                        "by name)")
        return []
    return [named[b] for b in SNOW_BANDS]


def _snowy_scene(frames: Sequence[object], window: Window) -> bool:
    """Whether the area is snow-covered (:func:`core.io.input_signs.is_snowy_scene`), judged on a sample.

    Decided once for the whole area, before any tile, so every tile applies the same rule.
    """
    samples = [f.sample(window) for f in frames]
    ok = np.logical_and.reduce([v for _d, v in samples])
    if not ok.any():
        return False
    refl = [f.radiometry.to_reflectance(np.asarray(d, dtype=np.float32))[ok] for f, (d, _v) in zip(frames, samples)]
    return is_snowy_scene(float(snow_cloud_mask(*refl).mean()))


def _snow_rows(frames: Sequence[object], window: Window, r0: int, shape: Sequence[int],
               snowy_scene: bool = False) -> np.ndarray:
    """The snow / thick cloud mask of output rows ``r0 .. r0 + n`` (rows of ``window``)."""
    n, w = int(shape[0]), int(shape[1])
    row, col = int(window.row_off) + r0, int(window.col_off)
    reads = [f.read_padded(row, row + n, col, col + w) for f in frames]
    ok = np.logical_and.reduce([v for _d, v in reads])
    return snow_cloud_mask(*(d for d, _v in reads), snowy_scene=snowy_scene) & ok


def segment(
    input_path: Union[str, os.PathLike],
    checkpoint: Union[ModelLike, Sequence[ModelLike]],
    out_mask: Optional[Union[str, os.PathLike]] = None,
    out_prob: Optional[Union[str, os.PathLike]] = None,
    vectors: Optional[Union[str, os.PathLike]] = None,
    options: Optional[SegmentOptions] = None,
    progress: Optional[Progress] = None,
    cancel: Optional[CancelToken] = None,
) -> SegResult:
    """Segment buildings and/or roads on a raster into probability / mask GeoTIFFs and polygons.

    ``checkpoint``: one or several segmentation checkpoints (paths or
    ``(model, card)`` pairs), one output band per target (``card.target``).
    """
    options = options or SegmentOptions()
    t_start = time.perf_counter()
    say = progress_fn(progress)
    messages: List[str] = []
    src = Path(input_path)
    if out_prob is None and out_mask is None:
        raise OutputError("give at least one output: a probability raster or a mask raster")
    if vectors is not None and out_mask is None:
        raise OutputError("vectors are made from the mask: give a mask output too")
    ckpts = [checkpoint] if isinstance(checkpoint, (str, os.PathLike)) or (
        isinstance(checkpoint, tuple) and len(checkpoint) == 2 and isinstance(checkpoint[0], torch.nn.Module)
    ) else list(checkpoint)
    inputs = [src, *[Path(c) for c in ckpts if isinstance(c, (str, os.PathLike))]]
    prob_out = check_output_path(out_prob, inputs) if out_prob is not None else None
    mask_out = check_output_path(out_mask, inputs) if out_mask is not None else None
    vec_out = check_output_path(vectors, inputs) if vectors is not None else None
    outs_given = [p for p in (prob_out, mask_out, vec_out) if p is not None]
    if len({p.resolve() for p in outs_given}) < len(outs_given):
        raise OutputError("the probability, mask and vector outputs must be different files")
    dev = choose_device(options.device, messages)
    models = load_models(ckpts, dev, task="segmentation", precision=options.precision, messages=messages)
    if models[0].autocast is not None:
        messages.append(f"segmentation networks run in {str(models[0].autocast).replace('torch.', '')} "
                        f"(native on this {dev.type.upper()}; --precision fp32 for full precision)")
    targets = check_targets(models)
    checks = check_inputs([src], "all" if models[0].channels > 1 else options.band, task="segment",
                          cards=[m.card for m in models])
    # the processing level is said even when fine: the analyst must know what the networks were given
    messages.extend(str(c) for c in checks if c.level != "ok" or c.code.startswith("level"))
    enforce(checks)
    plan = plan_tiles(models[0].card, dev, options.tile, options.overlap, options.batch)
    say(0.0, "reading input")

    with gdal_env(), FrameSet([src], "all", messages) as fs:
        grid = fs.grid
        assert grid is not None
        window = window_from_extent(grid, options.extent)
        bands = _input_bands(fs.frames, models, options.band, src, messages)
        snow_frames = _snow_frames(fs.frames, options.mask_snow, src, messages)
        check_footprint(estimate_footprint(plan, int(window.width), int(window.height), 1, len(bands), 1,
                                           len(targets), 5), dev, mask_out or prob_out, "segmenting this area")
        fs.inspect(window, list({id(f): f for f in [*bands, *snow_frames]}.values()))
        snowy = bool(snow_frames) and _snowy_scene(snow_frames, window)
        valid_fraction = min(f.valid_fraction for f in bands)
        if valid_fraction <= 0.0:
            raise InputError(f"{bands[0].label}: no valid pixels in the area to process (every pixel is nodata)")
        messages.extend(radiometry_notes(bands))
        fallback = float(np.mean([f.mean_reflectance for f in bands]))
        o_grid = Grid(grid.crs, window_transform(window, grid.transform), int(window.width), int(window.height))
        tags = {
            "SEG_CHECKPOINTS": json.dumps([m.source for m in models]),
            "SEG_CHECKPOINTS_SHA256": json.dumps([m.sha256 for m in models]),
            "SEG_TARGETS": json.dumps(targets),
            "SEG_INPUT": str(src),
            "SEG_BAND": json.dumps([f.bidx for f in bands]),
            "SEG_THRESHOLD": str(options.threshold),
            "SEG_SNOW_MASKED": "yes" if snow_frames else "no",
            "SOFTWARE": f"s2_taskdriven_sr {__version__}",
        }

        with ExitStack() as stack:
            sinks: Dict[str, GeoTiffSink] = {}
            support = None
            if vec_out is not None:  # polygons say whether the 10 m input supports them
                support = prepare_support(src, fs, bands, o_grid, vec_out, len(targets), messages, stack)
                sinks["support"] = support.sink
            if prob_out is not None:
                sinks["prob"] = GeoTiffSink(prob_out, geotiff_profile(o_grid, "float32", len(targets), float("nan")),
                                            dict(tags, SEG_KIND="probability 0..1"), targets)
                stack.callback(sinks["prob"].abort)
            if mask_out is not None:
                sinks["mask"] = GeoTiffSink(mask_out, geotiff_profile(o_grid, "uint8", len(targets), 255),
                                            dict(tags, SEG_KIND="mask 1=target 0=background 255=nodata"), targets)
                stack.callback(sinks["mask"].abort)

            snow_count = [0, 0]  # pixels left without objects as snow / cloud, valid pixels seen

            def emit(r0: int, block: np.ndarray, valid: np.ndarray) -> None:
                invalid = ~valid
                if snow_frames:
                    snow = _snow_rows(snow_frames, window, r0, valid.shape, snowy) & valid
                    block[:, snow] = 0.0  # "no object", on the SR output and on its bicubic reference alike
                    snow_count[0] += int(snow.sum())
                    snow_count[1] += int(valid.sum())
                if support is not None:
                    support.write_rows(r0, block, invalid)
                    block = block[: len(targets)]
                if "prob" in sinks:
                    p = block.astype(np.float32, copy=True)
                    p[:, invalid] = np.nan
                    sinks["prob"].write_rows(r0, p)
                if "mask" in sinks:
                    mk = (block > options.threshold).astype(np.uint8)
                    mk[:, invalid] = 255
                    sinks["mask"].write_rows(r0, mk)

            def report(done: int, total: int) -> None:
                say(0.85 * done / total, f"segmenting: tile {done}/{total}")

            seg_tiles(bands, window, models, plan, fallback, emit, cancel, report,
                      reference=support.reference if support is not None else ())
            check_cancel(cancel)
            if snow_frames and snow_count[0]:
                pct = 100 * snow_count[0] / max(1, snow_count[1])
                share = f"{pct:.1f} %" if pct >= 0.1 else "under 0.1 %"
                what = ("a snow-covered scene: snow, also under trees and in shade (white-grey, weakly green)"
                        if snowy else "snow or thick cloud (bright and white in B02-B04)")
                why = ("the networks saw snow only in simulated seasons" if networks_saw_snow([m.card for m in models])
                       else "the networks were not trained on it")
                messages.append(f"{share} of the area looks like {what}: left without objects, as {why} "
                                "(untick 'No objects on snow/cloud', or --no-mask-snow, to keep their output there)")
            say(0.87, "building overviews")
            for s in sinks.values():
                s.commit(overviews=s is not sinks.get("support"))
            stack.pop_all()
    counts: Dict[str, int] = {}
    if vec_out is not None and mask_out is not None:
        say(0.9, "vectorizing the mask")
        assert support is not None
        try:
            counts = write_mask_vectors(mask_out, vec_out, targets, **support.vector_options(
                targets, options.threshold, options.supported_only, messages))
        finally:
            support.remove()
        kept = " (supported objects only)" if options.supported_only else ""
        messages.append("vectors: " + ", ".join(f"{n} {t} polygon(s)" for t, n in counts.items())
                        + f"{kept} in {vec_out}")
    elif options.supported_only:
        messages.append("'supported objects only' applies to the polygons: give a vector output to use it")
    for p in (prob_out, mask_out):
        if p is not None:
            messages.append(f"wrote {p} ({', '.join(targets)}; {o_grid.width} x {o_grid.height} px)")
    for m in messages:
        log.info(m)
    say(1.0, "done")
    return SegResult(prob_out, mask_out, vec_out, targets, messages, counts, time.perf_counter() - t_start)
