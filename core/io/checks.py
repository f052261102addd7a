"""Input checks shown before work starts: is this the band, the pixel size and the kind of frames the model expects?

Why a module of its own: a network trained on near-infrared revisits at 10 m
gives confident nonsense on a red band, on a 3.33 m output fed back in, or on
"revisits" that are really four bands of one date. Those mistakes are cheap
to see from the files and expensive to see in the output, so each check here
is a pure function of what the files say (:class:`core.io.s2_product.FrameInfo`,
a pixel size, pixel samples) returning a :class:`Check` with one sentence an
analyst understands. :func:`check_inputs` runs the relevant ones on rasters;
:func:`enforce` raises :class:`InputError` for refusals unless forced.

Levels: ``ok`` (said for the record), ``warning`` (the run goes on, the
analyst is told), ``refusal`` (the run stops unless forced).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import rasterio
from rasterio.windows import Window

from ..jobs import InputError
from .check_types import LEVELS, Check
from .input_signs import sign_checks
from .rasters import FrameSet, open_raster, resolve_bands
from .s2_product import BAND_NAMES, FrameInfo, band_key, frame_info, wavelength_of

__all__ = [
    "Check",
    "LEVELS",
    "S2_PIXEL_M",
    "SR_PIXEL_M",
    "PIXEL_TOLERANCE",
    "REVISIT_MIN_CORRELATION",
    "MOSTLY_CLOUD",
    "check_band_match",
    "check_pixel_size",
    "check_revisits",
    "check_segmentation_input",
    "check_clouds",
    "frame_correlation",
    "check_inputs",
    "check_every_input",
    "enforce",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Pixel of Sentinel-2's B02, B03, B04, B08, and of this tool's x3 outputs.
S2_PIXEL_M = 10.0
SR_PIXEL_M = 10.0 / 3.0
#: Relative tolerance on a pixel size. A 10 m band reprojected to another CRS keeps its ground pixel within a
#: few per cent (UTM's scale error is under 0.1 %, national grids' similar), so +-15 % admits every honest
#: 10 m raster, even mildly resampled, while the nearest other sizes -- 3.33 m outputs, 20 m and 60 m
#: bands -- stay far outside.
PIXEL_TOLERANCE = 0.15
#: Least Pearson correlation, on common clear pixels, between a revisit and the first frame. Dates of one
#: band share the scene's structure (fields, roads, roofs); gain and haze are (nearly) affine and leave the
#: correlation unchanged, clouds are masked, and only crop changes break it: in a simulated scene of
#: parcels with 20 % of them inverted between dates, plus gain 0.8, haze and noise, r stays ~0.55; with 40 %
#: inverted, ~0.2. Visible and near-infrared bands of one date are anti-correlated over vegetation (dark in
#: blue and red, bright in NIR: the reason NDVI works), -0.9 in that scene and clearly negative over real
#: farmland. 0.1 refuses those and keeps even strongly changed revisits. Over a dense town centre bright
#: roofs can make blue and NIR correlate positively, so this is one of three signs (names, dates, pixels).
REVISIT_MIN_CORRELATION = 0.1
#: Fewest common clear pixels for a correlation to be trusted (a 32 x 32 patch).
MIN_CORRELATION_PIXELS = 1024
#: A frame is "mostly cloud" when more than this share of it is nodata.
MOSTLY_CLOUD = 0.5
#: Largest wavelength difference (nm) that still counts as the same band when no band name is known.
WAVELENGTH_TOLERANCE_NM = 20.0


def _describe(band: Optional[str], wavelength: Optional[float] = None) -> str:
    if band is None:
        return f"an unnamed band at {wavelength:g} nm" if wavelength else "an unnamed band"
    wl = wavelength if wavelength is not None else wavelength_of(band)
    name = BAND_NAMES.get(band, "")
    inner = ", ".join(x for x in (name, f"{wl:g} nm" if wl else "") if x)
    return f"{band} ({inner})" if inner else band


def _same_band(info: FrameInfo, expected: str) -> Optional[bool]:
    """Whether a frame is the expected band: by name when known, else by wavelength; None when unknown."""
    if info.band is not None:
        return info.band == expected
    if info.wavelength_nm is not None:
        ref = wavelength_of(expected)
        return ref is not None and abs(info.wavelength_nm - ref) <= WAVELENGTH_TOLERANCE_NM
    return None


# --------------------------------------------------------------------------- the checks


def check_band_match(infos: Sequence[FrameInfo], card_bands: Sequence[str], multi_image: bool,
                     labels: Sequence[str] = ()) -> Check:
    """Does the input band match the band(s) the model was trained on (``B8`` == ``B08``)?

    ``infos``: the frames the job will feed (one band of each revisit, or the
    bands of one input for a multi-band model). A mismatch is a warning for a
    single-image model and a refusal for a multi-image one (RAMS learned its
    fusion on one band's revisits).
    """
    expected = [band_key(b) or str(b) for b in card_bands]
    labels = list(labels) or [f"frame {i + 1}" for i in range(len(infos))]
    if not expected:
        return Check("ok", "band_match", "The model card names no band; the input band was not checked.")
    level = "refusal" if multi_image else "warning"
    if len(expected) > 1:
        if len(infos) != len(expected):
            return Check(level, "band_mismatch",
                         f"The model takes {len(expected)} bands ({', '.join(expected)}) but the input gives "
                         f"{len(infos)}; give a raster with exactly these bands.")
        pairs = list(zip(infos, expected, labels))
    else:
        pairs = [(info, expected[0], label) for info, label in zip(infos, labels)]
    unknown = []
    for info, want, label in pairs:
        same = _same_band(info, want)
        if same is None:
            unknown.append((label, want))
        elif not same:
            tail = ("its output will not be reliable." if not multi_image else
                    "the run is refused unless forced.")
            return Check(level, "band_mismatch",
                         f"{label} is {_describe(info.band, info.wavelength_nm)} but the model was trained on "
                         f"{_describe(want)}; {tail}")
    if unknown:
        names = ", ".join(sorted({w for _, w in unknown}))
        return Check("ok", "band_unknown", f"The input band is not named; it is taken to be {names}, as the model "
                                           "expects.")
    return Check("ok", "band_match", f"The input band matches the model ({', '.join(expected)}).")


def check_pixel_size(pixel_size_m: Optional[float], label: str, is_sr_output: bool = False) -> Check:
    """Refuse an input whose ground pixel is not ~10 m (see :data:`PIXEL_TOLERANCE`); spot SR outputs."""
    if is_sr_output:
        return Check("refusal", "sr_output",
                     f"{label}: this looks like a super-resolved output (3.33 m), its metadata says this tool "
                     "wrote it; super-resolve the 10 m Sentinel-2 bands instead.")
    if pixel_size_m is None or not math.isfinite(pixel_size_m) or pixel_size_m <= 0:
        return Check("warning", "pixel_unknown",
                     f"The pixel size of {label} cannot be measured (no coordinate reference system); it is taken "
                     "to be 10 m.")
    size = float(pixel_size_m)
    if abs(size / S2_PIXEL_M - 1.0) <= PIXEL_TOLERANCE:
        return Check("ok", "pixel_size", f"{label} has {size:.1f} m pixels, as Sentinel-2's 10 m bands.")
    if abs(size / SR_PIXEL_M - 1.0) <= PIXEL_TOLERANCE:
        return Check("refusal", "sr_output",
                     f"{label} has {size:.2f} m pixels: this looks like a super-resolved output (3.33 m); "
                     "super-resolve the 10 m Sentinel-2 bands instead.")
    if abs(size / 20.0 - 1.0) <= PIXEL_TOLERANCE or abs(size / 60.0 - 1.0) <= PIXEL_TOLERANCE:
        return Check("refusal", "pixel_size",
                     f"{label} has {size:.0f} m pixels: a 20 m or 60 m band; the models take Sentinel-2's 10 m "
                     "bands (B02, B03, B04, B08).")
    return Check("refusal", "pixel_size",
                 f"{label} has {size:.2f} m pixels, not Sentinel-2's 10 m; the models were trained on 10 m pixels "
                 "and would give an output at the wrong scale.")


def frame_correlation(a: np.ndarray, valid_a: np.ndarray, b: np.ndarray, valid_b: np.ndarray) -> Optional[float]:
    """Pearson correlation of two frames on their common clear pixels; None when too few or textureless."""
    common = valid_a & valid_b & np.isfinite(a) & np.isfinite(b)
    if int(common.sum()) < MIN_CORRELATION_PIXELS:
        return None
    x = np.asarray(a, dtype=np.float64)[common]
    y = np.asarray(b, dtype=np.float64)[common]
    x -= x.mean()
    y -= y.mean()
    sx, sy = math.sqrt(float((x * x).mean())), math.sqrt(float((y * y).mean()))
    if sx == 0.0 or sy == 0.0:
        return None
    return float((x * y).mean() / (sx * sy))


def check_revisits(infos: Sequence[FrameInfo], labels: Sequence[str], sources: Sequence[str] = (),
                   samples: Optional[Sequence[Tuple[np.ndarray, np.ndarray]]] = None) -> Check:
    """Refuse "revisits" that are different bands of one date.

    Three signs, any of which refuses: different band names; frames of one
    file with one date (bands of one acquisition); a frame whose pixels do not
    correlate with the first frame's (:data:`REVISIT_MIN_CORRELATION`) on their
    common clear pixels. ``sources``: the file of each frame; ``samples``: per
    frame ``(values, valid)`` on one grid (a decimated read is enough).
    """
    n = len(infos)
    if n < 2:
        return Check("ok", "revisits", "One frame: nothing to compare.")
    labels = list(labels)
    sources = list(sources) or labels
    names = [i.band for i in infos]
    known = sorted({b for b in names if b is not None})
    if len(known) > 1:
        return Check("refusal", "bands_as_revisits",
                     f"The revisits are different bands ({', '.join(known)}), not dates of one band; give several "
                     "dates of the same band (a revisit stack, e.g. from 'stack').")
    by_file: dict = {}
    for info, src, label in zip(infos, sources, labels):
        if info.date is not None:
            by_file.setdefault((src, info.date), []).append(label)
    for (src, day), members in by_file.items():
        if len(members) > 1:
            return Check("refusal", "bands_as_revisits",
                         f"{len(members)} frames of {Path(src).name} all date from {day}: they are bands of one "
                         "acquisition, not revisits; give several dates of one band.")
    if samples is not None and len(samples) == n:
        a, va = samples[0]
        for (b, vb), label in zip(samples[1:], labels[1:]):
            r = frame_correlation(a, va, b, vb)
            if r is not None and r < REVISIT_MIN_CORRELATION:
                return Check("refusal", "bands_as_revisits",
                             f"{label} does not look like a revisit of {labels[0]}: their clear pixels correlate at "
                             f"r = {r:.2f}, as different bands do (blue or red against near infrared over "
                             "vegetation) or a frame hidden by unmasked cloud; give dates of one band.")
    dated = [i.date for i in infos if i.date is not None]
    if len(dated) != len(set(dated)):
        return Check("warning", "duplicate_dates",
                     "Some revisits share a date; a second copy of one date adds no information.")
    return Check("ok", "revisits", f"The {n} frames look like revisits of one band.")


def check_segmentation_input(pixel_size_m: Optional[float], label: str, is_sr_output: bool = False,
                             trained_pixel_m: float = SR_PIXEL_M) -> Check:
    """Warn when segmenting a ~10 m raster with networks trained on 3.33 m images."""
    if is_sr_output:
        return Check("ok", "segment_input", f"{label} is a super-resolved output, as the networks expect.")
    if pixel_size_m is None or not math.isfinite(pixel_size_m):
        return Check("warning", "pixel_unknown", f"The pixel size of {label} cannot be measured; the networks "
                                                 f"expect {trained_pixel_m:.2f} m pixels.")
    if abs(pixel_size_m / S2_PIXEL_M - 1.0) <= PIXEL_TOLERANCE:
        return Check("warning", "segment_10m",
                     f"{label} has {pixel_size_m:.1f} m pixels, but the building and road networks were trained "
                     f"on {trained_pixel_m:.2f} m (super-resolved) images: super-resolve it first, or expect few "
                     "and blurred objects.")
    if abs(pixel_size_m / trained_pixel_m - 1.0) <= PIXEL_TOLERANCE:
        return Check("ok", "segment_input", f"{label} has {pixel_size_m:.2f} m pixels, as the networks expect.")
    return Check("warning", "segment_pixel",
                 f"{label} has {pixel_size_m:.2f} m pixels; the networks were trained on {trained_pixel_m:.2f} m "
                 "images, so objects will not have the sizes they learned.")


def check_clouds(valid_fractions: Sequence[float], labels: Sequence[str], unit: str = "frame") -> Check:
    """Say how many of the chosen frames (or revisits: ``unit``) are mostly cloud (more than half nodata)."""
    n = len(valid_fractions)
    cloudy = [(label, v) for label, v in zip(labels, valid_fractions) if v < 1.0 - MOSTLY_CLOUD]
    if not cloudy:
        return Check("ok", "clouds", f"None of the {n} {unit}(s) is mostly cloud or nodata.")
    listed = ", ".join(f"{label} ({100 * v:.0f} % clear)" for label, v in cloudy)
    return Check("warning", "clouds",
                 f"{len(cloudy)} of the {n} {unit}(s) are mostly cloud or nodata (more than half their pixels): "
                 f"{listed}; leave them out, or build a stack of the clearest dates.")


# --------------------------------------------------------------------------- on files


def check_inputs(inputs: Sequence[PathLike], band=1, card_bands: Sequence[str] = ("B8",),
                 multi_image: bool = False, task: str = "super-resolve", cards: Sequence[object] = ()) -> List[Check]:
    """Run the checks that apply to a job on these rasters; reads only metadata and decimated samples.

    ``band``: as the job selects it (1-based number, name, ``all``).
    ``task``: ``super-resolve`` (pixel size, band, revisits, clouds) or
    ``segment`` (pixel size for segmentation, clouds).
    ``cards``: the networks' model cards, when chosen: the processing level and
    input statistics they were trained on are compared with the input's
    (:mod:`.input_signs`; without cards the level is only said).
    """

    paths = [Path(p) for p in ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)]
    infos: List[FrameInfo] = []
    labels: List[str] = []
    sources: List[str] = []
    checks: List[Check] = []
    with rasterio.Env():
        for p in paths:
            with open_raster(p) as ds:
                for b in resolve_bands(ds, p, band):
                    infos.append(frame_info(p, b, ds))
                    labels.append(f"{p.name} band {b}" if ds.count > 1 else p.name)
                    sources.append(str(p))
        with FrameSet(paths, band) as fs:
            full = _full_window(fs)
            samples = [f.sample(full) for f in fs.frames]
            signs = sign_checks(paths, fs.frames, [i.band for i in infos], samples, cards)
    first = infos[0]
    if task == "segment":
        checks.append(check_segmentation_input(first.pixel_size_m, paths[0].name, first.is_sr_output))
    else:
        checks.extend(check_every_input(paths, sources, infos))
        if len(card_bands) > 1:
            date_infos, date_labels = _one_date(infos, labels, card_bands)
            checks.append(check_band_match(date_infos, card_bands, multi_image, date_labels))
        else:
            checks.append(check_band_match(infos, card_bands, multi_image, labels))
        if len(infos) > 1 and len(card_bands) <= 1:
            checks.append(check_revisits(infos, labels, sources, samples))
    fractions = [float(v.mean()) if v.size else 0.0 for _, v in samples]
    unit = "frame"
    if len(card_bands) > 1 and task != "segment":  # a multi-band model: the clouds of each revisit, not of each band
        fractions, labels = _per_revisit(fractions, infos, labels, sources)
        unit = "revisit"
    checks.append(check_clouds(fractions, labels, unit))
    return checks + signs


def _per_revisit(fractions: Sequence[float], infos: Sequence[FrameInfo], labels: Sequence[str],
                 sources: Sequence[str]) -> Tuple[List[float], List[str]]:
    """One clear share per revisit (file and date): a 4-band model reads the four bands of a date as one frame.

    Why: the check line said "36 frame(s)" for nine revisits of four bands (issue 21).
    The least clear band of a date stands for the date.
    """
    groups: dict = {}
    names: dict = {}
    for frac, info, src in zip(fractions, infos, sources):
        key = (src, info.date)
        groups.setdefault(key, []).append(frac)
        names.setdefault(key, Path(src).name + (f" ({info.date})" if info.date else ""))
    if len(groups) == len(fractions):
        return list(fractions), list(labels)
    return [min(v) for v in groups.values()], list(names.values())


def check_every_input(paths: Sequence[Path], sources: Sequence[str], infos: Sequence[FrameInfo]) -> List[Check]:
    """The pixel size of *every* input file (one check per file that is not a 10 m raster, else one ``ok``).

    Why every one: only the first used to be checked, so a super-resolved
    output ticked among the revisits ("t00 SR x3") passed and was fused as a
    revisit (issue 21). An SR output among several inputs is refused with a
    sentence that says to untick it.
    """
    first_info = {}
    for src, info in zip(sources, infos):
        first_info.setdefault(str(src), info)
    found: List[Check] = []
    for p in paths:
        info = first_info.get(str(p))
        if info is None:
            continue
        check = check_pixel_size(info.pixel_size_m, p.name, info.is_sr_output)
        if check.code == "sr_output" and len(paths) > 1:
            check = Check("refusal", "sr_output",
                          f"{p.name} is a super-resolved output (3.33 m pixels or this tool's scale metadata), not a "
                          "Sentinel-2 revisit: untick it; only 10 m revisits can be fused.")
        found.append(check)
    bad = [c for c in found if c.level != "ok"]
    return bad or found[:1]


def _one_date(infos: Sequence[FrameInfo], labels: Sequence[str],
              card_bands: Sequence[str]) -> Tuple[List[FrameInfo], List[str]]:
    """The frames a multi-band model takes for one date, in its card's order (and their labels).

    By name, the first frame of each band: a revisit stack holds every date of
    B02, then every date of B03 (clearest first), so its first four frames are
    four dates of B02, not one date's four bands. Unnamed frames: the first ones.
    """
    picked = []
    for want in (band_key(b) or str(b) for b in card_bands):
        i = next((k for k, info in enumerate(infos) if info.band == want), None)
        if i is None:
            return list(infos[:len(card_bands)]), list(labels[:len(card_bands)])
        picked.append(i)
    return [infos[i] for i in picked], [labels[i] for i in picked]


def _full_window(fs):
    return Window(0, 0, fs.grid.width, fs.grid.height)


def enforce(checks: Sequence[Check], force: bool = False) -> List[Check]:
    """Raise :class:`InputError` with the refusals' sentences unless ``force``; returns the checks."""
    refusals = [c for c in checks if c.level == "refusal"]
    if refusals and not force:
        raise InputError(" ".join(c.message for c in refusals))
    return list(checks)
