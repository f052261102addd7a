"""CLI: ``predict`` (super-resolve rasters) and ``segment`` (buildings / roads from a raster).

Both print what was done to the data (warps, frames chosen, units assumed) and
draw a tqdm progress bar on stderr; Ctrl-C cancels cleanly (no partial file).
"""

from __future__ import annotations

import argparse

from ..options import SegmentOptions, SuperResolveOptions, add_cli_arguments, from_cli
from .progress import print_messages, run_with_bar

__all__ = ["register"]


def _predict(args: argparse.Namespace) -> int:
    from .. import api

    result, code = run_with_bar("super-resolving", api.super_resolve, inputs=args.inputs, out_path=args.out,
                                checkpoint=args.checkpoint, options=from_cli(SuperResolveOptions, args))
    if result is None:
        return code
    print_messages(result.messages)
    print(f"{result.path}  ({result.seconds:.1f} s)")
    return 0


def _segment(args: argparse.Namespace) -> int:
    from .. import api

    result, code = run_with_bar("segmenting", api.segment, input_path=args.input,
                                checkpoints=list(args.checkpoint), out_mask=args.out, out_prob=args.prob,
                                vectors=args.vectors, options=from_cli(SegmentOptions, args))
    if result is None:
        return code
    print_messages(result.messages)
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
