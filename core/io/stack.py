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
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from ..jobs import CancelToken, InputError, PathLike, Progress, check_cancel, progress_fn
from ..options import StackOptions
from .radiometry import S2_DN_SCALE, Radiometry, check_plausible
from .rasters import Grid, gdal_env, window_from_extent
from .s2_product import (
    BANDS_10M,
    SCL_CLASSES,
    band_key,
    harmonize_dn,
    is_product,
    wavelength_of,
)
from .s2_untrusted import product_env
from .stack_inputs import BandReader, StackDate, check_levels, first_grid, gather_dates, on_grid, open_source
from .subpixel import SHIFT_WINDOW, measure_shift
from .writer import GeoTiffSink, check_output_path, geotiff_profile

__all__ = ["StackResult", "build_stack", "measure_shift", "SHIFT_BAND_PREFERENCE"]

log = logging.getLogger(__name__)


#: Side (pixels) of the decimated grid on which clear shares are measured: exact for town-sized areas,
#: a 1/22 sample of a full 10980-px tile.
ANALYSIS_SIDE = 512
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
        dates, products = gather_dates(inputs, wanted, opts, messages, dropped)
        for prod in products:
            if prod.local_root and Path(out).resolve().is_relative_to(Path(prod.local_root).resolve()):
                raise InputError(f"{out}: is inside the product folder {prod.local_root}; write the stack elsewhere")
        if not dates:
            if dropped:
                raise InputError("no usable date: " + "; ".join(f"{what}: {why}" for what, why in dropped))
            raise InputError("no input holds any of the bands " + ", ".join(wanted))
        check_levels(dates, opts.mix_levels, scl_classes, messages)
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

        full_grid, first_name = first_grid(min(usable, key=lambda d: d.order), messages)
        window = window_from_extent(full_grid, opts.extent)
        grid = Grid(full_grid.crs, rasterio.windows.transform(window, full_grid.transform), int(window.width),
                    int(window.height))

        # Readers on the output grid: copies for aligned inputs, bilinear warps for the others.
        # One VRT per file (a multi-band file serves several bands or dates): (VRT, band index) per band.
        readers: Dict[Tuple[str, str], BandReader] = {}
        scl_readers: Dict[str, WarpedVRT] = {}
        vrts: Dict[str, WarpedVRT] = {}
        announced: set = set()
        for d in usable:
            for b, src in d.bands.items():
                if src.path not in vrts:
                    ds = stack.enter_context(open_source(src.path, f"band {b}", src.product))
                    aligned = on_grid(ds, grid)
                    if not aligned and d.label not in announced and d.label != first_name:
                        how = (f"in {ds.crs.to_string()}, warped" if ds.crs != grid.crs else
                               "on another pixel grid, resampled")
                        messages.append(f"{d.label}: {how} onto the grid of {first_name} with bilinear resampling")
                        announced.add(d.label)
                    vrts[src.path] = stack.enter_context(WarpedVRT(
                        ds, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
                        resampling=Resampling.nearest if aligned else Resampling.bilinear, dtype="float32",
                        nodata=float("nan"), src_nodata=src.nodata))
                readers[(d.date, b)] = BandReader(vrts[src.path], src.bidx, src.path)
            if d.scl and scl_classes:
                scl_ds = stack.enter_context(open_source(d.scl, "the SCL", d.product))
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
        kept: List[StackDate] = []
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


def _shift_window(ref: StackDate, d: StackDate, grid: Grid, k: int) -> Window:
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


def _read_reflectance(reader: BandReader, scl_reader, win: Window, rad: Radiometry,
                      scl_classes: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    data = reader.read(window=win)
    valid = np.isfinite(data)
    if scl_reader is not None:
        valid &= ~np.isin(scl_reader.read(1, window=win), scl_classes)
    refl = rad.to_reflectance(np.nan_to_num(data).astype(np.float64))
    return np.where(valid, refl, 0.0), valid
