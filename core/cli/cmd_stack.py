"""CLI: ``stack`` (several Sentinel-2 dates -> one revisit stack) and ``export`` (one product -> a 4-band GeoTIFF).

Examples::

    python -m core.cli export S2B_MSIL2A_20230512T095559_N0509_R079_T34UDA_20230512T120000.zip --out may12.tif \\
        --extent 500000 5590000 505000 5595000
    python -m core.cli stack downloads/*.zip --out town_stack.tif --frames 9 --extent 500000 5590000 505000 5595000
    python -m core.cli stack exports/*_B08_*.tiff --out nir_stack.tif --bands B08 --baseline auto

Both print what was done to the data (offset rule, clouds masked, dates kept and
dropped and why, shifts measured) and draw a progress bar on stderr; Ctrl-C
stops cleanly (no partial file).
"""

from __future__ import annotations

import argparse

from ..io.sentinel2 import BANDS_10M
from ..lazy import lazy_module
from ..options import ExportOptions, StackOptions, add_cli_arguments, from_cli
from .progress import print_messages, run_with_bar

__all__ = ["register"]

# The engine, imported when a command runs: parsing --help stays free of torch (tests/test_cli_light.py).
_io_stack = lazy_module("..io.stack", __package__)
_s2_product = lazy_module("..io.s2_product", __package__)


def _stack(args: argparse.Namespace) -> int:
    result, code = run_with_bar("stacking", _io_stack.build_stack, inputs=args.inputs, out_path=args.out,
                                options=from_cli(StackOptions, args))
    if result is None:
        return code
    print_messages(result.messages)
    print(f"{result.path}: {len(result.bands)} band(s) x {len(result.dates)} date(s), reference {result.reference_date} "
          f"({result.seconds:.1f} s)")
    return 0


def _export(args: argparse.Namespace) -> int:
    opts = from_cli(ExportOptions, args)
    product = _s2_product.open_product(args.product)
    messages: list = []
    path, code = run_with_bar("exporting", _s2_product.export_product, product=product, out_path=args.out,
                              bands=opts.bands, extent=opts.extent, scl_nodata=opts.scl_nodata, messages=messages)
    if path is None:
        return code
    print_messages(messages)
    print(f"{path}: {product.label}, bands {', '.join(opts.bands or BANDS_10M)}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "stack",
        help="build a revisit stack (one GeoTIFF, one band per band and date) from Sentinel-2 products or rasters",
        description=(
            "Put several dates on the first input's 10 m grid (copied when the grids agree, warped otherwise), mask "
            "clouds with the L2A scene classification or nodata, rank the dates by their clear share over the area, "
            "keep the clearest, measure each date's sub-pixel shift against the clearest (phase correlation; "
            "recorded in the tags, not resampled away) and write one GeoTIFF with bands named B08_2023-05-12 etc., "
            "band-major, clearest date first. Inputs: .SAFE folders, their .zip files, MTD_MSI*.xml files, or "
            "GeoTIFF/JP2 rasters whose band and date can be read from their descriptions, tags or file names."
        ),
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="Sentinel-2 products or dated rasters of one area")
    p.add_argument("--out", required=True, help="output GeoTIFF")
    add_cli_arguments(p, StackOptions)
    p.set_defaults(func=_stack)

    p = subparsers.add_parser(
        "export",
        help="export a Sentinel-2 product's 10 m bands to one GeoTIFF, clouds as nodata",
        description=(
            "Read an L2A or L1C product (.SAFE folder, .zip read in place, or MTD_MSI*.xml) and write its 10 m bands "
            "as one uint16 GeoTIFF on the product's grid: DN kept, nodata 0 where the scene classification (L2A) "
            "says cloud, shadow, cirrus or snow, the product's offset and quantification as the bands' scale/offset "
            "metadata, and the date, level, baseline, tile and wavelengths as tags."
        ),
    )
    p.add_argument("product", help="Sentinel-2 product: .SAFE folder, .zip or MTD_MSI*.xml")
    p.add_argument("--out", required=True, help="output GeoTIFF")
    add_cli_arguments(p, ExportOptions)
    p.set_defaults(func=_export)
