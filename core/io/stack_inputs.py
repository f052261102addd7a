"""What a revisit stack is made from: each date's band files, their radiometry, level and grid.

Why apart from the job: inputs come as Sentinel-2 products (folders, zips,
metadata files) or as plain rasters named by band and date; gathering them,
refusing a mix of processing levels, and opening each band on the output
grid are one job, and :func:`core.io.stack.build_stack` only stacks what
this module hands it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

from ..jobs import InputError, PathLike, error_text
from ..options import StackOptions
from .checks import check_pixel_size
from .input_signs import raster_level
from .radiometry import S2_DN_SCALE, ImplausibleRadiometry, Radiometry, check_plausible, detect_radiometry
from .rasters import GDAL_READ_ERRORS, Grid, open_raster, reference_grid
from .s2_product import (
    S2Product,
    baseline_rule,
    frame_info,
    ground_pixel_size,
    is_product,
    open_product,
    product_of_band_file,
)
from .s2_untrusted import open_member

__all__ = ["DateSource", "BandReader", "StackDate", "gather_dates", "check_levels", "open_source", "first_grid",
           "on_grid"]


@dataclass
class DateSource:
    """One band of one date: where to read it and how its values map to reflectance."""

    path: str
    bidx: int
    radiometry: Radiometry
    nodata: Optional[float]
    product: Optional[S2Product] = None  # the product it is a member of (opened as untrusted), None for a raster


@dataclass
class BandReader:
    """One band of a file seen on the output grid (NaN where the file has no valid pixel)."""

    vrt: WarpedVRT
    bidx: int
    path: str = ""

    def read(self, **kwargs) -> np.ndarray:
        """The band on the output grid; a damaged file (GDAL opens it, then fails mid-read) is one line naming it."""
        try:
            return self.vrt.read(self.bidx, **kwargs)
        except GDAL_READ_ERRORS as exc:
            raise InputError(f"{self.path}: band {self.bidx} cannot be read: {error_text(exc)}; the file is damaged "
                             "or incomplete (an interrupted copy or download?)") from exc


@dataclass
class StackDate:
    date: str
    label: str  # the input it came from, for messages
    order: int  # input order (ties and the reference grid)
    bands: Dict[str, DateSource] = field(default_factory=dict)
    scl: Optional[str] = None
    level: Optional[str] = None  # L1C, L2A, or None when the input does not say
    product: Optional[S2Product] = None
    clear: float = 0.0
    valid_small: Optional[np.ndarray] = None  # clear mask on the decimated analysis grid


def _sample_values(ds, bidx: int) -> np.ndarray:
    """Valid values of a decimated read (units detection only)."""
    k = max(1, int(math.ceil(max(ds.height, ds.width) / 256)))
    shape = (max(1, ds.height // k), max(1, ds.width // k))
    try:
        data = ds.read(bidx, out_shape=shape, resampling=Resampling.nearest, masked=True)
    except GDAL_READ_ERRORS as exc:
        raise InputError(f"{ds.name}: band {bidx} cannot be read: {error_text(exc)}; the file is damaged or "
                         "incomplete (an interrupted copy or download?)") from exc
    values = np.asarray(data.compressed(), dtype=np.float64)
    return values[np.isfinite(values)]


def _raster_radiometry(ds, path: Path, bidx: int, date: Optional[str], choice: str, messages: List[str],
                       said: set, product: Optional[S2Product]) -> Radiometry:
    """Units of a plain raster band: its scale/offset metadata; its product's rule; else DN by baseline rule."""
    scale = float(ds.scales[bidx - 1]) if ds.scales else 1.0
    offset = float(ds.offsets[bidx - 1]) if ds.offsets else 0.0
    if (scale, offset) != (1.0, 0.0):
        check_plausible(scale, offset, path.name)
        return Radiometry(scale, offset, f"{path.name}: scale {scale:g} and offset {offset:g} from its metadata")
    if product is not None:
        info = frame_info(path, bidx, ds)
        if info.band in product.offsets_dn:
            rad = product.radiometry(info.band)
            if path.name not in said:
                messages.append(f"{path.name}: inside product {product.name}; {product.offset_rule}")
                said.add(path.name)
            return rad
    detected = detect_radiometry(ds, bidx, _sample_values(ds, bidx), ds.dtypes[bidx - 1])
    if detected.scale != S2_DN_SCALE:
        return detected
    off, sentence = baseline_rule(path, ds.tags(), date=date, choice=choice)
    check_plausible(S2_DN_SCALE, off, f"{path.name} (offset from its tags)")  # S2_OFFSET_DN may say "nan"
    if path.name not in said:
        messages.append(sentence)
        said.add(path.name)
    return Radiometry(S2_DN_SCALE, off, sentence)


