"""CLI: ``trust`` (where does an SR output disagree with the Sentinel-2 revisits it came from?).

Kept in its own group because it runs on any SR raster on the LR grid, not
only on this tool's outputs, and needs no checkpoint.
"""

from __future__ import annotations

import argparse
import sys

from ..options import TrustOptions, add_cli_arguments, from_cli
from .progress import progress_bar, run_job

__all__ = ["register"]


def _trust(args: argparse.Namespace) -> int:
    from .. import api

    update, close = progress_bar("trust map")
    try:
        summary, code = run_job(api.trust_map, sr_path=args.sr, inputs=args.inputs, out_path=args.out,
                                options=from_cli(TrustOptions, args), progress=update)
    finally:
        close()
    if summary is None:
        return code
    for m in summary.messages:
        print(m)
    spread = "n/a (one revisit)" if summary.mean_spread is None else f"{summary.mean_spread:.4f}"
    print(f"mean disagreement {summary.mean_disagreement:.4f}, 95th percentile {summary.p95_disagreement:.4f}, "
          f"{100 * summary.flagged_share:.2f} % of pixels above {summary.threshold:g}, mean revisit spread {spread} "
          "(reflectance)", file=sys.stdout)
    print(f"{summary.path}  ({summary.seconds:.1f} s)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "trust",
        help="trust map of an SR output: its disagreement with the LR revisits, and their spread",
        description=(
            "Degrade the SR raster back to Sentinel-2 (PSF, each revisit's sub-pixel shift, 3x3 area mean) and "
            "compare it with every LR revisit after removing each revisit's brightness offset. Writes a float32 "
            "GeoTIFF on the LR grid (default <sr>_trust.tif) with band 1 = median |disagreement| over the "
            "revisits and band 2 = the spread of the revisits among themselves (std; NaN with one "
            "revisit), both in reflectance, NaN = nodata. The SR raster must sit on the LR grid (as 'predict' "
            "writes it)."
        ),
    )
    p.add_argument("--sr", required=True, help="super-resolved raster (band 1)")
    p.add_argument("--inputs", nargs="+", default=None, metavar="RASTER",
                   help="the LR revisits it was made from (first one = reference grid); default: the inputs "
                        "recorded in the SR raster's metadata by 'predict'")
    p.add_argument("--out", default=None, help="output GeoTIFF (default <sr>_trust.tif beside the SR raster)")
    add_cli_arguments(p, TrustOptions)
    p.set_defaults(func=_trust)
