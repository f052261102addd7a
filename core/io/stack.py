"""Revisit stacks: several Sentinel-2 dates over one area -> one multi-date GeoTIFF on one 10 m grid.

Why a module of its own: multi-image super-resolution needs several clear
revisits of one band on one grid, while analysts hold a handful of partly
cloudy products or exports. Building the stack is a GIS job with its own
rules, kept apart from inference:

* **one grid** -- the first input's 10 m grid (cropped to the extent). Inputs on
  the same grid, or offset by whole pixels, are copied without resampling;
  others are warped (bilinear), and the messages say so.
* **clear dates first** -- the SCL (products) or nodata (rasters) says which
  pixels are clear; dates are ranked by their clear share over the area, those
  under ``min_clear`` are dropped and the ``frames`` clearest kept, each with
  its reason.
* **shifts recorded, not removed** -- Sentinel-2 dates are co-registered to a
  fraction of a pixel, and those sub-pixel offsets are exactly what
  multi-image SR feeds on. Each kept date's shift against the clearest date is
  measured by phase correlation (whitened cross-power spectrum, refined by an
  upsampled DFT around its peak) on clear pixels, and written to the tags;
  the pixels themselves are never resampled to undo it.

Output: one GeoTIFF, one band per (band, date), band-major (every date of
B02, then B03, B04, B08), descriptions ``B08_2023-05-12`` so that the reader's
name-prefix rule (``band="B08"``) selects all dates of a band; uint16 DN,
nodata 0, one scale/offset for every band (dates of older baselines are
shifted by whole DN to share it), and tags ``STACK_*``. The clearest date
comes first: it is the reference of the shifts and frame 0 of the readers.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from ..jobs import CancelToken, InputError, Progress, check_cancel, error_text, progress_fn
from ..options import StackOptions
from .checks import check_pixel_size
from .radiometry import S2_DN_SCALE, ImplausibleRadiometry, Radiometry, check_plausible, detect_radiometry
from .rasters import GDAL_READ_ERRORS, Grid, gdal_env, open_raster, reference_grid, window_from_extent
from .s2_product import (
    BANDS_10M,
    SCL_CLASSES,
    S2Product,
    band_key,
    baseline_rule,
    frame_info,
    ground_pixel_size,
    harmonize_dn,
    is_product,
    open_product,
    product_of_band_file,
    wavelength_of,
)
from .s2_untrusted import open_member, product_env
from .writer import GeoTiffSink, check_output_path, geotiff_profile

__all__ = ["StackResult", "build_stack", "measure_shift", "SHIFT_BAND_PREFERENCE"]

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

#: Side (pixels) of the decimated grid on which clear shares are measured: exact for town-sized areas,
#: a 1/22 sample of a full 10980-px tile.
ANALYSIS_SIDE = 512
#: Side (10 m pixels) of the window in which shifts are measured: 5 km holds plenty of texture.
SHIFT_WINDOW = 256
#: Fewest clear pixels two dates must share in that window for a shift to be measured.
SHIFT_MIN_PIXELS = 1024
#: Largest shift searched (10 m pixels); Sentinel-2 dates are co-registered far better than this.
SHIFT_MAX = 8.0
#: Bands in the order they are preferred for measuring shifts: NIR has the most texture over land.
SHIFT_BAND_PREFERENCE = ("B08", "B04", "B03", "B02")
#: Rows per strip when writing; memory is rows x width x bands x dates x 2 B.
STACK_STRIP_ROWS = 512


@dataclass
class StackResult:
    """What :func:`build_stack` wrote and decided."""

    path: Path
    dates: List[str]  # kept dates, in the output's order (clearest first)
    dropped: List[Tuple[str, str]]  # (date or input, reason)
    shifts: Dict[str, Optional[Tuple[float, float]]]  # date -> (dx, dy) in 10 m pixels vs the reference date
    clear: Dict[str, float]  # every date seen -> clear share over the area
    bands: List[str]
    reference_date: str
    messages: List[str] = field(default_factory=list)
    seconds: float = 0.0


# --------------------------------------------------------------------------- sub-pixel shifts


def _hann2d(h: int, w: int) -> np.ndarray:
    return np.outer(np.hanning(h), np.hanning(w))


def _box_smooth(mask: np.ndarray, radius: int) -> np.ndarray:
    """Mean of ``mask`` over a (2r+1)^2 box (cumulative sums): soft edges for the clear-pixel taper."""
    if radius <= 0:
        return mask.astype(np.float64)
    a = np.pad(mask.astype(np.float64), radius, mode="edge")
    c = np.cumsum(np.cumsum(a, axis=0), axis=1)
    c = np.pad(c, ((1, 0), (1, 0)))
    k = 2 * radius + 1
    s = c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]
    return s / (k * k)


def _dft_around(spec: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Inverse DFT of ``spec`` evaluated at fractional pixel positions ``rows`` x ``cols`` (matrix products)."""
    fr = np.fft.fftfreq(spec.shape[0])
    fc = np.fft.fftfreq(spec.shape[1])
    kr = np.exp(2j * np.pi * np.outer(rows, fr))
    kc = np.exp(2j * np.pi * np.outer(fc, cols))
    return kr @ spec @ kc


