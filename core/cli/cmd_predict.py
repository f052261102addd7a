"""CLI: ``predict`` (super-resolve rasters), ``segment`` (buildings / roads from a raster) and ``compare``
(two SR outputs of one area: the dock's Compare tab, headless).

All print what was done to the data (warps, frames chosen, units assumed) and
draw a tqdm progress bar on stderr; Ctrl-C cancels cleanly (no partial file).
"""

from __future__ import annotations

import argparse
from typing import Any, Optional

from .. import api
from ..evaluation.compare_types import METRIC_NAMES, MaskSource
from ..options import CompareOptions, SegmentOptions, SuperResolveOptions, add_cli_arguments, from_cli
from .progress import print_messages, run_with_bar

__all__ = ["register"]


def _predict(args: argparse.Namespace) -> int:
    result, code = run_with_bar("super-resolving", api.super_resolve, inputs=args.inputs, out_path=args.out,
                                checkpoint=args.checkpoint, options=from_cli(SuperResolveOptions, args))
    if result is None:
        return code
    print_messages(result.messages)
    print(f"{result.path}  ({result.seconds:.1f} s)")
    return 0


def _segment(args: argparse.Namespace) -> int:
    result, code = run_with_bar("segmenting", api.segment, input_path=args.input,
                                checkpoints=list(args.checkpoint), out_mask=args.out, out_prob=args.prob,
                                vectors=args.vectors, options=from_cli(SegmentOptions, args))
    if result is None:
        return code
    print_messages(result.messages)
    return 0


def _mask_source(path: Optional[str]) -> Any:
    """A mask raster, or a vector file (``.gpkg``, ``.shp``, ``.geojson``...; ``FILE|layername=NAME``) of OSM data."""
    if not path:
        return None
    file, _, layer = path.partition("|layername=")
    raster = file.lower().endswith((".tif", ".tiff", ".vrt", ".img"))
    return MaskSource(path=file, kind="raster" if raster else "vector", layer=layer or None)


def _compare(args: argparse.Namespace) -> int:
    outputs = {"Baseline": args.baseline, "Task-driven": args.taskdriven}
    masks = {t: m for t, m in (("buildings", _mask_source(args.buildings)), ("roads", _mask_source(args.roads)))
             if m is not None}
    seg = {t: c for t, c in (("buildings", args.seg_buildings), ("roads", args.seg_roads)) if c}
    result, code = run_with_bar("comparing", api.compare_outputs, outputs=outputs, reference=args.reference,
                                masks=masks, seg_checkpoints=seg, options=from_cli(CompareOptions, args))
    if result is None:
        return code
    print_messages(result.messages)
    print(f"{'metric':<28} {'Baseline':>12} {'Task-driven':>12}")
    for key, title in METRIC_NAMES:
        cells = [result.metrics[label].get(key) for label in outputs]
        text = ["n/a" if v is None else f"{v:.4f}" for v in cells]
        print(f"{title:<28} {text[0]:>12} {text[1]:>12}" + (f"  ({result.notes[key]})" if key in result.notes else ""))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict",
        help="super-resolve Sentinel-2 rasters into a georeferenced GeoTIFF",
        description=(
            "Super-resolve one raster (single-image models such as HAT) or several revisits of the same area "
            "(multi-image models such as RAMS) into a GeoTIFF at 3x the resolution, same CRS and extent. "
            "Revisits on other grids or CRSs are warped onto the first one's grid (bilinear); the clearest "
            "revisits are chosen when there are more than the model takes, repeated when fewer. Integer data "
            "without scale metadata is read as Sentinel-2 DN (x 1e-4); the output keeps the input's units, "
            "dtype and nodata. The output is written to a hidden temporary file and renamed when complete."
        ),
    )
    p.add_argument("--checkpoint", required=True, help="SR checkpoint (.safetensors with a model card)")
    p.add_argument("--inputs", nargs="+", required=True, metavar="RASTER",
                   help="input raster(s): revisits, first one = reference grid; or one raster whose bands are "
                        "dates (with --band all, or a band name prefixing their descriptions)")
    p.add_argument("--out", required=True, help="output GeoTIFF")
    add_cli_arguments(p, SuperResolveOptions)
    p.set_defaults(func=_predict)

    s = subparsers.add_parser(
        "segment",
        help="segment buildings / roads on a raster into probability and mask GeoTIFFs (+ GeoPackage)",
        description=(
            "Run one or two segmentation checkpoints (e.g. buildings and roads) over a raster, typically a "
            "super-resolved one. Writes a uint8 mask (1 = target, 0 = background, 255 = nodata; one band per "
            "target), optionally float32 probabilities (0..1, NaN = nodata) and polygons in a GeoPackage "
            "with one layer per target."
        ),
    )
    s.add_argument("--checkpoint", action="append", required=True,
                   help="segmentation checkpoint; repeat for a second target (e.g. buildings then roads)")
    s.add_argument("--input", required=True, help="raster to segment (SR output or any HR raster)")
    s.add_argument("--out", required=True, help="output mask GeoTIFF (uint8)")
    s.add_argument("--prob", default=None, help="also write probabilities to this GeoTIFF (float32)")
    s.add_argument("--vectors", default=None, help="also write polygons to this GeoPackage (.gpkg), a layer per target")
    add_cli_arguments(s, SegmentOptions)
    s.set_defaults(func=_segment)

    c = subparsers.add_parser(
        "compare",
        help="compare two SR outputs of one area (baseline vs task-driven): cPSNR, cSSIM, Dice, trust rows",
        description=(
            "The dock's Compare tab without QGIS. cPSNR / cSSIM against an HR reference (warped onto each "
            "output's grid), building / road Dice of the segmentation networks against masks (rasters, or "
            "OSM vector files rasterized on the output's grid), and with --trust the trust rows of each output "
            "(a trust map each: the slow part; without it a trust map already beside an output is read)."
        ),
    )
    c.add_argument("--baseline", required=True, help="the baseline SR raster")
    c.add_argument("--taskdriven", required=True, help="the task-driven SR raster")
    c.add_argument("--reference", default=None, help="HR reference raster (for cPSNR and cSSIM)")
    c.add_argument("--buildings", default=None, help="building mask raster or vector file (FILE|layername=NAME)")
    c.add_argument("--roads", default=None, help="road mask raster or vector file (FILE|layername=NAME)")
    c.add_argument("--seg-buildings", default=None, metavar="SAFETENSORS", help="buildings segmentation checkpoint")
    c.add_argument("--seg-roads", default=None, metavar="SAFETENSORS", help="roads segmentation checkpoint")
    add_cli_arguments(c, CompareOptions)
    c.set_defaults(func=_compare)