def _product_entry(item: PathLike, order: int, wanted: Sequence[str], messages: List[str]) -> Tuple[StackDate, S2Product]:
    """One date from a product (folder, zip, metadata file): its bands as members to open as untrusted."""
    prod = open_product(item)
    messages.extend(prod.notes)
    entry = StackDate(prod.date, prod.name, order, scl=prod.scl_path, level=prod.level, product=prod)
    for b in wanted:
        if b in prod.band_paths:
            entry.bands[b] = DateSource(prod.band_paths[b], 1, prod.radiometry(b), 0.0, product=prod)
    return entry, prod


def _raster_entries(path: Path, order: int, wanted: Sequence[str], options: StackOptions, messages: List[str],
                    dropped: List[Tuple[str, str]], said: set) -> List[StackDate]:
    """The dates a plain raster holds (one per date its bands name), with their units and processing level."""
    product = product_of_band_file(path)
    with open_raster(path) as ds:
        level = raster_level(path, ds.tags(), product.level if product is not None else None)
        if product is not None and product.level == "L2A" and path.name not in said:
            messages.append(f"{path.name}: a band file taken from inside L2A product {product.name}: its offset is "
                            "applied, but not its scene classification (SCL), so its clouds are not masked; give "
                            "the product itself to mask them")
        per_date: Dict[str, StackDate] = {}
        for bidx in range(1, ds.count + 1):
            info = frame_info(path, bidx, ds)
            band = info.band
            if band is None:
                if ds.count == 1 and len(wanted) == 1:
                    band = wanted[0]
                    messages.append(f"{path.name}: band not named; taken as {band}, the one band asked for")
                else:
                    raise InputError(
                        f"{path.name}: cannot tell which Sentinel-2 band band {bidx} holds (no band name in "
                        "its description, tags or file name); name it, or stack one band at a time")
            if info.date is None:
                raise InputError(
                    f"{path.name}: cannot tell the acquisition date of band {bidx} (none in its description, "
                    "tags or file name); put the date (YYYY-MM-DD) in the file name")
            if band not in wanted:
                continue
            entry = per_date.setdefault(info.date, StackDate(info.date, path.name, order, level=level))
            if band in entry.bands:
                dropped.append((f"{info.date} {band}", f"{path.name} holds {band} of {info.date} twice; "
                                                       "the first was used"))
                continue
            rad = _raster_radiometry(ds, path, bidx, info.date, options.baseline, messages, said, product)
            nodata = ds.nodatavals[bidx - 1]
            if nodata is None and np.issubdtype(np.dtype(ds.dtypes[bidx - 1]), np.integer):
                nodata = 0.0  # Sentinel-2 DN 0 is nodata
            entry.bands[band] = DateSource(str(path), bidx, rad, nodata)
        return list(per_date.values())


