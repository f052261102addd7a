"""Wald's protocol, the measuring half: held-out scores at 30 m -> 10 m and at 10 m -> 3.33 m.

Why a module of its own: what is measured must not depend on how the network
was trained, and both measurements go through the plugin's own tiled passes
(:mod:`core.evaluation.scene_predict`, :func:`core.evaluation.evaluate.evaluate_sr`)
so the numbers describe what the plugin writes.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch

from ..data.degrade import Degradation, sigma_for_bands
from ..evaluation.evaluate import FP_MARGIN_HR, evaluate_sr
from ..evaluation.metrics import SegCounts, cpsnr, cpsnr_cssim
from ..evaluation.scene_predict import bicubic_baseline, object_free, predict_sr_scene, valid_hr
from ..inference.planning import plan_tiles
from ..jobs import check_cancel
from ..models.artifacts import grid_score
from .bands import band_positions, seg_channels, seg_probs

__all__ = ["evaluate_wald", "evaluate_upscaled"]

Progress = Callable[[float, str], None]


def _finite(v: Any) -> Optional[float]:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def _bands(scene_bands: Sequence[str], loaded: Any) -> List[int]:
    """The tiles' band indices the network takes, in its card's order (one, or every band it names)."""
    return band_positions(scene_bands, loaded.card, loaded.source)


def _per_band(rows: List[Dict[str, Any]], names: Sequence[str], key: str, out: Dict[str, Any]) -> None:
    """Mean over tiles of ``<key>_<band>`` for a multi-band network (the report per band)."""
    if len(names) <= 1:
        return
    for n in names:
        vals = [r[f"{key}_{n}"] for r in rows if r.get(f"{key}_{n}") is not None]
        out[f"{key}_{n}"] = _finite(np.mean(vals)) if vals else None


def evaluate_wald(loaded, scenes: Sequence, plan=None, progress: Optional[Progress] = None) -> Dict[str, Any]:
    """30 m -> 10 m on Wald pairs: cPSNR/cSSIM of the network and of bicubic against the 10 m reference.

    The network's scores come from :func:`core.evaluation.evaluate.evaluate_sr`
    (the plugin's tiled pass, mean over tiles); bicubic is the upsampled mean of
    every revisit, the MuS2 baseline. Keys ``cpsnr``, ``cssim``,
    ``cpsnr_bicubic``, ``cssim_bicubic``, ``tiles``, ``per_tile``; for a
    multi-band network ``cpsnr_<band>`` and ``cpsnr_bicubic_<band>`` per band too.
    """
    bands = _bands(scenes[0].bands, loaded)
    names = [scenes[0].bands[b] for b in bands]
    plan = plan or plan_tiles(loaded.card, loaded.device)
    res = evaluate_sr(loaded, scenes, bands, None, plan, border=3, progress=progress)
    rows = res.get("per_scene") or []
    bic_p, bic_s = [], []
    for scene, row in zip(scenes, rows):
        valid = valid_hr(scene)
        if scene.hr is None or not valid.any():
            continue
        bic = bicubic_baseline(scene, bands, range(scene.frames))
        hr = np.asarray(scene.hr[bands], dtype=np.float32)
        score = cpsnr_cssim(bic, hr, valid=valid, border=3)
        row["cpsnr_bicubic"], row["cssim_bicubic"] = float(score.cpsnr), float(score.cssim)
        bic_p.append(row["cpsnr_bicubic"])
        bic_s.append(row["cssim_bicubic"])
        if len(bands) > 1:  # per band: the network's raw output (as evaluate_sr scores it) and bicubic
            sr = predict_sr_scene(loaded, scene, plan, anchor=False, bands=bands, quantize=False).image
            for c, n in enumerate(names):
                row[f"cpsnr_{n}"] = _finite(cpsnr(sr[c], hr[c], valid=valid, border=3))
                row[f"cpsnr_bicubic_{n}"] = _finite(cpsnr(bic[c], hr[c], valid=valid, border=3))
    out: Dict[str, Any] = {
        "tiles": len(scenes), "bands": names, "cpsnr": _finite(res.get("cpsnr")), "cssim": _finite(res.get("cssim")),
        "cpsnr_bicubic": _finite(np.mean(bic_p)) if bic_p else None,
        "cssim_bicubic": _finite(np.mean(bic_s)) if bic_s else None,
        "per_tile": [{("tile" if k == "scene" else k): v for k, v in r.items()} for r in rows]}
    _per_band(rows, names, "cpsnr", out)
    _per_band(rows, names, "cpsnr_bicubic", out)
    return out


class _Share:
    """Object-free pixels flagged by a network, summed over tiles (a share of pixels, not of tiles)."""

    def __init__(self) -> None:
        self.flagged = 0
        self.total = 0

    def update(self, prob: np.ndarray, free: np.ndarray) -> None:
        self.flagged += int(np.count_nonzero((prob > 0.5) & free))
        self.total += int(np.count_nonzero(free))

    @property
    def share(self) -> Optional[float]:
        return self.flagged / self.total if self.total else None


def evaluate_upscaled(loaded, scenes: Sequence, seg_models: Optional[Mapping[str, Any]] = None, plan=None,
                      seg_plan=None, fp_margin: Optional[int] = None, preview: bool = False,
                      progress: Optional[Progress] = None, cancel: Any = None) -> Dict[str, Any]:
    """What the plugin writes at 10 m -> 3.33 m on area tiles without HR, measured without a reference.

    Per tile, the output is made exactly as ``super_resolve`` makes it (anchored,
    quantised: :func:`core.evaluation.scene_predict.predict_sr_scene`) and so is
    the bicubic upsampling of the same revisits. Keys: ``grid_score`` and
    ``grid_score_bicubic`` (median over tiles of
    :func:`core.models.artifacts.grid_score`), ``grid_score_max``;
    ``consistency_cpsnr`` (the output degraded back to 10 m vs the clearest
    revisit, 1 LR px border, mean over tiles); with ``seg_models`` and masks,
    ``<target>_fp_share`` / ``<target>_fp_share_bicubic`` (share of object-free
    land, farther than ``fp_margin`` HR px from any object, that the frozen
    network flags; counts summed over tiles) and ``<target>_dice``. With
    ``preview``, ``_preview`` holds the first tile's images (not for JSON).
    """
    seg_models = dict(seg_models or {})
    margin = FP_MARGIN_HR if fp_margin is None else int(fp_margin)
    bands = _bands(scenes[0].bands, loaded)
    names = [scenes[0].bands[b] for b in bands]
    plan = plan or plan_tiles(loaded.card, loaded.device)
    if seg_models and seg_plan is None:
        seg_plan = plan_tiles(next(iter(seg_models.values())).card, loaded.device)
    degrade = Degradation(scale=loaded.scale, sigma_hr=sigma_for_bands(names, loaded.scale)).eval()
    grids, grids_bic, consist = [], [], []
    fp = {t: _Share() for t in seg_models}
    fp_bic = {t: _Share() for t in seg_models}
    counts = {t: SegCounts() for t in seg_models}
    rows: List[Dict[str, Any]] = []
    out: Dict[str, Any] = {"tiles": len(scenes)}
    for i, scene in enumerate(scenes):
        check_cancel(cancel)
        if progress:
            progress(i / max(1, len(scenes)), f"10 m -> 3.33 m on {scene.name}")
        sr = predict_sr_scene(loaded, scene, plan, anchor=True, bands=bands)
        valid = valid_hr(scene) & sr.valid
        bic = bicubic_baseline(scene, bands, sr.frames)
        row: Dict[str, Any] = {"tile": scene.name, "grid_score": _finite(grid_score(sr.image, valid)),
                               "grid_score_bicubic": _finite(grid_score(bic, valid))}
        ref = int(np.argmax(scene.valid_fraction()))
        with torch.no_grad():
            low = degrade(torch.from_numpy(np.ascontiguousarray(sr.image))[None])[0].numpy()  # [C, h, w]
        if scene.lr_valid[ref].any():
            per_band = [_finite(cpsnr(low[c], scene.lr[ref, b], valid=scene.lr_valid[ref], border=1))
                        for c, b in enumerate(bands)]
            kept = [v for v in per_band if v is not None]
            row["consistency_cpsnr"] = _finite(np.mean(kept)) if kept else None
            if len(bands) > 1:
                row.update({f"consistency_cpsnr_{n}": v for n, v in zip(names, per_band)})
        truth = {t: np.asarray(scene.masks[t], dtype=bool) for t in seg_models if t in scene.masks}
        if truth:
            free = object_free(list(truth.values()), margin) & valid
            fed = [(seg_models[t], seg_channels(names, seg_models[t].card, seg_models[t].source)) for t in truth]
            probs = seg_probs(fed, sr.image, valid, seg_plan)
            probs_bic = seg_probs(fed, bic.astype(np.float32), valid, seg_plan)
            for k, t in enumerate(truth):
                fp[t].update(probs[k], free)
                fp_bic[t].update(probs_bic[k], free)
                counts[t].update(probs[k], truth[t], valid)
        for key in ("grid_score", "grid_score_bicubic", "consistency_cpsnr"):
            if row.get(key) is not None:
                {"grid_score": grids, "grid_score_bicubic": grids_bic, "consistency_cpsnr": consist}[key].append(row[key])
        if preview and i == 0:
            shown = len(bands) - 1  # the last band (NIR for the shipped networks): the one the study works on
            out["_preview"] = {"tile": scene.name, "sr": sr.image[shown], "bicubic": bic[shown],
                               "band": names[shown], "lr": np.asarray(scene.lr[ref, bands[shown]]), "valid": valid,
                               "grid_score": row["grid_score"], "grid_score_bicubic": row["grid_score_bicubic"]}
        rows.append(row)
    out["grid_score"] = float(np.median(grids)) if grids else None
    out["grid_score_max"] = float(np.max(grids)) if grids else None
    out["grid_score_bicubic"] = float(np.median(grids_bic)) if grids_bic else None
    out["consistency_cpsnr"] = float(np.mean(consist)) if consist else None
    out["bands"] = names
    _per_band(rows, names, "consistency_cpsnr", out)
    for t in seg_models:
        out[f"{t}_fp_share"] = fp[t].share
        out[f"{t}_fp_share_bicubic"] = fp_bic[t].share
        out[f"{t}_dice"] = _finite(counts[t].dice)
    out["per_tile"] = rows
    if progress:
        progress(1.0, "measured")
    return out
