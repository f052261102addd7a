"""Trust map of a super-resolved raster: where is its detail supported by Sentinel-2, and where invented?

An analyst has no HR image, so every signal here is computed from the SR
output, its LR inputs and (when at hand) its checkpoint. Two files are written
beside the output, both on the **SR grid** (same transform and size as the SR
output, 3.33 m for x3):

``<sr>_trust.tif``, float32, NaN = no data, one band per signal:

1. **disagreement** (reflectance): the output degraded back to S-2 and compared
   with every revisit, the median of ``|LR_t - offset_t - D_t(SR)|`` over the
   revisits (:mod:`core.inference.trust_consistency`). Computed per 10 m pixel
   and written over its 3x3 block. Sees invented or missing *objects*; blind to
   detail finer than 10 m that averages out.
2. **revisit spread** (reflectance): the spread of the same residuals across
   revisits: S-2 itself disagrees (clouds, change). NaN with one revisit.
3. **instability** (reflectance): the per-pixel standard deviation of the
   output under test-time augmentation (flips, a quarter turn, 1/3-pixel
   shifts, dropped revisits; :mod:`core.inference.tta`). Needs the checkpoint:
   from the ``checkpoint`` argument, else the SR output's ``SR_CHECKPOINT`` tag;
   NaN (with a message) when neither is a file or ``options.tta`` is off.
4. **grid score** (ratio, about 1 = none): the 3-px grid score (DESIGN section
   4) in 120 m windows (:mod:`core.inference.trust_grid`).
5. **grid amplitude** (reflectance): how strong that 3-px pattern is.

``<sr>_trust_class.tif``, uint8 with an embedded colour table: **0 supported,
1 uncertain, 2 likely invented, 255 no data**, by the rule of
:mod:`core.inference.trust_classes` (thresholds set on synthetic scenes with a
known truth; see there and ``docs/trust_map.md``).

The SR output must sit on the LR reference grid (pixel = LR pixel / integer
scale, origin on an LR pixel corner), as ``super_resolve`` writes it; its LR
inputs, band and checkpoint are read from its tags (``SR_INPUTS``, ``SR_BAND``,
``SR_CHECKPOINT``) when not given. A multi-band output is judged on one band
(``options.band``; by default B08, else its first band).

Streaming: rows are produced in order, by the TTA pass's finished strips when
it runs (:func:`core.inference.runner.run_tiles`), else by strips of
:data:`_STRIP` LR rows; every signal is computed for those rows only, so memory
grows with the raster's width. Both files are written to hidden temporary files
and renamed only when complete; cancel or an error leaves neither.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from .. import __version__
from ..io.rasters import BandSpec, Frame, FrameSet, gdal_env
from ..io.writer import GeoTiffSink, check_output_path, geotiff_profile
from ..jobs import CancelToken, InputError, PathLike, Progress, check_cancel, progress_fn, trust_path_for
from ..options import TrustOptions
from .bands import band_of_frame, canonical_band, group_frames
from .frames import select_frames
from .loading import choose_device, load_model
from .planning import plan_tiles
from .trust_classes import CLASS_COLOURS, CLASS_KEYS, CLASS_NAMES, NODATA, ClassRule, classify
from .trust_consistency import Consistency, sr_lr_window
from .trust_grid import GridEnergy
from .tta import instability_from_moments, instability_tiles

__all__ = [
    "TrustSummary",
    "trust_map",
    "read_summary",
    "class_path_for",
    "sr_lr_window",
    "DEFAULT_THRESHOLD",
    "BAND_DESCRIPTIONS",
    "CLASS_DESCRIPTION",
]

log = logging.getLogger(__name__)

#: Disagreement (reflectance) above which a pixel counts as flagged: about ten
#: times the noise of S-2's 10 m bands (std ~0.002 at reflectance 0.3).
DEFAULT_THRESHOLD = 0.02
BAND_DESCRIPTIONS = (
    "disagreement: median over revisits of |LR - offset - degraded SR|, reflectance (per 10 m pixel)",
    "revisit spread: std across revisits of LR - offset - degraded SR, reflectance (per 10 m pixel)",
    "disagreement beyond bicubic: band 1 minus the same for the bicubic upsampling of the revisits, "
    "reflectance (per 10 m pixel; > 0 = fits the revisits worse than plain upsampling)",
    "instability: std of the output under flips, a quarter turn, 1/3-pixel shifts and dropped revisits, "
    "reflectance",
    "grid score: power of a 3-px checkerboard over its surroundings in a 120 m window (about 1 = none)",
    "grid amplitude: strength (RMS) of the 3-px checkerboard in a 120 m window, reflectance",
)
CLASS_DESCRIPTION = "trust class: 0 supported, 1 uncertain, 2 likely invented, 255 no data"
#: Histogram for the streamed 95th percentiles: bins of 1e-4 reflectance up to 1.0 (plus overflow).
_HIST_STEP = 1e-4
_HIST_BINS = 10000
_STRIP = 128  # LR rows per strip when no TTA pass drives the rows


def class_path_for(trust_path: PathLike) -> Path:
    """``sr_trust.tif`` -> ``sr_trust_class.tif``: where the class raster of a trust map goes."""
    p = Path(trust_path)
    return p.with_name(f"{p.stem}_class{p.suffix or '.tif'}")


@dataclass
class TrustSummary:
    """What the comparison table and the CLI show; also stored as tags in the trust GeoTIFF.

    Reflectance units unless said otherwise. Shares are of the valid SR pixels.
    ``flagged_share``: disagreement above ``threshold``; ``supported_share``,
    ``uncertain_share``, ``invented_share``: the three trust classes (they sum
    to 1). ``mean_spread`` is None with a single revisit, ``mean_instability``
    and ``p95_instability`` when no checkpoint was used (``augmentations`` empty).
    """

    path: Path
    sr_path: Path
    mean_disagreement: float
    p95_disagreement: float
    flagged_share: float
    threshold: float
    mean_spread: Optional[float]
    valid_pixels: int
    scale: int
    frames: List[str] = field(default_factory=list)
    shifts_hr: List[Tuple[float, float]] = field(default_factory=list)
    offsets: List[float] = field(default_factory=list)
    class_path: Optional[Path] = None
    supported_share: float = 0.0
    uncertain_share: float = 0.0
    invented_share: float = 0.0
    mean_instability: Optional[float] = None
    p95_instability: Optional[float] = None
    median_grid_score: Optional[float] = None
    p95_grid_amplitude: Optional[float] = None
    band: str = ""
    checkpoint: Optional[str] = None
    augmentations: List[str] = field(default_factory=list)
    rule: Dict[str, float] = field(default_factory=dict)
    messages: List[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def class_shares(self) -> Dict[str, float]:
        """``{"supported": .., "uncertain": .., "invented": ..}``."""
        return {k: getattr(self, f"{k}_share") for k in CLASS_KEYS.values()}

    @property
    def written(self) -> List[Path]:
        """The files the trust job wrote: the map and, when made, its classes."""
        return [Path(self.path), *([Path(self.class_path)] if self.class_path is not None else [])]

    def tags(self) -> Dict[str, str]:
        d = asdict(self)
        d.pop("messages")
        for k in ("path", "sr_path", "class_path"):
            d[k] = None if d[k] is None else str(d[k])
        return {"TRUST_SUMMARY": json.dumps(d)}


def read_summary(trust_path: PathLike) -> Optional[TrustSummary]:
    """The summary stored in a trust GeoTIFF's tags (None when the file holds none).

    Keys this version does not know are ignored and missing ones take their
    defaults, so a map written by an older version still reads.
    """
    with rasterio.open(trust_path) as ds:
        raw = ds.tags().get("TRUST_SUMMARY")
    if not raw:
        return None
    d = json.loads(raw)
    known = {f.name for f in fields(TrustSummary)}
    d = {k: v for k, v in d.items() if k in known}
    for k in ("path", "sr_path", "class_path"):
        if d.get(k) is not None:
            d[k] = Path(d[k])
    d["shifts_hr"] = [tuple(s) for s in d.get("shifts_hr", [])]
    return TrustSummary(**d)


# --------------------------------------------------------------------------- the class raster


class _ClassSink(GeoTiffSink):
    """The uint8 class raster: its colour table embedded (QGIS draws it styled), overviews by majority."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        try:
            self._ds.write_colormap(1, {v: CLASS_COLOURS.get(v, (0, 0, 0, 0)) for v in range(256)})
        except BaseException:
            self.abort()
            raise

    def build_overviews(self, factors: List[int]) -> None:
        self._ds.build_overviews(factors, Resampling.mode)
        self._ds.update_tags(ns="rio_overview", resampling="mode")


