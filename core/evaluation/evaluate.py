"""Whole-scene evaluation of super-resolution and segmentation networks.

Metrics are computed on whole scenes, never averaged over patches: the SR
network runs tiled over each scene's LR frames (overlapping tiles, blended with
a linear ramp so no seams enter the metrics), cPSNR / cSSIM / LPIPS compare the
result with the HR image per scene (then averaged over scenes, as the PROBA-V
and MuS2 evaluators do), and the frozen segmentation networks segment the SR
output whose confusion counts are *accumulated* over all scenes before Dice,
accuracy, precision and recall are read off (DESIGN.md section 4).

Everything here works in memory on :class:`core.data.scene.Scene` objects;
georeferenced raster inference over files lives in ``core.inference``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

__all__ = [
    "Normalization",
    "FrozenSegNet",
    "load_frozen_segnet",
    "tiled_predict",
    "predict_sr_scene",
    "predict_seg_scene",
    "evaluate_sr",
    "evaluate_segmentation",
    "evaluate_hr_reference",
    "evaluate_checkpoint",
    "load_split_scenes",
    "scalar_metrics",
]

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class Normalization:
    """``x_model = (reflectance - offset) / scale`` (the checkpoint card's ``normalization``)."""

    offset: float = 0.0
    scale: float = 1.0

    @classmethod
    def from_card(cls, value: Optional[Mapping[str, float]]) -> Normalization:
        if not value:
            return cls()
        return cls(float(value.get("offset", 0.0)), float(value.get("scale", 1.0)))

    def as_dict(self) -> Dict[str, float]:
        return {"offset": self.offset, "scale": self.scale}

    def to_model(self, reflectance):
        return (reflectance - self.offset) / self.scale

    def to_reflectance(self, model_units):
        return model_units * self.scale + self.offset


class FrozenSegNet(nn.Module):
    """A trained segmentation network, frozen, fed from another network's units.

    It converts its input from the *source* normalization (the SR network's
    units) to reflectance and then into its own normalization, so that the SR
    output is judged exactly as the segmentation network saw HR images during
    its own training. Parameters never receive gradients, but gradients do flow
    *through* it into whatever produced its input (the task-driven loss).
    """

    def __init__(self, net: nn.Module, seg_norm: Normalization, source_norm: Normalization = Normalization()):
        super().__init__()
        self.net = net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.seg_norm = seg_norm
        self.source_norm = source_norm
        self.train(False)

    def train(self, mode: bool = True) -> FrozenSegNet:  # stays in eval mode (BatchNorm statistics)
        super().train(False)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reflectance = self.source_norm.to_reflectance(x)
        return self.net(self.seg_norm.to_model(reflectance))


def load_frozen_segnet(path, device="cpu", source_norm: Normalization = Normalization()):
    """Load a segmentation checkpoint as a :class:`FrozenSegNet`; returns (net, card)."""
    from ..models.zoo import load_checkpoint

    net, card = load_checkpoint(path, device=device)
    if getattr(card, "task", None) != "segmentation":
        raise ValueError(f"{path}: a {card.task!r} checkpoint, not a segmentation network")
    frozen = FrozenSegNet(net, Normalization.from_card(card.normalization), source_norm).to(device)
    return frozen, card


# --------------------------------------------------------------------------- tiling


def _starts(size: int, tile: int, step: int) -> List[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile + 1, step))
    if starts[-1] != size - tile:
        starts.append(size - tile)
    return starts


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> torch.Tensor:
    """1-D blending weights: a linear ramp over the overlap on interior sides only."""
    w = torch.ones(length)
    if overlap > 0:
        ramp = (torch.arange(overlap, dtype=torch.float32) + 0.5) / overlap
        if not at_start:
            w[:overlap] = torch.minimum(w[:overlap], ramp)
        if not at_end:
            w[-overlap:] = torch.minimum(w[-overlap:], ramp.flip(0))
    return w


