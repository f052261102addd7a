"""Whole-scene evaluation of super-resolution and segmentation networks.

Metrics are computed on whole scenes, never averaged over patches. Scenes are
predicted through the plugin's own tiled passes (:mod:`core.evaluation.scene_predict`),
so the scores describe the pixels an analyst gets. cPSNR / cSSIM / LPIPS
compare the output with the HR image per scene (then averaged over scenes, as
the PROBA-V and MuS2 evaluators do); the frozen segmentation networks segment
the output and their confusion counts are *accumulated* over all scenes before
Dice, accuracy, precision and recall are read off (DESIGN.md section 4).

Beside Dice, which rewards painting objects wherever the training towns had
them, the *object-free false-positive share* says how much land with no
building or road (farther than ``fp_margin`` HR pixels from any object in the
masks) each network flags, on the SR output and on the bicubic upsampling of
the same revisits: a faithful SR output should flag about as much as bicubic.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np

from ..data.scene import list_scenes, read_scene
from ..inference.loading import LoadedModel, choose_device, load_model
from ..inference.planning import TilePlan, plan_tiles
from ..io.sentinel2 import canonical_band
from ..jobs import InputError
from ..models.artifacts import grid_score
from ..options import EvaluateOptions
from .metrics import LPIPSMetric, SegCounts, cpsnr, cssim
from .scene_predict import bicubic_baseline, object_free, predict_seg_image, predict_sr_scene, valid_hr

__all__ = [
    "evaluate_sr",
    "evaluate_segmentation",
    "evaluate_hr_reference",
    "evaluate_checkpoint",
    "load_split_scenes",
    "scalar_metrics",
    "band_indices",
    "FP_MARGIN_HR",
]

Progress = Callable[[float, str], None]
#: Object-free land: farther than this many HR pixels (20 m) from any building or road in the masks.
FP_MARGIN_HR = 6


def scalar_metrics(metrics: Mapping[str, object]) -> Dict[str, Optional[float]]:
    """Only the numeric entries (history.json, progress events, report rows)."""
    out: Dict[str, Optional[float]] = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or v is None:
            if v is None:
                out[k] = None
            continue
        if isinstance(v, (int, float, np.floating, np.integer)):
            out[k] = float(v) if math.isfinite(float(v)) else None  # undefined (0/0) -> None
    return out


def _seg_summary(prefix: str, counts) -> Dict[str, Optional[float]]:
    """Scores from whole-scene counts; an undefined score (0/0) becomes None."""
    d = counts.as_dict()
    out: Dict[str, Optional[float]] = {}
    for k in ("dice", "accuracy", "precision", "recall"):
        v = float(d[k])
        out[f"{prefix}{k}"] = v if math.isfinite(v) else None
    return out


def _mean_defined(values: Iterable[Optional[float]]) -> Optional[float]:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _nanmean(values: Sequence[float]) -> Optional[float]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


class _FlagShare:
    """Share of object-free pixels a network flags, summed over scenes."""

    def __init__(self) -> None:
        self.flagged = 0
        self.total = 0

    def update(self, prob: np.ndarray, free: np.ndarray, threshold: float = 0.5) -> None:
        self.flagged += int(np.count_nonzero((prob > threshold) & free))
        self.total += int(np.count_nonzero(free))

    @property
    def share(self) -> Optional[float]:
        return self.flagged / self.total if self.total else None


def evaluate_sr(
    loaded: LoadedModel,
    scenes: Sequence,
    bands: Sequence[int],
    seg_models: Optional[Mapping[str, LoadedModel]] = None,
    plan: Optional[TilePlan] = None,
    seg_plan: Optional[TilePlan] = None,
    border: int = 3,
    lpips=None,
    progress: Optional[Progress] = None,
    anchored: bool = True,
    fp_margin: int = FP_MARGIN_HR,
) -> Dict[str, object]:
    """cPSNR, cSSIM, LPIPS (or None), Dice and object-free false positives over whole scenes.

    ``seg_models`` maps a target (``buildings``/``roads``) to its frozen
    network. Returns flat keys (``cpsnr``, ``buildings_dice``, ...),
    ``task_dice`` (mean over targets), ``<target>_fp_share`` and
    ``<target>_fp_share_bicubic``, ``grid_score`` and ``grid_score_bicubic``
    (the 3-px checkerboard score of DESIGN.md section 4, mean over scenes, of the
    raw output and of bicubic upsampling; ~1-2 for images without a grid),
    ``lpips_note`` when LPIPS could not be computed, and ``per_scene`` rows.

    The raw output (the study's protocol) gives cPSNR, cSSIM and
    ``<target>_dice``; the output anchored to its revisits' brightness, exactly
    as the plugin writes it by default, gives ``<target>_dice_anchored`` and
    the false-positive shares (``anchored=False`` skips that second pass, for
    validation during training, and takes the shares from the raw output).
    """
    plan = plan or plan_tiles(loaded.card, loaded.device)
    seg_models = dict(seg_models or {})
    if seg_models and seg_plan is None:
        seg_plan = plan_tiles(next(iter(seg_models.values())).card, loaded.device)
    was_training = loaded.model.training
    loaded.model.eval()
    counts = {t: SegCounts() for t in seg_models}
    anchored_counts = {t: SegCounts() for t in seg_models}
    fp = {t: _FlagShare() for t in seg_models}
    fp_bicubic = {t: _FlagShare() for t in seg_models}
    shifts: List[float] = []
    grids: List[float] = []
    grids_bicubic: List[float] = []
    psnrs: List[float] = []
    ssims: List[float] = []
    lpipses: List[float] = []
    per_scene: List[Dict[str, object]] = []
    try:
        for i, scene in enumerate(scenes):
            if progress:
                progress(100.0 * i / max(1, len(scenes)), f"evaluating {scene.name}")
            raw = predict_sr_scene(loaded, scene, plan, anchor=False, bands=bands)
            sr = raw.image
            valid = valid_hr(scene) & raw.valid
            row: Dict[str, object] = {"scene": scene.name}
            row["grid_score"] = grid_score(sr, valid)
            row["grid_score_bicubic"] = grid_score(bicubic_baseline(scene, bands, raw.frames), valid)
            grids.append(row["grid_score"])
            grids_bicubic.append(row["grid_score_bicubic"])
            if scene.hr is not None and valid.any():  # a fully clouded HR image has nothing to compare
                hr = np.asarray(scene.hr[list(bands)], dtype=np.float32)
                row["cpsnr"] = float(cpsnr(sr, hr, valid=valid, border=border))
                row["cssim"] = float(cssim(sr, hr, valid=valid, border=border))
                psnrs.append(row["cpsnr"])
                ssims.append(row["cssim"])
                if lpips is not None and getattr(lpips, "available", False):
                    row["lpips"] = float(lpips(sr, hr, valid=valid, border=border))
                    lpipses.append(row["lpips"])
            if not seg_models:
                per_scene.append(row)
                continue
            written = sr
            if anchored:
                out = predict_sr_scene(loaded, scene, plan, anchor=True, bands=bands)
                written = out.image
                shift = float(np.mean(out.offsets)) if out.offsets else 0.0
                shifts.append(shift)
                row["anchor_offset"] = shift
            truth = {t: np.asarray(scene.masks[t], dtype=bool) for t in seg_models if t in scene.masks}
            free = object_free(list(truth.values()), fp_margin) & valid if truth else None
            models = [seg_models[t] for t in truth]
            if not models:
                per_scene.append(row)
                continue
            pick = band_indices([scene.bands[b] for b in bands], models[0].card.bands, models[0].source)
            sr, written = sr[pick], written[pick]
            probs = predict_seg_image(models, sr, valid, seg_plan)
            for k, t in enumerate(truth):
                counts[t].update(probs[k], truth[t], valid)
            if anchored:
                probs = predict_seg_image(models, written, valid, seg_plan)
                for k, t in enumerate(truth):
                    anchored_counts[t].update(probs[k], truth[t], valid)
            bic = predict_seg_image(models, bicubic_baseline(scene, [bands[k] for k in pick], raw.frames), valid,
                                    seg_plan)
            for k, t in enumerate(truth):
                fp[t].update(probs[k], free)
                fp_bicubic[t].update(bic[k], free)
            per_scene.append(row)
    finally:
        loaded.model.train(was_training)
    result: Dict[str, object] = {
        "scenes": len(scenes),
        "cpsnr": float(np.mean(psnrs)) if psnrs else None,
        "cssim": float(np.mean(ssims)) if ssims else None,
        "lpips": float(np.mean(lpipses)) if lpipses else None,
    }
    if lpips is not None and not getattr(lpips, "available", False):
        result["lpips_note"] = f"LPIPS not available: {getattr(lpips, 'reason', 'no weights')}"
    result["grid_score"] = _nanmean(grids)
    result["grid_score_bicubic"] = _nanmean(grids_bicubic)
    for target, c in counts.items():
        result.update(_seg_summary(f"{target}_", c))
        if anchored:
            result[f"{target}_dice_anchored"] = _seg_summary("", anchored_counts[target])["dice"]
        result[f"{target}_fp_share"] = fp[target].share
        result[f"{target}_fp_share_bicubic"] = fp_bicubic[target].share
    if counts:
        result["task_dice"] = _mean_defined(result[f"{t}_dice"] for t in counts)
    if shifts:
        result["anchor_offset"] = float(np.mean(shifts))
    result["per_scene"] = per_scene
    return result


def evaluate_segmentation(
    loaded: LoadedModel,
    scenes: Sequence,
    bands: Sequence[int],
    plan: Optional[TilePlan] = None,
    progress: Optional[Progress] = None,
) -> Dict[str, object]:
    """Dice/accuracy/precision/recall of a segmentation network on the HR images of whole scenes."""
    target = str(loaded.card.target)
    plan = plan or plan_tiles(loaded.card, loaded.device)
    was_training = loaded.model.training
    loaded.model.eval()
    counts = SegCounts()
    n = 0
    try:
        for i, scene in enumerate(scenes):
            if progress:
                progress(100.0 * i / max(1, len(scenes)), f"evaluating {scene.name}")
            if scene.hr is None or target not in scene.masks:
                continue
            valid = valid_hr(scene)
            prob = predict_seg_image([loaded], np.asarray(scene.hr[list(bands)]), valid, plan)[0]
            counts.update(prob, np.asarray(scene.masks[target], dtype=bool), valid)
            n += 1
    finally:
        loaded.model.train(was_training)
    result: Dict[str, object] = {"scenes": n}
    result.update(_seg_summary("", counts))
    return result


def evaluate_hr_reference(scenes: Sequence, seg_models: Mapping[str, LoadedModel], bands: Sequence[int],
                          plan: Optional[TilePlan] = None) -> Dict[str, object]:
    """Segmentation of the HR images themselves: the upper bound SR output is measured against."""
    counts = {t: SegCounts() for t in seg_models}
    for scene in scenes:
        if scene.hr is None:
            continue
        valid = valid_hr(scene)
        for target, m in seg_models.items():
            if target in scene.masks:
                p = plan or plan_tiles(m.card, m.device)
                prob = predict_seg_image([m], np.asarray(scene.hr[list(bands)]), valid, p)[0]
                counts[target].update(prob, np.asarray(scene.masks[target], dtype=bool), valid)
    result: Dict[str, object] = {}
    for target, c in counts.items():
        result.update(_seg_summary(f"{target}_", c))
    if counts:
        result["task_dice"] = _mean_defined(result[f"{t}_dice"] for t in counts)
    return result


def load_split_scenes(root, split: Optional[str], max_scenes: Optional[int] = None) -> List:
    """Read the scenes of one split (all of them when ``split`` is None or ``"all"``)."""
    split = None if split == "all" else split
    paths = list(list_scenes(root, split=split))
    if not paths:
        raise InputError(f"{root}: the {split!r} split holds no scenes")
    if max_scenes is not None:
        paths = paths[:max_scenes]
    return [read_scene(p) for p in paths]


def band_indices(scene_bands: Sequence[str], card_bands: Optional[Sequence[str]], path) -> List[int]:
    """Indices of the bands a network reads in a scene's band list (all of them, in the card's order)."""
    if not card_bands:
        return [0]
    have = [canonical_band(b) or b for b in scene_bands]
    out = []
    for b in card_bands:
        key = canonical_band(b) or b
        if key not in have:
            raise InputError(
                f"{path}: the network was trained on band(s) {', '.join(card_bands)} "
                f"but the scenes hold {', '.join(scene_bands)}"
            )
        out.append(have.index(key))
    return out


def evaluate_checkpoint(
    checkpoint,
    data_root,
    seg_buildings=None,
    seg_roads=None,
    options: Optional[EvaluateOptions] = None,
    progress: Optional[Progress] = None,
) -> Dict[str, object]:
    """Evaluate an SR or segmentation checkpoint on the scenes of a split.

    For an SR checkpoint, segmentation checkpoints (when given) segment the SR
    output; ``options.hr_reference`` adds their scores on the HR images under
    ``hr_*``. Tiles follow ``options`` as for ``super_resolve``.
    """
    options = options or EvaluateOptions()
    messages: List[str] = []
    device = choose_device(options.device, messages)
    loaded = load_model(checkpoint, device)
    scenes = load_split_scenes(data_root, options.split, options.max_scenes)
    bands = band_indices(scenes[0].bands, loaded.card.bands, checkpoint)
    if loaded.card.task == "segmentation":
        result = evaluate_segmentation(loaded, scenes, bands, plan_tiles(
            loaded.card, device, options.tile and options.tile * 3,
            options.overlap and options.overlap * 3), progress=progress)
        result.update({"task": "segmentation", "target": loaded.card.target})
    else:
        seg_models: Dict[str, LoadedModel] = {}
        for target, path in (("buildings", seg_buildings), ("roads", seg_roads)):
            if path:
                m = load_model(path, device, task="segmentation")
                if m.card.target != target:
                    raise InputError(f"{path}: segments {m.card.target!r}, expected {target!r}")
                seg_models[target] = m
        plan = plan_tiles(loaded.card, device, options.tile, options.overlap)
        result = evaluate_sr(loaded, scenes, bands, seg_models, plan, border=3, lpips=LPIPSMetric(device=device),
                             progress=progress, anchored=options.anchor)
        result["task"] = "sr"
        if options.hr_reference and seg_models:
            seg_bands = band_indices(scenes[0].bands, next(iter(seg_models.values())).card.bands, checkpoint)
            ref = evaluate_hr_reference(scenes, seg_models, seg_bands)
            result.update({f"hr_{k}": v for k, v in ref.items()})
    result.update({"checkpoint": str(checkpoint), "split": options.split, "data": str(data_root)})
    return result

