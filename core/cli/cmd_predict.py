"""CLI: ``predict`` (super-resolve rasters) and ``segment`` (buildings / roads from a raster).

Both print what was done to the data (warps, frames chosen, units assumed) and
draw a tqdm progress bar on stderr; Ctrl-C cancels cleanly (no partial file).
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, List, Tuple

__all__ = ["register"]


def _band(value: str):
    """``4`` -> 4 (1-based index); anything else is a band name (or ``all``)."""
    return int(value) if value.strip().isdigit() else value


def _bar(desc: str) -> Tuple[Callable[[float, str], None], Callable[[], None]]:
    from tqdm import tqdm

    bar = tqdm(total=100, desc=desc, file=sys.stderr, leave=False,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")

    def update(fraction: float, message: str) -> None:
        bar.n = round(fraction * 100, 1)
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    return update, bar.close


def _run_with_cancel(fn, **kwargs):
    """Run an inference job; returns (result, exit code).

    Ctrl-C arrives as KeyboardInterrupt inside the job, whose cleanup removes
    the temporary files; output problems (an ``OSError`` the CLI's generic
    handler would not word) are printed as one line.
    """
    from ..inference.sr import Cancelled, OutputError

    try:
        return fn(**kwargs), 0
    except Cancelled as exc:
        print(f"cancelled: {exc}", file=sys.stderr)
        return None, 130
    except OutputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None, 1


def _predict(args: argparse.Namespace) -> int:
    from ..inference.sr import super_resolve

    update, close = _bar("super-resolving")
    try:
        result, code = _run_with_cancel(
            super_resolve, inputs=args.inputs, out_path=args.out, checkpoint=args.checkpoint, band=args.band,
            tile=args.tile, overlap=args.overlap, device=args.device, extent=args.extent, trust=args.trust,
            batch=args.batch, anchor=not args.no_anchor, progress=update,
        )
    finally:
        close()
    if result is None:
        return code
    for m in result.messages:
        print(m)
    print(f"{result.path}  ({result.seconds:.1f} s)")
    return 0


def _segment(args: argparse.Namespace) -> int:
    from ..inference.sr import segment

    checkpoints: List[str] = list(args.checkpoint)
    update, close = _bar("segmenting")
    try:
        result, code = _run_with_cancel(
            segment, input_path=args.input, checkpoint=checkpoints, out_prob=args.prob, out_mask=args.out,
            vectors=args.vectors, band=args.band, tile=args.tile, overlap=args.overlap, device=args.device,
            extent=args.extent, threshold=args.threshold, progress=update,
        )
    finally:
        close()
    if result is None:
        return code
    for m in result.messages:
        print(m)
    return 0


def _common(p: argparse.ArgumentParser, tile_help: str) -> None:
    p.add_argument("--band", type=_band, default=1,
                   help="band to use: 1-based number or name matched against the band descriptions (e.g. B8); "
                        "default 1")
    p.add_argument("--tile", type=int, default=None, help=tile_help)
    p.add_argument("--overlap", type=int, default=None,
                   help="overlap between tiles in input pixels, blended smoothly (default: 8 for RAMS, tile/16 for HAT, tile/8 for segment)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="cpu (all the machine's threads) or cuda (falls back to cpu with a message if absent)")
    p.add_argument("--extent", type=float, nargs=4, metavar=("MINX", "MINY", "MAXX", "MAXY"), default=None,
                   help="process only this window (in the raster's CRS), snapped outward to its pixels: a preview")
    p.add_argument("--batch", type=int, default=None, help="tiles per model call (default 1 on CPU, 4 on CUDA)")


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
    _common(p, "tile size in LR pixels (default from the model and free memory: 256 RAMS, 64-96 HAT)")
    p.add_argument("--no-anchor", action="store_true",
                   help="write the network's raw brightness; by default each tile is shifted to the mean of its "
                        "revisits, because cL1-trained networks are blind to a constant offset")
    p.add_argument("--trust", action="store_true",
                   help="also write <out>_trust.tif (see the 'trust' command): disagreement of the degraded "
                        "output with the revisits and their spread, per LR pixel (reflectance)")
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
    s.add_argument("--threshold", type=float, default=0.5, help="probability above which a pixel is the target (0.5)")
    _common(s, "tile size in pixels (default 256 on CPU, 512 on CUDA)")
    s.set_defaults(func=_segment)