def gather_dates(inputs: Sequence[PathLike], wanted: Sequence[str], options: StackOptions, messages: List[str],
            dropped: List[Tuple[str, str]]) -> Tuple[List[StackDate], List[S2Product]]:
    """Every (date, band) the inputs hold, grouped by date; duplicates of a date are dropped with a reason.

    An input whose quantification, scale or offset cannot be right is dropped
    by itself, with its one-line reason: its values would otherwise set the
    stack's shared radiometry and make every date's pixels invalid.
    """
    dates: Dict[str, StackDate] = {}
    products: List[S2Product] = []
    said: set = set()
    for order, item in enumerate(inputs):
        try:
            if is_product(item):
                entry, prod = _product_entry(item, order, wanted, messages)
                products.append(prod)
                found = [entry]
            else:
                found = _raster_entries(Path(item), order, wanted, options, messages, dropped, said)
        except ImplausibleRadiometry as exc:
            dropped.append((Path(str(item)).name, str(exc)))
            continue
        for entry in found:
            if not entry.bands:
                dropped.append((entry.date, f"{entry.label} holds none of the bands {', '.join(wanted)}"))
                continue
            if entry.date in dates:
                earlier = dates[entry.date]
                clash = set(entry.bands) & set(earlier.bands)
                if clash or entry.scl or earlier.scl:
                    dropped.append((entry.date, f"{entry.label}: same date as {earlier.label}, used instead"))
                    continue
                earlier.bands.update(entry.bands)  # bands of one date in separate files
                continue
            dates[entry.date] = entry
    rules: Dict[str, List[str]] = {}
    for prod in products:
        rules.setdefault(prod.offset_rule, []).append(prod.date)
    for rule, days in rules.items():
        messages.append(f"{rule} ({len(days)} product{'s' if len(days) > 1 else ''}: {', '.join(days)})")
    return list(dates.values()), products


def check_levels(dates: Sequence[StackDate], allow_mix: bool, scl_classes: Sequence[int], messages: List[str]) -> None:
    """Refuse L1C (top of atmosphere) and L2A (surface) dates in one stack unless asked; say where clouds stay.

    The two levels differ most in B02 (haze, path radiance): mixed, the
    revisits disagree for reasons no network was trained on, and the L1C dates,
    having no SCL, count as nearly clear and rank first.
    """
    by_level: Dict[str, List[str]] = {}
    for d in dates:
        if d.level:
            by_level.setdefault(d.level, []).append(d.date)
    if len(by_level) > 1:
        listed = "; ".join(f"{lvl} ({'top of atmosphere' if lvl == 'L1C' else 'surface reflectance'}): "
                           f"{', '.join(sorted(days))}" for lvl, days in sorted(by_level.items()))
        if not allow_mix:
            raise InputError(f"the inputs mix processing levels ({listed}); their reflectances differ, most in B02, "
                             "so stack one level, or allow the mix (--mix-levels; in QGIS: Allow L1C and L2A "
                             "dates together)")
        messages.append(f"processing levels mixed as asked ({listed}); their reflectances differ, most in B02")
    l1c = sorted(d.date for d in dates if d.level == "L1C" and d.product is not None)
    if l1c and scl_classes:
        messages.append(f"{', '.join(l1c)}: L1C, which has no scene classification (SCL): clouds could not be "
                        "masked there, so their clear share counts only nodata pixels")


def open_source(path: str, what: str, product: Optional[S2Product]):
    """A product member opens only as its format and inside its product (untrusted); a plain raster as it is."""
    if product is not None:
        return open_member(path, what, product.name, product.local_root)
    return open_raster(path)


def first_grid(first: StackDate, messages: List[str]) -> Tuple[Grid, str]:
    """The reference grid: the first usable input's 10 m grid (its UTM zone when it is in degrees)."""
    src = next(iter(first.bands.values()))
    name = first.product.name if first.product is not None else Path(src.path).name
    with open_source(src.path, "its first band", first.product) as ds:
        grid = reference_grid(ds, name, messages)
        check = check_pixel_size(ground_pixel_size(ds), name, "SR_SCALE" in ds.tags())
    if check.level == "refusal":
        raise InputError(check.message)
    return grid, name


def on_grid(ds, grid: Grid) -> bool:
    """Same CRS and pixel size, origins whole pixels apart: a copy, no resampling."""
    t, g = ds.transform, grid.transform
    if ds.crs != grid.crs or t.b or t.d or g.b or g.d:
        return False
    if not (math.isclose(t.a, g.a, rel_tol=1e-9) and math.isclose(t.e, g.e, rel_tol=1e-9)):
        return False
    cx, cy = (t.c - g.c) / g.a, (t.f - g.f) / g.e
    return abs(cx - round(cx)) < 1e-6 and abs(cy - round(cy)) < 1e-6
