"""Baseline vs task-driven on one area: cPSNR / cSSIM against a reference, building / road Dice, trust rows.

Why here and not in the plugin: the numbers the dock's Compare tab shows must
be the engine's numbers (the same readers, metrics and segmentation as
``evaluate`` and ``segment``), testable without QGIS and callable from the
CLI. The plugin passes plain values (paths, :class:`MaskSource`) through
``core.api.compare_outputs`` and only draws the table; this module calls the engine's jobs
directly (not ``core.api``, which imports it).

The plain values it takes and returns (:class:`MaskSource`, :class:`CompareResult`,
the row names) live in :mod:`.compare_types`, which ``core.api`` imports when
QGIS starts; this module imports the engine at its top.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import rasterio
from rasterio.warp import Resampling, reproject

from ..inference.segment import segment
from ..inference.trust import read_summary, trust_map
from ..io.radiometry import detect_radiometry
from ..io.rasters import open_raster
from ..io.sentinel2 import band_at_start
from ..jobs import Cancelled, CancelToken, InputError, Progress, check_cancel, sub_progress, trust_path_for
from ..options import CompareOptions, SegmentOptions, TrustOptions
from .compare_types import (
    METRIC_NAMES,
    NO_TRUST_NOTE,
    TARGETS,
    TRUST_CLASS_KEYS,
    CompareResult,
    MaskSource,
    TrustInputs,
)
from .metrics import SegCounts, cpsnr_cssim

log = logging.getLogger(__name__)

__all__ = ["MaskSource", "CompareResult", "compare_outputs", "band_pairs", "TARGETS", "TRUST_CLASS_KEYS",
           "NO_TRUST_NOTE", "METRIC_NAMES"]

#: A band pair compared: (SR band, reference band, band name or None)
BandPair = Tuple[int, int, Optional[str]]


def _valid_mask(data: Any) -> Any:
    return ~np.ma.getmaskarray(data) & np.isfinite(data.filled(0))


def read_band_reflectance(path: str, band: int = 1):
    """SR band ``band`` as reflectance [H, W] float32, its valid mask, its grid and where its radiometry came from."""
    with open_raster(path) as ds:
        data = ds.read(band, masked=True)
        valid = _valid_mask(data)
        values = data.filled(0).astype("float32")
        sample = values[valid][:: max(1, int(valid.sum()) // 100000 or 1)]
        rad = detect_radiometry(ds, band, sample, ds.dtypes[band - 1])
        grid = (ds.crs, ds.transform, ds.height, ds.width)
    return np.where(valid, rad.to_reflectance(values), 0.0).astype("float32"), valid, grid, rad.source


def band_names(path: str) -> List[Optional[str]]:
    """The Sentinel-2 band each band of a raster names (description, else its BANDNAME tag), None where none."""
    with open_raster(path) as ds:
        return [band_at_start(ds.descriptions[i] if ds.descriptions else None)
                or band_at_start(ds.tags(i + 1).get("BANDNAME")) for i in range(ds.count)]


def band_pairs(sr_path: str, reference: str, reference_band: int = 1) -> Tuple[List[BandPair], str]:
    """Which SR band is scored against which reference band, and a note saying so ('' for the plain case).

    A one-band output is scored on its band against ``reference_band`` (as
    always). A multi-band output (B02, B03, B04, B08) is scored on every band
    the reference also names, each against its namesake, and the scores are
    averaged; a reference naming none of them is paired with the output's
    B08 (NIR, the band the study works on) when it has one band, or band by
    band when both have the same number of unnamed bands.
    """
    sr_names = band_names(sr_path)
    if len(sr_names) == 1:
        return [(1, reference_band, sr_names[0])], ""
    ref_names = band_names(reference)
    shared = [(i + 1, ref_names.index(n) + 1, n) for i, n in enumerate(sr_names) if n and n in ref_names]
    if shared:
        names = ", ".join(str(n) for _a, _b, n in shared)
        what = "on" if len(shared) == 1 else "mean of"
        return shared, f"{what} {names} (the band{'s' if len(shared) > 1 else ''} the reference shares)"
    if len(ref_names) == len(sr_names):
        return ([(i + 1, i + 1, n) for i, n in enumerate(sr_names)],
                "mean over the bands in order (the reference names none of them)")
    if len(ref_names) == 1 and "B08" in sr_names:
        return [(sr_names.index("B08") + 1, 1, "B08")], "on B08 (the reference's one band is taken to be NIR)"
    raise InputError(f"{Path(reference).name} names none of the bands of {Path(sr_path).name} "
                     f"({', '.join(str(n) for n in sr_names)}); give a reference with the same bands")


def _read_on_grid(path: str, band: int, grid, resampling: str):
    """Band ``band`` of ``path`` on ``grid`` (warped when the grids differ) and its valid mask."""
    crs, transform, height, width = grid
    with open_raster(path) as ds:
        if band < 1 or band > ds.count:
            raise InputError(f"{Path(path).name}: band {band} does not exist; the raster has {ds.count} band(s)")
        same = (ds.crs == crs and ds.width == width and ds.height == height
                and ds.transform.almost_equals(transform, precision=1e-6 * max(1.0, abs(transform.a))))
        if same:
            data = ds.read(band, masked=True)
            valid = _valid_mask(data)
            values = data.filled(0).astype("float32")
        else:
            nodata = ds.nodatavals[band - 1]
            src = ds.read(band).astype("float32")
            no_value = nodata is None or (isinstance(nodata, float) and math.isnan(nodata))
            src_valid = np.isfinite(src) if no_value else (src != nodata) & np.isfinite(src)
            src = np.where(src_valid, src, np.nan).astype("float32")
            values = np.full((height, width), np.nan, dtype="float32")
            reproject(src, values, src_transform=ds.transform, src_crs=ds.crs, dst_transform=transform, dst_crs=crs,
                      src_nodata=np.nan, dst_nodata=np.nan,
                      resampling=Resampling.bilinear if resampling == "bilinear" else Resampling.nearest)
            valid = np.isfinite(values)
            values = np.where(valid, values, 0.0).astype("float32")
        sample = values[valid][:: max(1, int(valid.sum()) // 100000 or 1)]
        rad = detect_radiometry(ds, band, sample, ds.dtypes[band - 1])
    return values, valid, rad, not same


def _mask_on_grid(source: MaskSource, target: str, grid):
    """(mask bool, valid bool) of a building / road mask on the SR grid."""
    if source.kind == "vector":
        from ..data.vectors import rasterize_vectors

        crs, transform, height, width = grid
        mask = rasterize_vectors(source.path, transform, (height, width), crs.to_wkt(), kind=target,
                                 layer=source.layer)
        return mask.astype(bool), np.ones((height, width), dtype=bool)
    values, valid, _rad, _warped = _read_on_grid(source.path, source.band, grid, "nearest")
    return (values > 0.5) & valid, valid


def _trust_beside(path: str) -> Any:
    """The summary of an up-to-date ``<sr>_trust.tif`` beside an output (the dock's "Also write a trust map"), or None."""
    beside = trust_path_for(path)
    if beside.is_file() and beside.stat().st_mtime >= Path(path).stat().st_mtime:
        summary = read_summary(beside)
        if summary is not None and Path(summary.sr_path).resolve() == Path(path).resolve():
            return summary
    return None


def _trust_row(path: str, inputs: Optional[Tuple[List[str], Any]], work: Path, index: int, options: TrustOptions,
               progress: Progress, cancel: Optional[CancelToken]) -> Tuple[Any, bool]:
    """The trust summary of one SR output: (summary, whether its map was written beside the output).

    An up-to-date ``<sr>_trust.tif`` is read, not recomputed. With ``inputs``
    (this comparison just made the output from them) the map is written beside
    the output, where the dock puts it; without them the inputs recorded in the
    output's metadata are used and the map goes to a temporary folder (an
    existing layer's folder is not written to).
    """
    found = _trust_beside(path)
    if found is not None:
        return found, False
    beside = trust_path_for(path)
    if inputs is not None:
        # "all" (every band, or bands that are dates) names no one band: the trust map takes the recorded one
        opts = options.replace(band=inputs[1]) if inputs[1] not in (None, "all") else options
        return trust_map(path, inputs[0], out_path=beside, options=opts, progress=progress, cancel=cancel), True
    return trust_map(path, None, out_path=work / f"trust_{index}.tif", options=options, progress=progress,
                     cancel=cancel), False


def _dice(path: str, index: int, work: Path, targets: List[str], masks: Dict[str, MaskSource],
          seg_checkpoints: Dict[str, str], device: str, grid, sr_valid, step: Progress,
          cancel: Optional[CancelToken]) -> Dict[str, float]:
    """Whole-raster Dice of each target: the segmentation of the SR output (prob > 0.5) against the mask."""
    prob_path = work / f"prob_{index}.tif"
    seg = segment(path, [seg_checkpoints[t] for t in targets], out_prob=str(prob_path),
                      options=SegmentOptions(device=device), progress=sub_progress(step, 0.3, 0.9), cancel=cancel)
    with rasterio.open(prob_path) as ds:
        probs = ds.read().astype("float32")
    out: Dict[str, float] = {}
    for b, target in enumerate(seg.targets):
        mask, mask_valid = _mask_on_grid(masks[target], target, grid)
        prob = probs[b]
        counts = SegCounts()
        counts.update(np.nan_to_num(prob), mask, sr_valid & mask_valid & np.isfinite(prob))
        out[f"{target}_dice"] = float(counts.dice)
    return out


def _score_reference(result: CompareResult, row: Dict[str, Optional[float]], path: str, reference: str,
                     reference_band: int, grid, border: int, cpsnr_cssim: Callable[..., Any]) -> None:
    """cPSNR / cSSIM of one output against the reference: per band pair, averaged (see :func:`band_pairs`)."""
    try:
        pairs, note = band_pairs(path, reference, reference_band)
    except InputError as exc:  # no band in common: the other rows still come
        result.notes["cpsnr"] = result.notes["cssim"] = str(exc)
        row["cpsnr"] = row["cssim"] = None
        return
    per_band: Dict[str, Tuple[float, float]] = {}
    for sr_band, ref_band, name in pairs:
        sr, sr_valid, _grid, _units = read_band_reflectance(path, sr_band)
        hr, hr_valid, rad, warped = _read_on_grid(reference, ref_band, grid, "bilinear")
        if warped and not per_band:
            result.messages.append(f"{Path(reference).name} was warped onto the grid of {Path(path).name}")
        valid = sr_valid & hr_valid
        if valid.sum() < 16:
            result.notes["cpsnr"] = result.notes["cssim"] = (
                f"the reference {Path(reference).name} does not overlap {Path(path).name}")
            row["cpsnr"] = row["cssim"] = None
            return
        scores = cpsnr_cssim(sr, rad.to_reflectance(hr), valid, border=border)
        per_band[name or f"band {sr_band}"] = (float(scores.cpsnr), float(scores.cssim))
    row["cpsnr"] = float(np.mean([v[0] for v in per_band.values()]))
    row["cssim"] = float(np.mean([v[1] for v in per_band.values()]))
    if len(per_band) > 1:
        for name, (p, q) in per_band.items():
            row[f"cpsnr_{name}"], row[f"cssim_{name}"] = p, q
    if note:
        result.metric_bands["cpsnr"] = result.metric_bands["cssim"] = note


def compare_outputs(
    outputs: Dict[str, str],
    reference: Optional[str] = None,
    masks: Optional[Dict[str, MaskSource]] = None,
    seg_checkpoints: Optional[Dict[str, str]] = None,
    options: Optional[CompareOptions] = None,
    progress: Optional[Progress] = None,
    cancel: Optional[CancelToken] = None,
    trust_inputs: Optional[TrustInputs] = None,
) -> CompareResult:
    """Metrics of several SR rasters of the same area against a reference and masks, and their trust rows.

    ``outputs``: label -> SR GeoTIFF. ``reference``: the HR raster (warped onto
    each output's grid when the grids differ, bilinear); a multi-band output
    (B02, B03, B04, B08) is scored on the bands the reference shares, averaged,
    with the per-band values beside (``cpsnr_B08`` ...) and the bands named in
    ``metric_bands`` (:func:`band_pairs`); a one-band output against
    ``options.reference_band``. ``masks``:
    target ("buildings" / "roads") -> mask raster or vector layer.
    ``seg_checkpoints``: target -> segmentation checkpoint that segments each SR
    output; Dice compares its mask (prob > 0.5) with the given mask, counted
    over the whole raster. Rasters are read whole: compare a preview extent,
    not a full Sentinel-2 tile. Values are None where they could not be
    computed, with the reason in ``notes``. The trust rows (mean disagreement
    with the LR revisits, the share of pixels above its threshold and the share
    of each trust class) need no reference but a trust map each, the slowest
    part: made only with ``options.trust`` (``trust_inputs``, label -> (LR inputs,
    band), names the revisits, else those recorded in each output's metadata
    are used); without it an up-to-date ``<sr>_trust.tif`` beside an output is
    still read. ``options``: :class:`core.options.CompareOptions`.
    """
    options = options or CompareOptions()
    masks = dict(masks or {})
    seg_checkpoints = {k: v for k, v in (seg_checkpoints or {}).items() if v}
    trust_options = TrustOptions(device=options.device)
    say: Callable[[float, str], None] = progress or (lambda f, m: None)
    result = CompareResult(outputs=dict(outputs), metrics={label: {} for label in outputs})
    for target in TARGETS:
        key = f"{target}_dice"
        if target in masks and target not in seg_checkpoints:
            result.notes[key] = f"no {target} segmentation network chosen"
        elif target in seg_checkpoints and target not in masks:
            result.notes[key] = f"no {target} mask or vector layer given"
    if reference is None:
        result.notes["cpsnr"] = result.notes["cssim"] = "no reference HR layer given"
    dice_targets = [t for t in TARGETS if t in masks and t in seg_checkpoints]
    # where each output's share of the bar goes: the trust map dominates when it is made
    seg_end = 0.45 if options.trust else 0.95
    work = Path(tempfile.mkdtemp(prefix="s2sr_compare_"))
    try:
        n = max(1, len(outputs))
        for i, (label, path) in enumerate(outputs.items()):
            check_cancel(cancel)
            step = sub_progress(say, i / n, (i + 1) / n, f"{label}: ")
            step(0.0, "reading the output")
            sr, sr_valid, grid, sr_units = read_band_reflectance(path)
            row = result.metrics[label]
            if reference is not None:
                step(0.02, "scoring against the reference")
                _score_reference(result, row, path, reference, options.reference_band, grid, options.border,
                                 cpsnr_cssim)
            if dice_targets:
                step(0.1, f"segmenting ({', '.join(dice_targets)})")
                row.update(_dice(path, i, work, dice_targets, masks, seg_checkpoints, options.device, grid, sr_valid,
                                 sub_progress(step, 0.1, seg_end), cancel))
            _trust_cells(result, row, label, path, options, trust_inputs, work, i, trust_options,
                         sub_progress(step, seg_end, 1.0, "trust map: "), cancel)
            step(1.0, "done")
            result.messages.append(f"{label}: {Path(path).name} ({sr_units})")
            log.info("compared %s: %s", label, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _trust_cells(result: CompareResult, row: Dict[str, Optional[float]], label: str, path: str,
                 options: CompareOptions, trust_inputs: Optional[TrustInputs], work: Path, index: int,
                 trust_options: TrustOptions, progress: Progress, cancel: Optional[CancelToken]) -> None:
    """Fill one output's trust rows: from a new trust map (``options.trust``), one beside it, or a note why not."""
    keys = ("mean", "flagged", *TRUST_CLASS_KEYS)
    kept = False
    try:
        if options.trust:
            summary, kept = _trust_row(path, (trust_inputs or {}).get(label), work, index, trust_options,
                                       progress, cancel)
        else:
            summary = _trust_beside(path)
    except Cancelled:
        raise
    except (ValueError, OSError) as exc:  # InputError / OutputError: worded for the analyst
        for key in keys:
            result.notes[f"trust_{key}"] = f"no trust map: {exc}"
            row[f"trust_{key}"] = None
        return
    if summary is None:
        for key in keys:
            result.notes[f"trust_{key}"] = NO_TRUST_NOTE
            row[f"trust_{key}"] = None
        return
    row["trust_mean"], row["trust_flagged"] = summary.mean_disagreement, summary.flagged_share
    shares = getattr(summary, "class_shares", None) or {}
    for key in TRUST_CLASS_KEYS:
        row[f"trust_{key}"] = shares.get(key)
    if kept:
        result.trust_paths[label] = str(summary.path)