# --------------------------------------------------------------------------- streamed statistics


def _hist(values: np.ndarray) -> np.ndarray:
    idx = np.minimum((values / _HIST_STEP).astype(np.int64), _HIST_BINS)
    return np.bincount(idx, minlength=_HIST_BINS + 1)


def _p95(hist: np.ndarray, n: int) -> float:
    if not n:
        return float("nan")
    return (int(np.searchsorted(np.cumsum(hist), 0.95 * n)) + 1) * _HIST_STEP


@dataclass
class _Stats:
    """Streaming sums for the summary (exact means; 95th percentiles from 1e-4 histograms)."""

    threshold: float
    n: int = 0
    total: float = 0.0
    flagged: int = 0
    spread_n: int = 0
    spread_total: float = 0.0
    inst_n: int = 0
    inst_total: float = 0.0
    classes: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.int64))
    hist: np.ndarray = field(default_factory=lambda: np.zeros(_HIST_BINS + 1, dtype=np.int64))
    inst_hist: np.ndarray = field(default_factory=lambda: np.zeros(_HIST_BINS + 1, dtype=np.int64))
    amp_hist: np.ndarray = field(default_factory=lambda: np.zeros(_HIST_BINS + 1, dtype=np.int64))
    amp_n: int = 0
    score_hist: np.ndarray = field(default_factory=lambda: np.zeros(_HIST_BINS + 1, dtype=np.int64))

    def add(self, dis: np.ndarray, spread: np.ndarray, inst: Optional[np.ndarray], score: np.ndarray,
            amp: np.ndarray, cls: np.ndarray) -> None:
        d = dis[np.isfinite(dis)].astype(np.float64)
        self.n += d.size
        self.total += float(d.sum())
        self.flagged += int((d > self.threshold).sum())
        self.hist += _hist(d)
        s = spread[np.isfinite(spread)]
        self.spread_n += s.size
        self.spread_total += float(s.sum(dtype=np.float64))
        if inst is not None:
            i = inst[np.isfinite(inst)].astype(np.float64)
            self.inst_n += i.size
            self.inst_total += float(i.sum())
            self.inst_hist += _hist(i)
        a = amp[np.isfinite(amp)].astype(np.float64)
        self.amp_n += a.size
        self.amp_hist += _hist(a)
        g = score[np.isfinite(score)].astype(np.float64)
        self.score_hist += _hist(np.minimum(g / 1000.0, 1.0))  # score histogram in steps of 0.1
        self.classes += np.bincount(cls[cls != NODATA].ravel(), minlength=3)[:3]

    def median_score(self) -> Optional[float]:
        total = int(self.score_hist.sum())
        if not total:
            return None
        return (int(np.searchsorted(np.cumsum(self.score_hist), 0.5 * total)) + 0.5) * _HIST_STEP * 1000.0


