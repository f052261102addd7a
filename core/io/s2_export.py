"""Export of a Sentinel-2 product: its 10 m bands read, SCL classes masked to nodata, one 4-band GeoTIFF out.

Why a module of its own: this is the one place that decodes a product's
imagery (JPEG 2000 through GDAL, from a zip through ``/vsizip/``) and streams
it, strip by strip, into the GeoTIFF the engine reads, with the product's
radiometry as the bands' scale/offset metadata.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import ExitStack
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from ..jobs import CancelToken, InputError, OutputError, PathLike, Progress, check_cancel, progress_fn
from ..options import SCL_NODATA_DEFAULT
from .radiometry import Radiometry
from .rasters import Grid, gdal_env, window_from_extent
from .s2_metadata import BANDS_10M, SCL_CLASSES, S2Product, band_key, open_product
from .s2_untrusted import open_member, product_env
from .writer import GeoTiffSink, check_output_path, geotiff_profile

__all__ = ["EXPORT_STRIP_ROWS", "export_product", "harmonize_dn"]

#: Logged under the public face's name, as before the split, so log lines (``%(name)s``) read the same.
log = logging.getLogger(__name__.rpartition(".")[0] + ".s2_product")

#: Rows per strip when exporting: a multiple of the output's 512-px blocks, and of the 1024-px
#: tiles the JPEG 2000 bands of real products use, so each is decoded once. Memory: rows x width x bands x 2 B.
EXPORT_STRIP_ROWS = 1024


def harmonize_dn(values: np.ndarray, valid: np.ndarray, src: Radiometry, dst: Radiometry) -> np.ndarray:
    """Stored values under ``src`` -> uint16 DN under ``dst`` with the same reflectance; invalid pixels -> 0.

    Used when frames of different processing baselines (or float reflectance
    exports) go into one file that can carry only one scale/offset. Identical
    maps keep the values as they are; DN of an older baseline gain exactly +1000.
    Valid values that would fall to 0 or below become 1 (the darkest storable).
    """
    if src.scale == dst.scale and src.offset == dst.offset:
        if np.issubdtype(values.dtype, np.floating):  # resampled DN: round, never truncate
            values = np.rint(values)
        out = np.where(valid, np.clip(values, 1, 65535), 0)
        return out.astype(np.uint16)
    refl = values.astype(np.float64) * src.scale + src.offset
    dn = np.rint((refl - dst.offset) / dst.scale)
    dn = np.clip(dn, 1, 65535)
    return np.where(valid, dn, 0).astype(np.uint16)


def _scl_reader(scl_ds, grid: Grid) -> WarpedVRT:
    """The 20 m SCL seen on the 10 m grid with nearest neighbour (a class is never averaged)."""
    return WarpedVRT(scl_ds, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
                     resampling=Resampling.nearest, nodata=0)


def _scl_text(classes: Sequence[int]) -> str:
    return ", ".join(f"{c} {SCL_CLASSES.get(c, '?')}" for c in sorted(set(classes))) or "none"


def export_product(
    product: Union[S2Product, PathLike],
    out_path: PathLike,
    bands: Sequence[str] = BANDS_10M,
    extent: Optional[Sequence[float]] = None,
    scl_nodata: Sequence[int] = SCL_NODATA_DEFAULT,
    progress: Optional[Progress] = None,
    cancel: Optional[CancelToken] = None,
    messages: Optional[List[str]] = None,
) -> Path:
    """Write one multi-band GeoTIFF of a product's 10 m bands, clouds as nodata; returns its path.

    The DN are kept as they are (uint16, nodata 0); the product's radiometry
    goes into the GDAL band scale/offset metadata, so QGIS and the engine read
    reflectance; tags record the date, level, baseline, tile, offset rule, SCL
    classes masked and the bands' central wavelengths. ``extent`` (minx miny
    maxx maxy in the product's CRS) crops, snapped outward to whole pixels.
    Streams strips of :data:`EXPORT_STRIP_ROWS` rows; written atomically.
    """
    started = time.time()
    msgs: List[str] = messages if messages is not None else []
    report = progress_fn(progress)
    prod = product if isinstance(product, S2Product) else open_product(product)
    keys = []
    for b in bands or BANDS_10M:  # none named: the 10 m bands
        key = band_key(b)
        if key not in BANDS_10M:
            raise InputError(f"band {b!r} is not one of the 10 m bands {', '.join(BANDS_10M)}")
        if key in keys:
            raise InputError(f"band {key} is asked for twice")
        keys.append(key)
    if not keys:
        raise InputError("no band to export")
    scl_classes = sorted({int(c) for c in scl_nodata})
    for c in scl_classes:
        if c not in SCL_CLASSES:
            raise InputError(f"SCL class {c} does not exist (classes are 0-11)")
    inputs = [prod.source] + [p for p in prod.band_paths.values() if not p.startswith("/vsi")]
    out = check_output_path(out_path, inputs)
    if prod.local_root and Path(out).resolve().is_relative_to(Path(prod.local_root).resolve()):
        raise OutputError(f"{out}: is inside the product folder {prod.local_root}; write the export elsewhere")
    display = prod.name or Path(prod.source).name
    msgs.extend(prod.notes)

    with gdal_env(), product_env(), ExitStack() as stack:
        datasets = [stack.enter_context(open_member(prod.band_paths[k], f"band {k}", display, prod.local_root))
                    for k in keys]
        first = datasets[0]
        grid0 = Grid(first.crs, first.transform, first.width, first.height)
        for k, ds in zip(keys, datasets):
            if not grid0.same_as(ds):
                raise InputError(f"{display}: band {k} is not on the same 10 m grid as band {keys[0]}")
        window = window_from_extent(grid0, extent)
        grid = Grid(grid0.crs, rasterio.windows.transform(window, grid0.transform), int(window.width),
                    int(window.height))
        scl = None
        if prod.level == "L2A" and prod.scl_path and scl_classes:
            scl_ds = stack.enter_context(open_member(prod.scl_path, "the SCL", display, prod.local_root))
            scl = stack.enter_context(_scl_reader(scl_ds, grid))
        elif prod.level == "L1C" and scl_classes:
            msgs.append(f"{display}: L1C products have no scene classification; clouds are not masked")

        rads = [prod.radiometry(k) for k in keys]
        target = rads[0]
        if len({(r.scale, r.offset) for r in rads}) > 1:
            low = min(rads, key=lambda r: r.offset)
            target = Radiometry(low.scale, low.offset, low.source)
            msgs.append(f"{display}: the bands' offsets differ; DN shifted so all share reflectance = "
                        f"DN x {target.scale:g} {target.offset:+g}")
        wavelengths = {k: prod.wavelengths_nm.get(k) for k in keys}
        tags = {
            "S2_PRODUCT": prod.name, "S2_DATE": prod.date, "S2_DATETIME": prod.datetime, "S2_LEVEL": prod.level,
            "S2_BASELINE": prod.baseline, "S2_TILE": prod.tile, "S2_SPACECRAFT": prod.spacecraft,
            "S2_QUANTIFICATION": f"{prod.quantification:g}",
            "S2_OFFSET_DN": f"{target.offset / target.scale:g}",
            "S2_OFFSET_RULE": prod.offset_rule,
            "S2_SCL_MASKED": _scl_text(scl_classes) if scl is not None else "none (no SCL)",
            "S2_BANDS": ",".join(keys),
            "S2_WAVELENGTHS_NM": json.dumps(wavelengths),
            "ACQUISITION_DATE": prod.date,
        }
        sink = GeoTiffSink(out, geotiff_profile(grid, "uint16", len(keys), 0), tags, keys,
                           (target.scale, target.offset))
        clear = 0
        with sink:
            r0 = int(window.row_off)
            for row in range(0, grid.height, EXPORT_STRIP_ROWS):
                check_cancel(cancel)
                n = min(EXPORT_STRIP_ROWS, grid.height - row)
                src_win = Window(int(window.col_off), r0 + row, grid.width, n)
                block = np.empty((len(keys), n, grid.width), dtype=np.uint16)
                masked = np.zeros((n, grid.width), dtype=bool)
                if scl is not None:
                    classes = scl.read(1, window=Window(0, row, grid.width, n))
                    masked = np.isin(classes, scl_classes)
                for i, (ds, rad) in enumerate(zip(datasets, rads)):
                    try:
                        dn = ds.read(1, window=src_win)
                    except RasterioIOError as exc:
                        raise InputError(f"{display}: band {keys[i]} cannot be decoded ({exc})") from exc
                    valid = (dn != 0) & ~masked
                    block[i] = harmonize_dn(dn, valid, rad, target)
                clear += int(np.count_nonzero(block.min(axis=0)))
                sink.write_rows(row, block)
                report((row + n) / grid.height, f"{display}: rows {row + n}/{grid.height}")
            share = clear / max(1, grid.width * grid.height)
            sink.update_tags(S2_CLEAR=f"{share:.4f}")
            sink.commit()
    msgs.append(f"{display}: {prod.offset_rule}")
    if scl is not None:
        msgs.append(f"{display}: SCL classes masked as nodata: {_scl_text(scl_classes)}; {100 * share:.1f} % of the "
                    "area is clear")
    log.info("exported %s -> %s in %.1f s", display, out, time.time() - started)
    return Path(out)