def measure_shift(ref: np.ndarray, img: np.ndarray, ref_valid: Optional[np.ndarray] = None,
                  img_valid: Optional[np.ndarray] = None, max_shift: float = SHIFT_MAX,
                  upsample: int = 100) -> Optional[Tuple[float, float, float]]:
    """Sub-pixel displacement ``(dx, dy, peak)`` of ``img``'s content relative to ``ref``, or None.

    A feature at column c, row r of ``ref`` sits at c + dx, r + dy in ``img``.
    Only pixels clear in both count: each image is normalised on them, set to 0
    elsewhere and multiplied by one taper (a Hann window times a softened
    common mask), so cloud edges and the window border add no structure of
    their own. The whitened cross-power spectrum's inverse DFT peaks at the
    shift; the integer peak is refined on a 1/``upsample`` pixel lattice by
    evaluating that DFT around it (no interpolation). ``peak`` (0..1) is the
    height of the correlation peak: near 1 for a clean match, below ~0.05 the
    shift is noise. None when fewer than :data:`SHIFT_MIN_PIXELS` pixels are
    clear in both, or when either image has no texture.
    """
    ref = np.asarray(ref, dtype=np.float64)
    img = np.asarray(img, dtype=np.float64)
    if ref.shape != img.shape or ref.ndim != 2:
        raise ValueError("measure_shift needs two 2-D arrays of one shape")
    common = np.isfinite(ref) & np.isfinite(img)
    if ref_valid is not None:
        common &= ref_valid
    if img_valid is not None:
        common &= img_valid
    if int(common.sum()) < min(SHIFT_MIN_PIXELS, common.size // 2):
        return None
    taper = _hann2d(*ref.shape) * _box_smooth(common, 3) * common

    def prep(a: np.ndarray) -> Optional[np.ndarray]:
        vals = a[common]
        std = float(vals.std())
        if not std > 1e-9 * max(1.0, float(np.abs(vals).mean())):
            return None
        out = np.where(common, (a - float(vals.mean())) / std, 0.0)
        return out * taper

    a, b = prep(ref), prep(img)
    if a is None or b is None:
        return None
    cross = np.fft.fft2(b) * np.conj(np.fft.fft2(a))
    cross /= np.maximum(np.abs(cross), 1e-12 * np.abs(cross).max())
    surface = np.real(np.fft.ifft2(cross))
    h, w = surface.shape
    rr = np.fft.fftfreq(h) * h
    cc = np.fft.fftfreq(w) * w
    allowed = (np.abs(rr)[:, None] <= max_shift) & (np.abs(cc)[None, :] <= max_shift)
    idx = np.unravel_index(np.argmax(np.where(allowed, surface, -np.inf)), surface.shape)
    r0, c0 = float(rr[idx[0]]), float(cc[idx[1]])
    # Refine: a 1.5-pixel square around the integer peak, sampled every 1/upsample pixel.
    n = int(math.ceil(1.5 * upsample)) + 1
    offs = (np.arange(n) - (n - 1) / 2.0) / upsample
    fine = np.real(_dft_around(cross, r0 + offs, c0 + offs)) / cross.size
    fi = np.unravel_index(np.argmax(fine), fine.shape)
    dy, dx = r0 + offs[fi[0]], c0 + offs[fi[1]]
    return float(dx), float(dy), float(fine[fi])


# --------------------------------------------------------------------------- inputs


@dataclass
class _Source:
    """One band of one date: where to read it and how its values map to reflectance."""

    path: str
    bidx: int
    radiometry: Radiometry
    nodata: Optional[float]
    product: Optional[S2Product] = None  # the product it is a member of (opened as untrusted), None for a raster


@dataclass
class _Reader:
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
class _Date:
    date: str
    label: str  # the input it came from, for messages
    order: int  # input order (ties and the reference grid)
    bands: Dict[str, _Source] = field(default_factory=dict)
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


#: Processing level in a file or product name (``S2B_MSIL2A_...``, ``..._Sentinel-2_L1C_B08_(Raw).tiff``).
_LEVEL_IN_NAME_RE = re.compile(r"(?:MSI|Sentinel-2_)(L1C|L2A)(?![A-Za-z0-9])", re.I)


def _raster_level(path: Path, tags: Dict[str, str], product: Optional[S2Product]) -> Optional[str]:
    """The processing level of a plain raster (L1C top of atmosphere or L2A surface), None when nothing says.

    From, in order: the product it sits in, our own export tags (``S2_LEVEL``),
    GDAL's product metadata, a product-like or Sentinel Hub export name.
    """
    if product is not None:
        return product.level
    for key in ("S2_LEVEL", "PROCESSING_LEVEL", "PRODUCT_TYPE"):
        text = str(tags.get(key, "")).upper().replace("LEVEL-", "L").replace("S2MSI", "L")
        if text in ("L1C", "L2A"):
            return text
    m = _LEVEL_IN_NAME_RE.search(path.name) or _LEVEL_IN_NAME_RE.search(str(tags.get("PRODUCT_URI", "")))
    return m.group(1).upper() if m else None


def _product_entry(item: PathLike, order: int, wanted: Sequence[str], messages: List[str]) -> Tuple[_Date, S2Product]:
    """One date from a product (folder, zip, metadata file): its bands as members to open as untrusted."""
    prod = open_product(item)
    messages.extend(prod.notes)
    entry = _Date(prod.date, prod.name, order, scl=prod.scl_path, level=prod.level, product=prod)
    for b in wanted:
        if b in prod.band_paths:
            entry.bands[b] = _Source(prod.band_paths[b], 1, prod.radiometry(b), 0.0, product=prod)
    return entry, prod


def _raster_entries(path: Path, order: int, wanted: Sequence[str], options: StackOptions, messages: List[str],
                    dropped: List[Tuple[str, str]], said: set) -> List[_Date]:
    """The dates a plain raster holds (one per date its bands name), with their units and processing level."""
    product = product_of_band_file(path)
    with open_raster(path) as ds:
        level = _raster_level(path, ds.tags(), product)
        if product is not None and product.level == "L2A" and path.name not in said:
            messages.append(f"{path.name}: a band file taken from inside L2A product {product.name}: its offset is "
                            "applied, but not its scene classification (SCL), so its clouds are not masked; give "
                            "the product itself to mask them")
        per_date: Dict[str, _Date] = {}
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
            entry = per_date.setdefault(info.date, _Date(info.date, path.name, order, level=level))
            if band in entry.bands:
                dropped.append((f"{info.date} {band}", f"{path.name} holds {band} of {info.date} twice; "
                                                       "the first was used"))
                continue
            rad = _raster_radiometry(ds, path, bidx, info.date, options.baseline, messages, said, product)
            nodata = ds.nodatavals[bidx - 1]
            if nodata is None and np.issubdtype(np.dtype(ds.dtypes[bidx - 1]), np.integer):
                nodata = 0.0  # Sentinel-2 DN 0 is nodata
            entry.bands[band] = _Source(str(path), bidx, rad, nodata)
        return list(per_date.values())


def _gather(inputs: Sequence[PathLike], wanted: Sequence[str], options: StackOptions, messages: List[str],
            dropped: List[Tuple[str, str]]) -> Tuple[List[_Date], List[S2Product]]:
    """Every (date, band) the inputs hold, grouped by date; duplicates of a date are dropped with a reason.

    An input whose quantification, scale or offset cannot be right is dropped
    by itself, with its one-line reason: its values would otherwise set the
    stack's shared radiometry and make every date's pixels invalid.
    """
    dates: Dict[str, _Date] = {}
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


def _check_levels(dates: Sequence[_Date], allow_mix: bool, scl_classes: Sequence[int], messages: List[str]) -> None:
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


def _open_source(path: str, what: str, product: Optional[S2Product]):
    """A product member opens only as its format and inside its product (untrusted); a plain raster as it is."""
    if product is not None:
        return open_member(path, what, product.name, product.local_root)
    return open_raster(path)


def _first_grid(first: _Date, messages: List[str]) -> Tuple[Grid, str]:
    """The reference grid: the first usable input's 10 m grid (its UTM zone when it is in degrees)."""
    src = next(iter(first.bands.values()))
    name = first.product.name if first.product is not None else Path(src.path).name
    with _open_source(src.path, "its first band", first.product) as ds:
        grid = reference_grid(ds, name, messages)
        check = check_pixel_size(ground_pixel_size(ds), name, "SR_SCALE" in ds.tags())
    if check.level == "refusal":
        raise InputError(check.message)
    return grid, name


def _aligned(ds, grid: Grid) -> bool:
    """Same CRS and pixel size, origins whole pixels apart: a copy, no resampling."""
    t, g = ds.transform, grid.transform
    if ds.crs != grid.crs or t.b or t.d or g.b or g.d:
        return False
    if not (math.isclose(t.a, g.a, rel_tol=1e-9) and math.isclose(t.e, g.e, rel_tol=1e-9)):
        return False
    cx, cy = (t.c - g.c) / g.a, (t.f - g.f) / g.e
    return abs(cx - round(cx)) < 1e-6 and abs(cy - round(cy)) < 1e-6


# --------------------------------------------------------------------------- the job


def build_stack(inputs: Sequence[PathLike], out_path: PathLike, options: Optional[StackOptions] = None,
                progress: Optional[Progress] = None, cancel: Optional[CancelToken] = None) -> StackResult:
    """Stack several dates (Sentinel-2 products, or rasters of one area) into one GeoTIFF; see the module doc.

    ``inputs``: products (``.SAFE`` folder, ``.zip``, ``MTD_MSI*.xml``) and/or
    rasters whose bands are named (description, tags or file name) and dated.
    ``options``: bands, how many dates, the least clear share, SCL classes
    masked, extent, processing baseline of plain rasters
    (:class:`core.options.StackOptions`). Raises :class:`InputError` (one
    sentence) before writing anything when the inputs cannot make a stack.
    """
    started = time.time()
    opts = options or StackOptions()
    report = progress_fn(progress)
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not inputs:
        raise InputError("no input given; give Sentinel-2 products or rasters of several dates")
    wanted: List[str] = []
    for b in opts.bands or BANDS_10M:
        key = band_key(b)
        if key not in BANDS_10M:
            raise InputError(f"band {b!r} is not one of the 10 m bands {', '.join(BANDS_10M)}")
        if key not in wanted:
            wanted.append(key)
    scl_classes = sorted(set(opts.scl_nodata))
    local_inputs = [p for p in inputs if not is_product(p)] + [p for p in inputs if is_product(p)]
    out = check_output_path(out_path, local_inputs)
    messages: List[str] = []
    dropped: List[Tuple[str, str]] = []
    report(0.0, "reading the inputs")

    with gdal_env(), product_env(), ExitStack() as stack:
        dates, products = _gather(inputs, wanted, opts, messages, dropped)
        for prod in products:
            if prod.local_root and Path(out).resolve().is_relative_to(Path(prod.local_root).resolve()):
                raise InputError(f"{out}: is inside the product folder {prod.local_root}; write the stack elsewhere")
        if not dates:
            if dropped:
                raise InputError("no usable date: " + "; ".join(f"{what}: {why}" for what, why in dropped))
            raise InputError("no input holds any of the bands " + ", ".join(wanted))
        _check_levels(dates, opts.mix_levels, scl_classes, messages)
        present = [b for b in wanted if any(b in d.bands for d in dates)]
        absent = [b for b in wanted if b not in present]
        if absent:
            messages.append(f"no input holds {', '.join(absent)}; stacked {', '.join(present)} only")
        usable = []
        for d in dates:
            lacking = [b for b in present if b not in d.bands]
            if lacking:
                dropped.append((d.date, f"{d.label} has no {', '.join(lacking)}"))
            else:
                usable.append(d)
        if not usable:
            raise InputError(f"no date holds every band asked for ({', '.join(present)})")

        full_grid, first_name = _first_grid(min(usable, key=lambda d: d.order), messages)
        window = window_from_extent(full_grid, opts.extent)
        grid = Grid(full_grid.crs, rasterio.windows.transform(window, full_grid.transform), int(window.width),
                    int(window.height))

        # Readers on the output grid: copies for aligned inputs, bilinear warps for the others.
        # One VRT per file (a multi-band file serves several bands or dates): (VRT, band index) per band.
        readers: Dict[Tuple[str, str], _Reader] = {}
        scl_readers: Dict[str, WarpedVRT] = {}
        vrts: Dict[str, WarpedVRT] = {}
        announced: set = set()
        for d in usable:
            for b, src in d.bands.items():
                if src.path not in vrts:
                    ds = stack.enter_context(_open_source(src.path, f"band {b}", src.product))
                    aligned = _aligned(ds, grid)
                    if not aligned and d.label not in announced and d.label != first_name:
                        how = (f"in {ds.crs.to_string()}, warped" if ds.crs != grid.crs else
                               "on another pixel grid, resampled")
                        messages.append(f"{d.label}: {how} onto the grid of {first_name} with bilinear resampling")
                        announced.add(d.label)
                    vrts[src.path] = stack.enter_context(WarpedVRT(
                        ds, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
                        resampling=Resampling.nearest if aligned else Resampling.bilinear, dtype="float32",
                        nodata=float("nan"), src_nodata=src.nodata))
                readers[(d.date, b)] = _Reader(vrts[src.path], src.bidx, src.path)
            if d.scl and scl_classes:
                scl_ds = stack.enter_context(_open_source(d.scl, "the SCL", d.product))
                scl_readers[d.date] = stack.enter_context(WarpedVRT(
                    scl_ds, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
                    resampling=Resampling.nearest, nodata=0))

        # Pass 1: clear share of each date on a decimated grid.
        k = max(1, int(math.ceil(max(grid.width, grid.height) / ANALYSIS_SIDE)))
        small = (int(math.ceil(grid.height / k)), int(math.ceil(grid.width / k)))
        for i, d in enumerate(usable):
            check_cancel(cancel)
            valid = np.ones(small, dtype=bool)
            for b in present:
                data = readers[(d.date, b)].read(out_shape=small, resampling=Resampling.nearest)
                valid &= np.isfinite(data)
            if d.date in scl_readers:
                classes = scl_readers[d.date].read(1, out_shape=small, resampling=Resampling.nearest)
                valid &= ~np.isin(classes, scl_classes)
            d.valid_small = valid
            d.clear = float(valid.mean())
            report(0.05 + 0.25 * (i + 1) / len(usable), f"{d.date}: {100 * d.clear:.0f} % clear")

        ranked = sorted(usable, key=lambda d: (-d.clear, d.date))
        kept: List[_Date] = []
        reasons: Dict[str, str] = {}
        for d in ranked:
            pct = f"{100 * d.clear:.1f} % clear"
            if d.clear < opts.min_clear:
                reason = f"only {pct} over the area (the least is {100 * opts.min_clear:g} %)"
                dropped.append((d.date, reason))
            elif len(kept) >= opts.frames:
                reason = f"{pct}, not among the {opts.frames} clearest"
                dropped.append((d.date, reason))
            else:
                kept.append(d)
                reason = f"{pct}, rank {len(kept)} of {len(usable)}"
            reasons[d.date] = reason
        if not kept:
            raise InputError(
                f"no date is at least {100 * opts.min_clear:g} % clear over the area: "
                + "; ".join(f"{d.date} {100 * d.clear:.1f} %" for d in ranked))
        messages.append("kept " + ", ".join(f"{d.date} ({100 * d.clear:.0f} % clear)" for d in kept))
        for date, reason in dropped:
            messages.append(f"dropped {date}: {reason}")

        # Shifts of each kept date against the clearest, on the window where both are clearest.
        shift_band = next(b for b in SHIFT_BAND_PREFERENCE if b in present)
        ref = kept[0]
        shifts: Dict[str, Optional[Tuple[float, float]]] = {ref.date: (0.0, 0.0)}
        peaks: Dict[str, Optional[float]] = {ref.date: 1.0}
        for i, d in enumerate(kept[1:], start=1):
            check_cancel(cancel)
            win = _shift_window(ref, d, grid, k)
            a, va = _read_reflectance(readers[(ref.date, shift_band)], scl_readers.get(ref.date), win,
                                      ref.bands[shift_band].radiometry, scl_classes)
            b, vb = _read_reflectance(readers[(d.date, shift_band)], scl_readers.get(d.date), win,
                                      d.bands[shift_band].radiometry, scl_classes)
            found = measure_shift(a, b, va, vb)
            if found is None or found[2] < 0.02:
                shifts[d.date], peaks[d.date] = None, None
                messages.append(f"{d.date}: too few clear pixels in common with {ref.date} (or too little texture) "
                                "to measure its shift")
            else:
                shifts[d.date] = (round(found[0], 3), round(found[1], 3))
                peaks[d.date] = round(found[2], 3)
                if math.hypot(found[0], found[1]) > 1.0:
                    messages.append(f"{d.date}: shifted by {found[0]:+.2f}, {found[1]:+.2f} px against {ref.date}, "
                                    "more than Sentinel-2's usual co-registration; check that it shows the same area")
            report(0.3 + 0.1 * i / max(1, len(kept) - 1), f"{d.date}: shift measured")
        measured = [f"{dt} {s[0]:+.2f}, {s[1]:+.2f}" for dt, s in shifts.items() if s is not None and dt != ref.date]
        if measured:
            messages.append(f"shifts (dx, dy in 10 m pixels, {shift_band}) against {ref.date}: " + "; ".join(measured)
                            + "; recorded in the tags, not resampled away")

        # One radiometry for the whole file.
        sources = [d.bands[b] for d in kept for b in present]
        dn_scales = [s.radiometry.scale for s in sources if s.radiometry.scale != 1.0]
        target_scale = min(dn_scales) if dn_scales else S2_DN_SCALE
        low = min(s.radiometry.offset for s in sources)
        if any(s.radiometry.scale == 1.0 for s in sources):
            low = min(low, -0.1)  # reflectance inputs: room for slightly negative values
        target = Radiometry(target_scale, low, f"reflectance = DN x {target_scale:g} {low:+g}")
        check_plausible(target.scale, target.offset, "the stack's shared radiometry")
        for d in kept:
            if any((d.bands[b].radiometry.scale, d.bands[b].radiometry.offset) != (target.scale, target.offset)
                   for b in present):
                messages.append(f"{d.date}: values converted to the stack's DN, reflectance = DN x "
                                f"{target.scale:g} {target.offset:+g} (reflectance unchanged)")

        order = [(b, d) for b in present for d in kept]
        descriptions = [f"{b}_{d.date}" for b, d in order]
        spacecraft = next((p.spacecraft for p in products), "")
        wl = {b: next((p.wavelengths_nm[b] for p in products if b in p.wavelengths_nm),
                      wavelength_of(b, spacecraft)) for b in present}
        tags = {
            "STACK_DATES": json.dumps([d.date for d in kept]),
            "STACK_BANDS": json.dumps(present),
            "STACK_SHIFTS": json.dumps({dt: None if s is None else {"dx": s[0], "dy": s[1], "peak": peaks[dt]}
                                        for dt, s in shifts.items()}),
            "STACK_SHIFT_BAND": shift_band,
            "STACK_REFERENCE": ref.date,
            "STACK_CLEAR": json.dumps({d.date: round(d.clear, 4) for d in ranked}),
            "STACK_REASONS": json.dumps({**{dt: r for dt, r in dropped}, **{d.date: reasons[d.date] for d in kept}}),
            "STACK_INPUTS": json.dumps([str(p) for p in inputs]),
            "STACK_LEVELS": json.dumps({d.date: d.level for d in kept}),
            "STACK_SCL_MASKED": ", ".join(f"{c} {SCL_CLASSES.get(c, '?')}" for c in scl_classes)
            if scl_readers else "none (no SCL)",
            "S2_OFFSET_DN": f"{target.offset / target.scale:g}",
            "S2_WAVELENGTHS_NM": json.dumps(wl),
        }
        sink = GeoTiffSink(out, geotiff_profile(grid, "uint16", len(order), 0), tags, descriptions,
                           (target.scale, target.offset))
        with sink:
            for row in range(0, grid.height, STACK_STRIP_ROWS):
                check_cancel(cancel)
                n = min(STACK_STRIP_ROWS, grid.height - row)
                win = Window(0, row, grid.width, n)
                block = np.empty((len(order), n, grid.width), dtype=np.uint16)
                masks: Dict[str, np.ndarray] = {}
                for d in kept:
                    if d.date in scl_readers:
                        masks[d.date] = np.isin(scl_readers[d.date].read(1, window=win), scl_classes)
                for i, (b, d) in enumerate(order):
                    data = readers[(d.date, b)].read(window=win)
                    valid = np.isfinite(data)
                    if d.date in masks:
                        valid &= ~masks[d.date]
                    block[i] = harmonize_dn(np.nan_to_num(data), valid, d.bands[b].radiometry, target)
                sink.write_rows(row, block)
                report(0.4 + 0.6 * (row + n) / grid.height, f"rows {row + n}/{grid.height}")
            sink.commit()

    return StackResult(
        path=Path(out), dates=[d.date for d in kept], dropped=dropped, shifts=shifts,
        clear={d.date: d.clear for d in ranked}, bands=present, reference_date=ref.date, messages=messages,
        seconds=time.time() - started,
    )


def _shift_window(ref: _Date, d: _Date, grid: Grid, k: int) -> Window:
    """The SHIFT_WINDOW-square window where both dates are clearest (chosen on the decimated masks)."""
    side_r, side_c = min(SHIFT_WINDOW, grid.height), min(SHIFT_WINDOW, grid.width)
    joint = ref.valid_small & d.valid_small
    best, best_score = (0, 0), -1.0
    rows = sorted(set(list(range(0, grid.height - side_r + 1, max(1, side_r // 2))) + [grid.height - side_r]))
    cols = sorted(set(list(range(0, grid.width - side_c + 1, max(1, side_c // 2))) + [grid.width - side_c]))
    for r in rows:
        for c in cols:
            part = joint[r // k:(r + side_r + k - 1) // k, c // k:(c + side_c + k - 1) // k]
            score = float(part.mean()) if part.size else 0.0
            if score > best_score:
                best, best_score = (r, c), score
    return Window(best[1], best[0], side_c, side_r)


def _read_reflectance(reader: _Reader, scl_reader, win: Window, rad: Radiometry,
                      scl_classes: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    data = reader.read(window=win)
    valid = np.isfinite(data)
    if scl_reader is not None:
        valid &= ~np.isin(scl_reader.read(1, window=win), scl_classes)
    refl = rad.to_reflectance(np.nan_to_num(data).astype(np.float64))
    return np.where(valid, refl, 0.0), valid
