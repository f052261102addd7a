"""Does the trust map find invented detail? Scored on synthetic scenes where the HR truth is known.

Everything runs through the plugin's own jobs on real GeoTIFFs (``super_resolve``,
``trust_map``, ``segment``), so the classes scored are the ones an analyst gets.

**Truth.** A pixel of an SR output is *invented* when the output lies outside
the range between the bicubic upsampling of its own input and the HR truth by
more than :data:`TRUTH_TAU` = 0.02 reflectance, ten times S-2's noise (3x3 mean
of that distance; :func:`invented_truth`). It then shows something that is
neither on the ground nor in the 10 m data: an overshoot, a texture, a grid, an
object. Blur (the output close to bicubic) is *missed* detail, not invented;
an output anywhere between bicubic and the truth (partly sharpened) is not
invented either.

**Outputs judged** per scene (:func:`scene_outputs`): the HR image itself
(nothing invented), the HR image with stamped 3-px checkerboards of three
strengths, with painted roads and roofs that are not in the scene, with
"phantom" roads whose 10 m mean equals the land around them (a dark line with
bright rims: invisible to the comparison with the revisits by construction),
and the outputs of the SR checkpoints given (the shipped ones by default),
whose trust maps include the instability band.

**Objects.** Buildings and roads segmented on each network output (and on the
HR image, and the painted one) with the support attributes: an object is
*true* when at least half of its pixels lie on the scene's mask of its class
(dilated by one pixel); a false one is *invented* when the same networks do
not find it on the HR image, else a *segmentation error* (the networks' own
mistake on real land). ``supported_only`` removes the objects with
``supported == 0``: how many invented ones go, how many true ones are lost.

**Calibration** (:func:`calibrate`): pixels the truth calls supported (and
farther than :data:`NEAR_PLANTED` px from a planted invention) give, for
each signal, the value above which 0.5 % of them lie (the "likely invented"
threshold) and 2.5 % (the "uncertain" one): four signals, so the rule as a
whole stays within about 2 % and 10 % of false alarms; see
:mod:`core.inference.trust_classes`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import rasterio
import torch
import torch.nn.functional as F
from rasterio import features

from ..data.scene import to_dn, write_scene
from ..inference.segment import segment as run_segment
from ..inference.sr import super_resolve
from ..inference.trust import trust_map
from ..inference.trust_classes import INVENTED, NODATA, ClassRule
from ..jobs import Progress, progress_fn, sub_progress
from ..options import SegmentOptions, SuperResolveOptions, TrustOptions
from .scene_predict import bicubic_baseline

__all__ = ["TRUTH_TAU", "outside_distance", "invented_truth", "plant", "write_sr_like", "scene_outputs", "CaseResult", "ObjectCounts",
           "evaluate_scene", "calibrate", "SIGNALS"]

#: Distance (reflectance, 3x3 mean) outside the bicubic-to-HR range beyond which a pixel is invented.
TRUTH_TAU = 0.02
TRUTH_WINDOW = 3
#: Trust map bands (1-based) by signal name.
SIGNALS = {"disagreement": 1, "spread": 2, "beyond_bicubic": 3, "instability": 4, "grid_score": 5,
           "grid_amplitude": 6}
#: Checkerboard strengths (RMS reflectance) stamped in the three patches of ``hr_checkerboard``.
CHECKER_RMS = (0.01, 0.02, 0.04)
_SAMPLE_STEP = 3  # every 3rd pixel of every 3rd row goes into the calibration sample
#: Quantiles of the truly supported pixels' values that set the thresholds (see :func:`calibrate`).
INVENTED_QUANTILE = 0.995
UNCERTAIN_QUANTILE = 0.975
#: Share of an object's pixels the networks also flag on the HR image above which it is not "invented".
ON_HR = 0.3
#: Pixels within this many of a planted invention are neither "far from planted" nor calibration negatives:
#: the grid signals are windowed (36 px) and the disagreement spreads over the PSF.
NEAR_PLANTED = 24


def _box(a: np.ndarray, k: int) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None, None]
    return F.avg_pool2d(F.pad(t, (k // 2,) * 4, mode="replicate"), k, stride=1)[0, 0].numpy()


def outside_distance(sr: np.ndarray, hr: np.ndarray, bicubic: np.ndarray, window: int = TRUTH_WINDOW) -> np.ndarray:
    """How far ``sr`` lies outside the range between ``bicubic`` and ``hr``, averaged over ``window`` x ``window``.

    Zero where the output is anywhere between what the 10 m input shows and
    the truth (blurry, partly or fully sharpened): that is detail missed or
    recovered, not invented.
    """
    lo, hi = np.minimum(bicubic, hr), np.maximum(bicubic, hr)
    return _box(np.maximum(0.0, np.maximum(sr - hi, lo - sr)), window)


def invented_truth(sr: np.ndarray, hr: np.ndarray, bicubic: np.ndarray, tau: float = TRUTH_TAU,
                   window: int = TRUTH_WINDOW) -> np.ndarray:
    """Pixels where ``sr`` leaves the range between ``bicubic`` and ``hr`` by more than ``tau`` (local mean)."""
    return outside_distance(sr, hr, bicubic, window) > tau


# --------------------------------------------------------------------------- planted inventions


def _free_land(masks: Dict[str, np.ndarray], margin: int) -> np.ndarray:
    objects = np.zeros(next(iter(masks.values())).shape, bool)
    for m in masks.values():
        objects |= np.asarray(m, bool)
    t = torch.from_numpy(objects[None, None].astype(np.float32))
    near = F.max_pool2d(t, 2 * margin + 1, stride=1, padding=margin)[0, 0].numpy() > 0
    return ~near


def _line(shape: Tuple[int, int], rng: np.random.Generator, width: float) -> np.ndarray:
    """A straight band ``width`` px wide across the image at a random place and angle."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    a = rng.uniform(0, np.pi)
    cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    dist = np.abs((yy - cy) * np.cos(a) - (xx - cx) * np.sin(a))
    return dist <= width / 2