def tiled_predict(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tile: int,
    overlap: int,
    scale: int = 1,
    out_channels: int = 1,
    batch: int = 4,
) -> torch.Tensor:
    """Apply ``fn`` to overlapping tiles of ``x [C, h, w]``; returns ``[out_channels, h*scale, w*scale]``.

    ``fn`` maps ``[B, C, t, t]`` to ``[B, out_channels, t*scale, t*scale]``.
    Tiles overlap by ``overlap`` input pixels and are blended with linear ramps,
    so the result does not depend on where the tile borders fall (up to the
    network's own border effects). A raster smaller than a tile is one tile.
    Memory is bounded by ``batch`` tiles plus the output.
    """
    c, h, w = x.shape
    th, tw = min(tile, h), min(tile, w)
    ov_h = min(overlap, th // 2)
    ov_w = min(overlap, tw // 2)
    ys = _starts(h, th, th - ov_h)
    xs = _starts(w, tw, tw - ov_w)
    out = torch.zeros(out_channels, h * scale, w * scale, dtype=torch.float32)
    weight = torch.zeros(1, h * scale, w * scale, dtype=torch.float32)
    coords = [(y, xx) for y in ys for xx in xs]
    for i in range(0, len(coords), batch):
        chunk = coords[i : i + batch]
        tiles = torch.stack([x[:, y : y + th, xx : xx + tw] for y, xx in chunk])
        pred = fn(tiles).float().cpu()
        for (y, xx), p in zip(chunk, pred):
            wy = _ramp(th * scale, ov_h * scale, y == 0, y + th >= h)
            wx = _ramp(tw * scale, ov_w * scale, xx == 0, xx + tw >= w)
            wt = wy[:, None] * wx[None, :]
            ys_, xs_ = y * scale, xx * scale
            out[:, ys_ : ys_ + th * scale, xs_ : xs_ + tw * scale] += p * wt
            weight[:, ys_ : ys_ + th * scale, xs_ : xs_ + tw * scale] += wt
    return out / weight.clamp_min(1e-8)


def _autocast(device: torch.device, dtype: Optional[torch.dtype]):
    if dtype is None or device.type != "cuda":
        return torch.autocast(device_type=device.type, enabled=False)
    return torch.autocast(device_type="cuda", dtype=dtype)


# --------------------------------------------------------------------------- scenes


def _scene_frames(scene, band: int, frames: int) -> torch.Tensor:
    """The ``frames`` clearest LR frames of one band, ``[T, h, w]`` reflectance."""
    from ..data.patches import choose_frames

    valid = np.asarray(scene.lr_valid, dtype=bool)
    fractions = valid.reshape(valid.shape[0], -1).mean(axis=1)
    idx = list(choose_frames(fractions, frames))
    return torch.from_numpy(np.ascontiguousarray(scene.lr[idx, band], dtype=np.float32))


@torch.no_grad()
def predict_sr_scene(
    model: nn.Module,
    scene,
    normalization: Normalization,
    frames: int,
    band: int = 0,
    device="cpu",
    tile: int = 48,
    overlap: int = 8,
    autocast_dtype: Optional[torch.dtype] = None,
) -> np.ndarray:
    """Super-resolve a whole scene: ``[3h, 3w]`` float32 reflectance."""
    device = torch.device(device)
    lr = normalization.to_model(_scene_frames(scene, band, frames))
    scale = int(getattr(model, "scale", scene.scale))

    def fn(tiles: torch.Tensor) -> torch.Tensor:
        with _autocast(device, autocast_dtype):
            return model(tiles.to(device))

    out = tiled_predict(fn, lr, tile, overlap, scale=scale, out_channels=1)
    return normalization.to_reflectance(out[0]).numpy().astype(np.float32)


@torch.no_grad()
def predict_seg_scene(
    segnet: Callable[[torch.Tensor], torch.Tensor],
    image: np.ndarray,
    device="cpu",
    tile: int = 192,
    overlap: int = 32,
    autocast_dtype: Optional[torch.dtype] = None,
) -> np.ndarray:
    """Probability map ``[H, W]`` of a :class:`FrozenSegNet` (reflectance in) over a whole image."""
    device = torch.device(device)
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]

    def fn(tiles: torch.Tensor) -> torch.Tensor:
        with _autocast(device, autocast_dtype):
            return torch.sigmoid(segnet(tiles.to(device)).float())

    return tiled_predict(fn, x, tile, overlap, scale=1)[0].numpy()


def _valid_hr(scene) -> np.ndarray:
    """Pixels that count on the HR grid: the HR clear mask, else where any revisit saw the ground."""
    if scene.hr_valid is not None:
        return np.asarray(scene.hr_valid, dtype=bool)
    seen = np.asarray(scene.lr_valid, dtype=bool).any(axis=0)
    return np.repeat(np.repeat(seen, scene.scale, axis=0), scene.scale, axis=1)


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
    """Scores from whole-scene counts; an undefined score (0/0, NaN in SegCounts) becomes None."""
    d = counts.as_dict()
    out: Dict[str, Optional[float]] = {}
    for k in ("dice", "accuracy", "precision", "recall"):
        v = float(d[k])
        out[f"{prefix}{k}"] = v if math.isfinite(v) else None
    return out


def _mean_defined(values: Iterable[Optional[float]]) -> Optional[float]:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def evaluate_sr(
    model: nn.Module,
    scenes: Sequence,
    normalization: Normalization,
    frames: int,
    band: int = 0,
    seg_nets: Optional[Mapping[str, nn.Module]] = None,
    device="cpu",
    tile: int = 48,
    overlap: int = 8,
    border: int = 3,
    lpips=None,
    autocast_dtype: Optional[torch.dtype] = None,
    progress: Optional[Progress] = None,
    anchored: bool = True,
) -> Dict[str, object]:
    """cPSNR, cSSIM, LPIPS (or None) and per-target Dice/accuracy/precision/recall over whole scenes.

    ``seg_nets`` maps a target (``buildings``/``roads``) to a :class:`FrozenSegNet`
    taking reflectance. Returns flat keys (``cpsnr``, ``buildings_dice``, ...),
    ``task_dice`` (mean over targets), ``lpips_note`` when LPIPS could not be
    computed, and ``per_scene`` rows.

    Dice is measured twice: on the network's raw output (the study's protocol,
    ``<target>_dice``) and on the output shifted to its revisits' mean brightness
    as the plugin's inference does (``<target>_dice_anchored``, with the mean
    shift in ``anchor_offset``). cPSNR/cSSIM remove that shift themselves; Dice
    does not, so the pair tells a network that loses objects from one that only
    drifted in brightness, which a loss blind to constant offsets (cL1) allows.
    ``anchored=False`` skips the second pass (validation during training).
    """
    from ..inference.sr import anchor_offsets
    from .metrics import SegCounts, cpsnr, cssim

    was_training = model.training
    model.eval()
    seg_nets = dict(seg_nets or {})
    counts = {t: SegCounts() for t in seg_nets}
    anchored_counts = {t: SegCounts() for t in seg_nets}
    shifts: List[float] = []
    psnrs: List[float] = []
    ssims: List[float] = []
    lpipses: List[float] = []
    per_scene: List[Dict[str, object]] = []
    seg_tile = tile * int(getattr(model, "scale", 3))
    seg_overlap = overlap * int(getattr(model, "scale", 3))
    try:
        for i, scene in enumerate(scenes):
            if progress:
                progress(100.0 * i / max(1, len(scenes)), f"evaluating {scene.name}")
            sr = predict_sr_scene(model, scene, normalization, frames, band, device, tile, overlap, autocast_dtype)
            valid = _valid_hr(scene)
            row: Dict[str, object] = {"scene": scene.name}
            if scene.hr is not None and valid.any():  # a fully clouded HR image has nothing to compare
                hr = np.asarray(scene.hr[band], dtype=np.float32)
                row["cpsnr"] = float(cpsnr(sr, hr, valid=valid, border=border))
                row["cssim"] = float(cssim(sr, hr, valid=valid, border=border))
                psnrs.append(row["cpsnr"])
                ssims.append(row["cssim"])
                if lpips is not None and getattr(lpips, "available", False):
                    row["lpips"] = float(lpips(sr, hr, valid=valid, border=border))
                    lpipses.append(row["lpips"])
            shift = 0.0
            if seg_nets and anchored:
                lr = np.asarray(scene.lr[:, band], dtype=np.float32)
                shift = float(anchor_offsets(lr[None], np.asarray(scene.lr_valid, bool)[None], sr[None, None],
                                             int(scene.scale))[0])
                shifts.append(shift)
                row["anchor_offset"] = shift
            for target, net in seg_nets.items():
                mask = scene.masks.get(target)
                if mask is None:
                    continue
                truth = np.asarray(mask, dtype=bool)
                prob = predict_seg_scene(net, sr, device, seg_tile, seg_overlap, autocast_dtype)
                counts[target].update(prob, truth, valid)
                if anchored:
                    prob = predict_seg_scene(net, sr + np.float32(shift), device, seg_tile, seg_overlap,
                                             autocast_dtype)
                    anchored_counts[target].update(prob, truth, valid)
            per_scene.append(row)
    finally:
        model.train(was_training)
    result: Dict[str, object] = {
        "scenes": len(scenes),
        "cpsnr": float(np.mean(psnrs)) if psnrs else None,
        "cssim": float(np.mean(ssims)) if ssims else None,
        "lpips": float(np.mean(lpipses)) if lpipses else None,
    }
    if lpips is not None and not getattr(lpips, "available", False):
        result["lpips_note"] = f"LPIPS not available: {getattr(lpips, 'reason', 'no weights')}"
    for target, c in counts.items():
        result.update(_seg_summary(f"{target}_", c))
        if anchored:
            result[f"{target}_dice_anchored"] = _seg_summary("", anchored_counts[target])["dice"]
    if counts:
        result["task_dice"] = _mean_defined(result[f"{t}_dice"] for t in counts)
    if shifts:
        result["anchor_offset"] = float(np.mean(shifts))
    result["per_scene"] = per_scene
    return result


def evaluate_segmentation(
    model: nn.Module,
    scenes: Sequence,
    normalization: Normalization,
    target: str,
    band: int = 0,
    device="cpu",
    tile: int = 192,
    overlap: int = 32,
    autocast_dtype: Optional[torch.dtype] = None,
    progress: Optional[Progress] = None,
) -> Dict[str, object]:
    """Dice/accuracy/precision/recall of a segmentation network on the HR images of whole scenes."""
    from .metrics import SegCounts

    was_training = model.training
    model.eval()

    def frozen(x: torch.Tensor) -> torch.Tensor:  # reflectance in, logits out
        return model(normalization.to_model(x))

    counts = SegCounts()
    n = 0
    try:
        for i, scene in enumerate(scenes):
            if progress:
                progress(100.0 * i / max(1, len(scenes)), f"evaluating {scene.name}")
            if scene.hr is None or target not in scene.masks:
                continue
            prob = predict_seg_scene(frozen, np.asarray(scene.hr[band]), device, tile, overlap, autocast_dtype)
            counts.update(prob, np.asarray(scene.masks[target], dtype=bool), _valid_hr(scene))
            n += 1
    finally:
        model.train(was_training)
    result: Dict[str, object] = {"scenes": n}
    result.update(_seg_summary("", counts))
    return result


def evaluate_hr_reference(
    scenes: Sequence,
    seg_nets: Mapping[str, nn.Module],
    band: int = 0,
    device="cpu",
    tile: int = 192,
    overlap: int = 32,
) -> Dict[str, object]:
    """Segmentation of the HR images themselves: the upper bound SR output is measured against."""
    from .metrics import SegCounts

    counts = {t: SegCounts() for t in seg_nets}
    for scene in scenes:
        if scene.hr is None:
            continue
        for target, net in seg_nets.items():
            if target in scene.masks:
                prob = predict_seg_scene(net, np.asarray(scene.hr[band]), device, tile, overlap)
                counts[target].update(prob, np.asarray(scene.masks[target], dtype=bool), _valid_hr(scene))
    result: Dict[str, object] = {}
    for target, c in counts.items():
        result.update(_seg_summary(f"{target}_", c))
    if counts:
        result["task_dice"] = _mean_defined(result[f"{t}_dice"] for t in counts)
    return result


def load_split_scenes(root, split: Optional[str], max_scenes: Optional[int] = None) -> List:
    """Read the scenes of one split (all of them when ``split`` is None)."""
    from ..data.scene import list_scenes, read_scene

    paths = list(list_scenes(root, split=split))
    if not paths:
        raise ValueError(f"{root}: the {split!r} split holds no scenes")
    if max_scenes is not None:
        paths = paths[:max_scenes]
    return [read_scene(p) for p in paths]


def _band_index(scene_bands: Sequence[str], card_bands: Optional[Sequence[str]], path) -> int:
    if not card_bands:
        return 0
    for b in card_bands:
        if b in scene_bands:
            return list(scene_bands).index(b)
    raise ValueError(
        f"{path}: the network was trained on band(s) {', '.join(card_bands)} "
        f"but the scenes hold {', '.join(scene_bands)}"
    )


def evaluate_checkpoint(
    checkpoint,
    data_root,
    split: Optional[str] = "test",
    seg_buildings=None,
    seg_roads=None,
    device="cpu",
    tile: int = 48,
    overlap: int = 8,
    max_scenes: Optional[int] = None,
    hr_reference: bool = False,
    progress: Optional[Progress] = None,
) -> Dict[str, object]:
    """Evaluate an SR or segmentation checkpoint on the scenes of a split.

    For an SR checkpoint, segmentation checkpoints (when given) segment the SR
    output; ``hr_reference`` adds their scores on the HR images under ``hr_*``.
    """
    from ..models.zoo import load_checkpoint
    from .metrics import LPIPSMetric

    device = torch.device(device)
    model, card = load_checkpoint(checkpoint, device=device)
    scenes = load_split_scenes(data_root, split, max_scenes)
    band = _band_index(scenes[0].bands, card.bands, checkpoint)
    norm = Normalization.from_card(card.normalization)
    scale = int(card.scale or 3)
    if card.task == "segmentation":
        result = evaluate_segmentation(
            model, scenes, norm, card.target, band, device, tile * scale, overlap * scale, progress=progress
        )
        result.update({"task": "segmentation", "target": card.target})
    else:
        seg_nets = {}
        for target, path in (("buildings", seg_buildings), ("roads", seg_roads)):
            if path:
                net, seg_card = load_frozen_segnet(path, device)
                if seg_card.target != target:
                    raise ValueError(f"{path}: segments {seg_card.target!r}, expected {target!r}")
                seg_nets[target] = net
        result = evaluate_sr(
            model, scenes, norm, int(card.frames or getattr(model, "frames", 1)), band, seg_nets,
            device, tile, overlap, lpips=LPIPSMetric(device=device), progress=progress,
        )
        result["task"] = "sr"
        if hr_reference and seg_nets:
            ref = evaluate_hr_reference(scenes, seg_nets, band, device, tile * scale, overlap * scale)
            result.update({f"hr_{k}": v for k, v in ref.items()})
    result.update({"checkpoint": str(checkpoint), "split": split, "data": str(data_root)})
    return result