# --------------------------------------------------------------------------- inputs


def _recorded(sr_path: Path) -> Dict[str, str]:
    with rasterio.open(sr_path) as ds:
        return ds.tags()


def _inputs_from_tags(sr_path: Path, tags: Dict[str, str]) -> List[Path]:
    """The LR inputs recorded by ``super_resolve`` in the SR output's tags."""
    raw = tags.get("SR_INPUTS")
    if not raw:
        raise InputError(f"{sr_path.name}: give the LR revisits it was made from (it does not record its inputs)")
    paths = [Path(p) for p in json.loads(raw)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise InputError(f"{sr_path.name}: its recorded inputs are gone ({', '.join(missing)}); give them explicitly")
    return paths


def _band_value(band: Optional[str]) -> BandSpec:
    if band is None:
        return 1
    return int(band) if str(band).strip().isdigit() else band


def _judged_sr_frame(sr_frames: Sequence[Frame], band: BandSpec, sr_name: str) -> Tuple[Frame, Optional[str]]:
    """The SR band the map judges and its S-2 band name (None when unnamed).

    One band: that one. Several (a 4-band output): ``band`` as the output's band
    number or an S-2 band name; by default B08 (the band the segmentation
    networks read), else the first band.
    """
    if len(sr_frames) == 1:
        return sr_frames[0], band_of_frame(sr_frames[0])
    names = [band_of_frame(f) for f in sr_frames]
    if band is None:
        i = names.index("B08") if "B08" in names else 0
    elif isinstance(band, int) or str(band).strip().isdigit():
        i = int(band) - 1
        if not 0 <= i < len(sr_frames):
            raise InputError(f"{sr_name}: has {len(sr_frames)} bands, no band {band}")
    else:
        want = canonical_band(str(band))
        if want not in names:
            raise InputError(f"{sr_name}: no band named {band!r} (it holds {', '.join(n or '?' for n in names)})")
        i = names.index(want)
    return sr_frames[i], names[i]


def _lr_frames(frames: Sequence[Frame], name: Optional[str], multi: bool) -> List[Frame]:
    """The frames of the judged band among the LR frames (all of them for a one-band output)."""
    if not multi:
        return list(frames)
    chosen = [f for f in frames if band_of_frame(f) == name]
    if not chosen:
        raise InputError(f"no LR input band is named {name}: the trust map compares the output's {name} with "
                         "the same band of the revisits")
    return chosen


@dataclass
class _Instability:
    """What the TTA pass needs: the network, its frames as the SR run used them, and its tiling."""

    loaded: Any
    dates: List[List[Frame]]
    fallback: List[float]
    channel: int
    plan: Any


def _prepare_tta(options: TrustOptions, checkpoint: Any, tags: Dict[str, str], sr_name: str,
                 frames: Sequence[Frame], band_name: Optional[str], multi: bool,
                 messages: List[str]) -> Optional[_Instability]:
    """Load the checkpoint for the instability band, or None with a message saying why not."""
    if not options.tta:
        messages.append("instability (band 4) not computed: test-time augmentation is off")
        return None
    source = checkpoint if checkpoint is not None else tags.get("SR_CHECKPOINT")
    if source is None or (isinstance(source, (str, os.PathLike)) and not Path(source).is_file()):
        where = f"its recorded checkpoint {source} is not a file" if source else "it records no checkpoint"
        messages.append(f"instability (band 4) not computed for {sr_name}: {where}; give the checkpoint "
                        "(--checkpoint) to measure it")
        return None
    dev = choose_device(options.device, messages)
    loaded = load_model(source, dev, task="sr")
    all_bands = loaded.channels > 1
    groups = group_frames(frames, loaded, all_bands)
    if all_bands:
        if band_name not in groups.band_names:
            raise InputError(f"{loaded.source}: returns {', '.join(groups.band_names)}, not the judged band "
                             f"{band_name}")
        channel = groups.band_names.index(band_name)
    elif multi:
        raise InputError(f"{loaded.source}: super-resolves one band, but {sr_name} holds several")
    else:
        channel = 0
    fractions = groups.valid_fractions()
    chosen, _note = select_frames(fractions, loaded.frames)
    tile = overlap = None
    recorded = tags.get("SR_TILE", "")
    if "/" in recorded and all(p.strip().isdigit() for p in recorded.split("/")):
        tile, overlap = (int(p) for p in recorded.split("/"))
    plan = plan_tiles(loaded.card, dev, tile, overlap, None)
    return _Instability(loaded, [groups.dates[i] for i in chosen], groups.fallback(fractions), channel, plan)


# --------------------------------------------------------------------------- the map


def _remove(path: Path) -> None:
    for p in (path, Path(f"{path}.aux.xml")):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def _blocks(a: np.ndarray, s: int) -> np.ndarray:
    """Each LR value over its ``s x s`` block of SR pixels."""
    return np.repeat(np.repeat(a, s, axis=0), s, axis=1)


def trust_map(
    sr_path: PathLike,
    inputs: Optional[Sequence[PathLike]] = None,
    out_path: Optional[PathLike] = None,
    options: Optional[TrustOptions] = None,
    progress: Optional[Progress] = None,
    cancel: Optional[CancelToken] = None,
    checkpoint: Any = None,
    rule: Optional[ClassRule] = None,
) -> TrustSummary:
    """Write the trust map of ``sr_path`` (and its class raster) and return its summary.

    ``inputs``: the LR revisits (warped onto the first one's grid as for
    super-resolution); None reads them from the SR output's tags. ``out_path``
    defaults to ``<sr>_trust.tif``; the classes go to ``<trust>_class.tif``.
    ``checkpoint``: the SR network (path or ``(model, card)`` pair) for the
    instability band; default the one the output records. ``rule``: class
    thresholds (default :class:`ClassRule` with ``options.threshold`` as the
    disagreement threshold). Raises :class:`InputError` (SR not on the LR grid,
    no valid pixels), ``OutputError`` or ``Cancelled`` (nothing is left behind).
    """
    options = options or TrustOptions()
    rule = rule or ClassRule().with_disagreement(options.threshold)
    t_start = time.perf_counter()
    say = progress_fn(progress)
    messages: List[str] = []
    sr = Path(sr_path)
    if not sr.is_file():
        raise InputError(f"{sr}: SR raster not found")
    tags_in = _recorded(sr)
    if inputs is None:
        paths = _inputs_from_tags(sr, tags_in)
        messages.append(f"LR inputs read from {sr.name}'s metadata: {', '.join(p.name for p in paths)}")
    else:
        paths = [Path(p) for p in ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)]
    ckpt_paths = [Path(checkpoint)] if isinstance(checkpoint, (str, os.PathLike)) else []
    out = check_output_path(out_path if out_path is not None else trust_path_for(sr), [sr, *paths, *ckpt_paths])
    cls_out = check_output_path(class_path_for(out), [sr, *paths, *ckpt_paths])
    say(0.0, "reading inputs")

    with gdal_env(), FrameSet([sr], "all", []) as sr_set, ExitStack() as guard:
        assert sr_set.grid is not None
        multi = len(sr_set.frames) > 1
        sr_frame, band_name = _judged_sr_frame(sr_set.frames, options.band, sr.name)
        if multi:
            lr_band: BandSpec = "all"
        else:
            lr_band = options.band if options.band is not None else _band_value(tags_in.get("SR_BAND"))
        fs = guard.enter_context(FrameSet(paths, lr_band, messages))
        assert fs.grid is not None
        scale, window = sr_lr_window(sr_set.grid, fs.grid, sr.name, f"the LR inputs (grid of {paths[0].name})",
                                     tags_in.get("SR_SCALE"))
        sr_set.inspect(Window(0, 0, sr_set.grid.width, sr_set.grid.height), [sr_frame])
        fs.inspect(window)
        judged = _lr_frames(fs.frames, band_name, multi)
        frames = [f for f in judged if f.valid_fraction > 0]
        for f in judged:
            if f.valid_fraction <= 0:
                messages.append(f"{f.label}: no valid pixel under the SR output; left out")
        if not frames:
            raise InputError("no LR input has a valid pixel under the SR output")
        labels = [f.label for f in frames]

        say(0.02, "estimating each revisit's shift and brightness offset")
        cons = Consistency(sr_frame, frames, window, scale, options.max_shift, messages)
        messages.append(cons.note())
        tta = _prepare_tta(options, checkpoint, tags_in, sr.name, fs.frames, band_name, multi, messages)
        width, height = sr_set.grid.width, sr_set.grid.height
        grid = GridEnergy(lambda a, b: sr_frame.read_padded(a, b, 0, width), height, width)

        tags = {
            "TRUST_SR": str(sr),
            "TRUST_INPUTS": json.dumps([str(p) for p in paths]),
            "TRUST_FRAMES": json.dumps(labels),
            "TRUST_BAND": band_name or str(sr_frame.bidx),
            "TRUST_SCALE": str(scale),
            "TRUST_DEGRADATION": repr(cons.op),
            "TRUST_CHECKPOINT": tta.loaded.source if tta else "",
            "TRUST_RULE": json.dumps(rule.as_dict()),
            "TRUST_CLASSES": json.dumps({str(k): v for k, v in CLASS_NAMES.items()}),
            "TRUST_CLASS_PATH": str(cls_out),
            "TRUST_UNITS": "reflectance (bands 1, 2, 3, 4, 6); ratio (band 5)",
            "SOFTWARE": f"s2_taskdriven_sr {__version__}",
        }
        sink = GeoTiffSink(out, geotiff_profile(sr_set.grid, "float32", len(BAND_DESCRIPTIONS), float("nan")), tags,
                           list(BAND_DESCRIPTIONS))
        guard.callback(sink.abort)
        cls_sink = _ClassSink(cls_out, geotiff_profile(sr_set.grid, "uint8", 1, NODATA), tags, [CLASS_DESCRIPTION])
        guard.callback(cls_sink.abort)
        stats = _Stats(threshold=float(options.threshold))

        def assemble(r0: int, moments: Optional[np.ndarray]) -> None:
            """Compute and write SR rows ``[r0, r0 + n)`` (``n`` a multiple of the scale)."""
            check_cancel(cancel)
            n = moments.shape[1] if moments is not None else min(_STRIP * scale, height - r0)
            lr0 = r0 // scale
            dis, spread, excess = (_blocks(a, scale) for a in cons.rows(lr0, lr0 + n // scale))
            score, amp = grid.rows(r0, r0 + n)
            inst = None if moments is None else instability_from_moments(moments[0], moments[1], moments[2])
            nodata = ~np.isfinite(dis)
            cls = classify(rule, dis, spread, excess, inst, score, amp)
            bands = np.stack([dis, spread, excess, inst if inst is not None else np.full_like(dis, np.nan), score,
                              amp])
            bands[:, nodata] = np.nan
            bands[[0, 1, 2, 3, 5]] = np.round(bands[[0, 1, 2, 3, 5]], 5)  # 1e-5 reflectance: deflate packs it better
            bands[4] = np.round(bands[4], 2)
            stats.add(dis, spread, None if inst is None else np.where(nodata, np.nan, inst),
                      np.where(nodata, np.nan, score), np.where(nodata, np.nan, amp), cls)
            sink.write_rows(r0, bands)
            cls_sink.write_rows(r0, cls[None])

        augs: List[str] = []
        if tta is not None:
            def report(done: int, total: int) -> None:
                say(0.05 + 0.88 * done / total, f"instability: tile {done}/{total}")

            say(0.05, f"instability: {tta.loaded.name} under test-time augmentation")
            augs = instability_tiles(tta.dates, window, tta.loaded, tta.plan, tta.fallback, tta.channel,
                                     lambda r0, block, _v: assemble(r0, block), cancel, report)
            messages.append(f"instability: {tta.loaded.name} run {len(augs)} times per tile ({', '.join(augs)})")
        else:
            for k, r0 in enumerate(range(0, height, _STRIP * scale)):
                assemble(r0, None)
                say(0.05 + 0.88 * (k + 1) / math.ceil(height / (_STRIP * scale)), "trust map: rows "
                    f"{min(height, r0 + _STRIP * scale)}/{height}")
        check_cancel(cancel)
        if not stats.n:
            raise InputError(f"{sr.name}: no LR pixel where both the SR output and a revisit are valid")
        shares = stats.classes / max(1, int(stats.classes.sum()))
        summary = TrustSummary(
            path=out, sr_path=sr, mean_disagreement=stats.total / stats.n, p95_disagreement=_p95(stats.hist, stats.n),
            flagged_share=stats.flagged / stats.n, threshold=float(options.threshold),
            mean_spread=stats.spread_total / stats.spread_n if stats.spread_n else None,
            valid_pixels=stats.n, scale=scale, frames=labels,
            shifts_hr=[(round(float(a), 4), round(float(b), 4)) for a, b in cons.shifts_hr],
            offsets=[round(float(o), 6) for o in cons.offsets], class_path=cls_out,
            supported_share=float(shares[0]), uncertain_share=float(shares[1]), invented_share=float(shares[2]),
            mean_instability=stats.inst_total / stats.inst_n if stats.inst_n else None,
            p95_instability=_p95(stats.inst_hist, stats.inst_n) if stats.inst_n else None,
            median_grid_score=stats.median_score(),
            p95_grid_amplitude=_p95(stats.amp_hist, stats.amp_n) if stats.amp_n else None,
            band=band_name or f"band {sr_frame.bidx}", checkpoint=tta.loaded.source if tta else None,
            augmentations=augs, rule=rule.as_dict(), messages=messages,
        )
        sink.update_tags(**summary.tags())
        cls_sink.update_tags(**summary.tags())
        say(0.94, "building overviews")
        sink.commit()
        guard.callback(_remove, out)  # the class raster failing must not leave half a trust map
        cls_sink.commit()
        guard.pop_all()
    summary.seconds = time.perf_counter() - t_start
    messages.append(
        f"wrote the trust map {out} and its classes {cls_out.name} ({width} x {height} px): "
        f"{100 * summary.supported_share:.1f} % supported, {100 * summary.uncertain_share:.1f} % uncertain, "
        f"{100 * summary.invented_share:.1f} % likely invented; mean disagreement {summary.mean_disagreement:.4f}, "
        f"{100 * summary.flagged_share:.1f} % of pixels above {options.threshold:g} (reflectance)")
    for m in messages:
        log.info(m)
    say(1.0, "done")
    return summary