def plant(hr: np.ndarray, masks: Dict[str, np.ndarray], kind: str, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """An "SR output" made from the HR band ``hr`` with invented detail of ``kind``; returns (image, where).

    ``checkerboard``: three patches (54 px) of a zero-mean 3x3 lattice pattern,
    RMS :data:`CHECKER_RMS`. ``fake_objects``: two dark roads (3-4 px, 0.12)
    and six roofs (6-12 px, 0.25-0.5) on land with no object within 8 px.
    ``phantom_roads``: two 2-px dark roads (0.15 below the land) minus their
    mean over every 3x3 block: only what lies above the 10 m Nyquist limit, the
    kind of detail a network trained for consistency may paint, invisible to
    the comparison with the revisits by construction.
    """
    rng = np.random.default_rng(seed)
    img = hr.astype(np.float64).copy()
    where = np.zeros(hr.shape, bool)
    free = _free_land(masks, 8)
    h, w = hr.shape
    if kind == "checkerboard":
        yy, xx = np.mgrid[0:h, 0:w]
        side = 54
        for k, rms in enumerate(CHECKER_RMS):
            p = rng.normal(size=(3, 3))
            p -= p.mean()
            p *= rms / np.sqrt((p ** 2).mean())
            y0 = int(rng.integers(0, h - side)) // 3 * 3
            x0 = int(k * (w - side) / max(1, len(CHECKER_RMS) - 1)) // 3 * 3
            patch = (slice(y0, y0 + side), slice(x0, x0 + side))
            img[patch] += p[yy[patch] % 3, xx[patch] % 3]
            where[patch] = True
    elif kind == "fake_objects":
        for _ in range(2):
            road = _line(hr.shape, rng, rng.uniform(3, 4)) & free
            img[road] = 0.12
            where |= road
        placed = 0
        for _ in range(400):
            if placed == 6:
                break
            rh, rw = (int(v) for v in rng.integers(6, 13, 2))
            y0, x0 = int(rng.integers(0, h - rh)), int(rng.integers(0, w - rw))
            box = (slice(y0, y0 + rh), slice(x0, x0 + rw))
            if free[box].all() and not where[box].any():
                img[box] = rng.uniform(0.25, 0.5)
                where[box] = True
                placed += 1
    elif kind == "phantom_roads":
        s = 3
        for _ in range(2):
            road = (_line(hr.shape, rng, 2.0) & free).astype(np.float64) * -0.15
            hb, wb = h - h % s, w - w % s
            block = road[:hb, :wb].reshape(hb // s, s, wb // s, s).mean(axis=(1, 3))
            phantom = road.copy()
            phantom[:hb, :wb] -= np.repeat(np.repeat(block, s, 0), s, 1)
            img += phantom
            where |= np.abs(phantom) > 1e-6
    else:
        raise ValueError(f"unknown invention {kind!r}")
    return np.clip(img, 0.001, 1.0).astype(np.float32), where


# --------------------------------------------------------------------------- results


@dataclass
class ObjectCounts:
    """Objects found on one output: true, invented and segmentation errors, and what ``supported_only`` removes.

    *True*: at least half of it on the scene's mask of its class. *Invented*:
    not true, and the same networks do not find it on the HR image either (less
    than :data:`ON_HR` of its pixels): the SR output made it. *Segmentation
    error*: not true but also found on the HR image: the networks' own mistake
    on real land, which no SR check can (or should) remove.
    """

    target: str
    objects: int = 0
    false: int = 0
    false_removed: int = 0
    true_lost: int = 0
    invented: int = 0
    invented_removed: int = 0
    #: per object: (kind "true" / "invented" / "seg", bicubic_share, trust_class), to weigh other rules offline
    details: List[Tuple[str, Optional[float], Optional[float]]] = field(default_factory=list)

    def under(self, rule, kind: str = "invented") -> Tuple[int, int]:
        """(objects of ``kind`` removed, true objects lost) if ``rule(bicubic_share, trust_class)`` decided."""
        removed = sum(1 for k, b, t in self.details if k == kind and not rule(b, t))
        lost = sum(1 for k, b, t in self.details if k == "true" and not rule(b, t))
        return removed, lost

    def count(self, kind: str) -> int:
        return sum(1 for k, _b, _t in self.details if k == kind)


@dataclass
class CaseResult:
    """The trust map of one output scored against the truth."""

    scene: str
    case: str
    pixels: int
    invented_truth: float  # share of pixels the truth calls invented
    shares: Dict[str, float]  # class shares
    tp2: int = 0  # "likely invented" and invented
    fp2: int = 0
    fn2: int = 0
    tp12: int = 0  # "uncertain" or "likely invented", and invented
    fp12: int = 0
    fn12: int = 0
    planted_flagged: Optional[float] = None  # share of planted pixels flagged likely invented
    clean_flagged: Optional[float] = None  # share of pixels far from anything planted flagged likely invented
    objects: List[ObjectCounts] = field(default_factory=list)
    samples: Dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    seconds: float = 0.0

    def precision(self, both: bool = False) -> Optional[float]:
        tp, fp = (self.tp12, self.fp12) if both else (self.tp2, self.fp2)
        return tp / (tp + fp) if tp + fp else None

    def recall(self, both: bool = False) -> Optional[float]:
        tp, fn = (self.tp12, self.fn12) if both else (self.tp2, self.fn2)
        return tp / (tp + fn) if tp + fn else None

    def as_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d.pop("samples")
        d.update(precision=self.precision(), recall=self.recall(), precision_not_supported=self.precision(True),
                 recall_not_supported=self.recall(True))
        return d


# --------------------------------------------------------------------------- one scene


def write_sr_like(path: Path, image: np.ndarray, scene, lr_paths: Sequence[Path], band: str) -> Path:
    """An SR-like GeoTIFF (uint16 DN, nodata 0) recording its inputs as ``super_resolve`` would."""
    dn = to_dn(image[None], np.ones(image.shape, bool), scene.radiometric_scale)
    with rasterio.open(path, "w", driver="GTiff", width=image.shape[1], height=image.shape[0], count=1,
                       dtype=dn.dtype.name, crs=scene.crs, transform=scene.hr_transform, nodata=0) as ds:
        ds.write(dn)
        ds.set_band_description(1, band)
        ds.update_tags(SR_INPUTS=json.dumps([str(p) for p in lr_paths]), SR_BAND=band, SR_SCALE=str(scene.scale),
                       SR_MODEL="planted")
    return path


def _read(path: Path, band: int = 1) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(band)


def _objects(vectors: Path, masks: Dict[str, np.ndarray], transform,
             hr_found: Optional[Dict[str, np.ndarray]] = None) -> List[ObjectCounts]:
    """True / invented / segmentation-error objects of each layer and what ``supported == 0`` would remove.

    ``hr_found``: per layer, the pixels the same networks flag on the HR image
    (None: every false object counts as invented).
    """
    from osgeo import ogr
    out = []
    ds = ogr.Open(str(vectors))
    try:
        for li in range(ds.GetLayerCount()):
            layer = ds.GetLayer(li)
            name = layer.GetName()
            truth = np.asarray(masks.get(name, np.zeros(1)), bool)
            if truth.ndim != 2:
                continue
            near = _near(truth, 1)
            on_hr = None if hr_found is None else hr_found.get(name)
            c = ObjectCounts(name)
            for feat in layer:
                geom = json.loads(feat.GetGeometryRef().ExportToJson())
                inside = features.geometry_mask([geom], truth.shape, transform, invert=True)
                if not inside.any():
                    continue
                false = near[inside].mean() < 0.5
                kind = "true" if not false else (
                    "seg" if on_hr is not None and on_hr[inside].mean() >= ON_HR else "invented")
                supported = feat.GetField("supported") == 1
                c.objects += 1
                c.false += int(false)
                c.false_removed += int(false and not supported)
                c.true_lost += int(not false and not supported)
                c.invented += int(kind == "invented")
                c.invented_removed += int(kind == "invented" and not supported)
                c.details.append((kind, feat.GetField("bicubic_share"), feat.GetField("trust_class")))
            out.append(c)
    finally:
        ds = None
    return out


def scene_outputs(scene, band_index: int) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """The planted outputs of a scene: name -> (image, where invented detail was put)."""
    hr = np.asarray(scene.hr[band_index], np.float32)
    seed = int(np.asarray(scene.extra.get("seed", [0])).ravel()[0])
    out = {"hr": (hr, np.zeros(hr.shape, bool))}
    for k, kind in enumerate(("checkerboard", "fake_objects", "phantom_roads")):
        out[f"hr_{kind}"] = plant(hr, scene.masks, kind, seed * 10 + k)
    return out


def _near(mask: np.ndarray, margin: int) -> np.ndarray:
    t = torch.from_numpy(np.asarray(mask, bool)[None, None].astype(np.float32))
    return F.max_pool2d(t, 2 * margin + 1, stride=1, padding=margin)[0, 0].numpy() > 0


def _score(result: CaseResult, cls: np.ndarray, truth: np.ndarray, planted: Optional[np.ndarray]) -> None:
    ok = cls != NODATA
    inv2 = (cls == INVENTED) & ok
    inv12 = (cls >= 1) & ok
    t = truth & ok
    result.tp2, result.fp2, result.fn2 = int((inv2 & t).sum()), int((inv2 & ~t).sum()), int((~inv2 & t).sum())
    result.tp12, result.fp12, result.fn12 = int((inv12 & t).sum()), int((inv12 & ~t).sum()), int((~inv12 & t).sum())
    if planted is not None and planted.any():
        far = ~_near(planted, NEAR_PLANTED)
        result.planted_flagged = float(inv2[planted & ok].mean())
        result.clean_flagged = float(inv2[far & ok].mean()) if (far & ok).any() else None


def evaluate_scene(scene, folder: Path, checkpoints: Dict[str, Path], seg_checkpoints: Sequence[Path],
                   band: str = "B08", rule: Optional[ClassRule] = None, device: str = "cpu",
                   progress: Optional[Progress] = None) -> List[CaseResult]:
    """Judge every output of one scene (planted ones, then one per SR checkpoint) with the trust map.

    ``folder``: an empty work folder (the scene's GeoTIFFs and every output go
    there). ``seg_checkpoints``: the buildings and roads networks for the
    object counts (none: no object counts).
    """
    say = progress_fn(progress)
    b = list(scene.bands).index(band)
    scene_dir = write_scene(scene, folder / "scene")
    lr_paths = sorted((scene_dir / "lr").glob("*.tif"))
    hr = np.asarray(scene.hr[b], np.float32)
    bic = bicubic_baseline(scene, [b], list(range(scene.lr.shape[0])))[0]
    outputs: List[Tuple[str, Path, Optional[np.ndarray]]] = []
    for name, (image, where) in scene_outputs(scene, b).items():
        outputs.append((name, write_sr_like(folder / f"{name}.tif", image, scene, lr_paths, band), where))
    n_steps = len(outputs) + len(checkpoints)
    results = []
    step = 0
    hr_found: Dict[str, np.ndarray] = {}

    def judge(name: str, sr_path: Path, planted: Optional[np.ndarray], segment: bool) -> None:
        nonlocal step
        t0 = time.perf_counter()
        sub = sub_progress(progress, step / n_steps, (step + 1) / n_steps, f"{scene.name} {name}: ")
        summary = trust_map(sr_path, options=TrustOptions(device=device), rule=rule, progress=sub)
        sr = _read(sr_path).astype(np.float32) * np.float32(scene.radiometric_scale)
        truth = invented_truth(sr, hr, bic)
        cls = _read(summary.class_path)
        res = CaseResult(scene.name, name, int((cls != NODATA).sum()), float(truth.mean()), summary.class_shares)
        _score(res, cls, truth, planted)
        sl = (slice(None, None, _SAMPLE_STEP), slice(None, None, _SAMPLE_STEP))
        res.samples = {k: _read(summary.path, i)[sl] for k, i in SIGNALS.items()}
        res.samples["truth"] = truth[sl]
        res.samples["outside"] = outside_distance(sr, hr, bic)[sl]  # the truth's distance: other taus offline
        res.samples["near_planted"] = _near(planted, NEAR_PLANTED)[sl] if planted is not None else \
            np.zeros(truth[sl].shape, bool)
        if segment and seg_checkpoints:
            vec = folder / f"{name}_objects.gpkg"
            seg = run_segment(sr_path, [str(p) for p in seg_checkpoints], out_mask=folder / f"{name}_mask.tif",
                                  vectors=vec, options=SegmentOptions(device=device))
            if name == "hr":  # what the networks find on the truth itself: their own errors, not SR's
                with rasterio.open(seg.mask_path) as m:
                    hr_found.update({t: m.read(i + 1) == 1 for i, t in enumerate(seg.targets)})
            res.objects = _objects(vec, scene.masks, scene.hr_transform, hr_found or None)
        res.seconds = time.perf_counter() - t0
        results.append(res)
        step += 1

    for name, path, where in outputs:
        judge(name, path, where, segment=name in ("hr", "hr_fake_objects"))
    for label, ckpt in checkpoints.items():
        say(step / n_steps, f"{scene.name}: super-resolving with {label}")
        out = folder / f"{label}.tif"
        super_resolve(lr_paths, out, str(ckpt), SuperResolveOptions(band=band, device=device))
        judge(label, out, None, segment=True)
    return results


# --------------------------------------------------------------------------- calibration


def calibrate(results: Sequence[CaseResult], invented_quantile: float = INVENTED_QUANTILE,
              uncertain_quantile: float = UNCERTAIN_QUANTILE, grid_score: float = 2.0) -> Dict[str, Dict[str, float]]:
    """Per signal, the values above which 0.5 % / 2.5 % of the truly supported pixels lie.

    Four signals can each raise a pixel's class, so each gets a quarter of the
    rule's false-alarm budget: at most about 2 % of the truly supported pixels
    "likely invented" and 10 % at least "uncertain".

    Pooled over the cases where the signal exists (the instability only on
    network outputs); pixels near a planted invention are left out of the
    supported ones (windowed signals spread a little beyond what they see). Also reports, for each threshold, the share of the truly
    invented pixels above it (the recall that signal alone would have).
    """
    out: Dict[str, Dict[str, float]] = {}
    for sig in SIGNALS:
        neg, pos = [], []
        for r in results:
            v, t = r.samples.get(sig), r.samples.get("truth")
            if v is None or t is None:
                continue
            ok = np.isfinite(v)
            neg.append(v[ok & ~t & ~r.samples.get("near_planted", np.zeros(t.shape, bool))])
            pos.append(v[ok & t])
        neg_a = np.concatenate(neg) if neg else np.zeros(0)
        pos_a = np.concatenate(pos) if pos else np.zeros(0)
        if not neg_a.size:
            continue
        hi, lo = (float(np.quantile(neg_a, q)) for q in (invented_quantile, uncertain_quantile))
        if sig == "grid_amplitude":  # the amplitude decides only where the score says a grid dominates
            gated = [r.samples["grid_amplitude"][np.isfinite(r.samples["grid_amplitude"]) & ~r.samples["truth"]
                                                 & (r.samples["grid_score"] >= grid_score)
                                                 & ~r.samples.get("near_planted", False)]
                     for r in results if "grid_amplitude" in r.samples]
            g = np.concatenate(gated) if gated else np.zeros(0)
            share = g.size / max(1, neg_a.size)  # the amplitude's budget applies to all supported pixels
            if g.size:
                hi = float(np.quantile(g, max(0.0, 1 - (1 - invented_quantile) / max(share, 1e-9))))
                lo = float(np.quantile(g, max(0.0, 1 - (1 - uncertain_quantile) / max(share, 1e-9))))
        out[sig] = {"invented": hi, "uncertain": lo, "supported_pixels": int(neg_a.size),
                    "invented_pixels": int(pos_a.size),
                    "recall_at_invented": float((pos_a >= hi).mean()) if pos_a.size else math.nan,
                    "recall_at_uncertain": float((pos_a >= lo).mean()) if pos_a.size else math.nan}
    return out
