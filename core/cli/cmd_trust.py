"""CLI: ``trust`` (where is an SR output supported by the Sentinel-2 revisits, and where invented?).

Kept in its own group because it runs on any SR raster on the LR grid, not
only on this tool's outputs; the checkpoint (for the instability band) is
optional.
"""

from __future__ import annotations

import argparse
import sys

from .. import api
from ..options import TrustOptions, add_cli_arguments, from_cli
from .progress import print_messages, run_with_bar

__all__ = ["register"]


def _trust(args: argparse.Namespace) -> int:
    summary, code = run_with_bar("trust map", api.trust_map, sr_path=args.sr, inputs=args.inputs, out_path=args.out,
                                 options=from_cli(TrustOptions, args), checkpoint=args.checkpoint)
    if summary is None:
        return code
    print_messages(summary.messages)
    spread = "n/a (one revisit)" if summary.mean_spread is None else f"{summary.mean_spread:.4f}"
    inst = "n/a (no checkpoint)" if summary.mean_instability is None else f"{summary.mean_instability:.4f}"
    print(f"classes: {100 * summary.supported_share:.1f} % supported, {100 * summary.uncertain_share:.1f} % "
          f"uncertain, {100 * summary.invented_share:.1f} % likely invented", file=sys.stdout)
    print(f"mean disagreement {summary.mean_disagreement:.4f}, 95th percentile {summary.p95_disagreement:.4f}, "
          f"{100 * summary.flagged_share:.2f} % of pixels above {summary.threshold:g}, mean revisit spread {spread}, "
          f"mean instability {inst} (reflectance)", file=sys.stdout)
    print(f"{summary.path}  {summary.class_path}  ({summary.seconds:.1f} s)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "trust",
        help="trust map of an SR output: supported, uncertain or likely invented, pixel by pixel",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Judge an SR raster without an HR image. Writes two GeoTIFFs on the SR grid (same pixels as the "
            "SR raster):\n\n"
            "<sr>_trust.tif (float32, NaN = no data), one band per signal:\n"
            "  1 disagreement      median over revisits of |revisit - offset - SR degraded to 10 m| (reflectance;\n"
            "                      one value per 10 m pixel): the output shows an object S-2 did not see, or\n"
            "                      misses one it saw\n"
            "  2 revisit spread    std of the same residuals across revisits (reflectance): S-2 itself disagrees\n"
            "                      (clouds, change); NaN with one revisit\n"
            "  3 beyond bicubic    band 1 minus the same for the bicubic upsampling of the revisits (reflectance):\n"
            "                      > 0 where the output fits S-2 worse than plain upsampling does\n"
            "  4 instability       std of the output when the input is flipped, turned, shifted by 1/3 pixel or\n"
            "                      loses a revisit (reflectance): detail the network makes up moves; needs the\n"
            "                      checkpoint (--checkpoint, else the one the SR raster records), NaN without it\n"
            "  5 grid score        3-px checkerboard power over its surroundings in 120 m windows (ratio; ~1 none)\n"
            "  6 grid amplitude    strength of that checkerboard (reflectance RMS)\n\n"
            "<sr>_trust_class.tif (uint8, colour table embedded): 0 supported, 1 uncertain, 2 likely invented,\n"
            "255 no data. Thresholds: core/inference/trust_classes.py; meaning: docs/trust_map.md.\n\n"
            "The SR raster must sit on the LR grid (as 'predict' writes it)."
        ),
    )
    p.add_argument("--sr", required=True, help="super-resolved raster (a 4-band one is judged on B08 unless --band "
                                               "names another)")
    p.add_argument("--inputs", nargs="+", default=None, metavar="RASTER",
                   help="the LR revisits it was made from (first one = reference grid); default: the inputs "
                        "recorded in the SR raster's metadata by 'predict'")
    p.add_argument("--out", default=None, help="output GeoTIFF (default <sr>_trust.tif beside the SR raster); the "
                                               "classes go beside it as <out>_class.tif")
    p.add_argument("--checkpoint", default=None, metavar="SAFETENSORS",
                   help="the SR checkpoint that made the raster, for the instability band (default: the one "
                        "recorded in its metadata by 'predict')")
    add_cli_arguments(p, TrustOptions)
    p.set_defaults(func=_trust)
