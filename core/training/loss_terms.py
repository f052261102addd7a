"""The one table of loss terms a recipe may name: what each needs, and how it is computed.

Why a table: the recipe validator (which names exist for which task, which
need an HR image, which run a frozen segmentation network) and the loss
computer in the trainer used to keep their own lists of the same names. Now
both read :data:`LOSS_TERMS`, so a new term is one entry here.

Every term is a function of :class:`Batch`, the tensors of one training batch
in the network's units. Terms that go through a frozen segmentation network
share its logits (computed once per target and batch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models import losses as L

__all__ = ["LossTerm", "LOSS_TERMS", "Batch", "terms_for", "OBJECT_FREE_MARGIN_HR"]

#: Object-free pixels for the false-alarm terms: farther than this many HR pixels from any object (20 m).
OBJECT_FREE_MARGIN_HR = 6


@dataclass
class Batch:
    """One batch as the terms see it (network units), with lazily computed shared parts."""

    sr: Tensor  # [B, C, H, W] network output
    lr: Tensor  # [B, T, C, h, w]
    lr_valid: Tensor  # [B, T, h, w]
    hr: Optional[Tensor]  # [B, C, H, W]
    hr_valid: Optional[Tensor]  # [B, H, W]
    mask_valid: Optional[Tensor]  # where the masks are labels
    masks: Mapping[str, Tensor]  # target -> [B, 1, H, W]
    labelled: Optional[Tensor]  # [B] bool: samples whose scenes have every mask (zeros elsewhere are not labels)
    border: int
    seg_nets: Mapping[str, Callable[[Tensor], Tensor]]
    degradation: Optional[Callable[[Tensor], Tensor]] = None
    autocast: Callable = field(default=lambda: torch.autocast("cpu", enabled=False))
    _logits: Dict[str, Tensor] = field(default_factory=dict)

    def logits(self, target: str) -> Tensor:
        """The frozen ``target`` network's logits on the SR output (gradients flow into the SR network)."""
        if target not in self._logits:
            with self.autocast():
                self._logits[target] = self.seg_nets[target](self.sr).float()
        return self._logits[target]

    def object_free(self) -> Tensor:
        """Labelled pixels farther than :data:`OBJECT_FREE_MARGIN_HR` from any building or road ``[B,1,H,W]``."""
        objects = torch.zeros_like(self.sr[:, :1])
        for m in self.masks.values():
            objects = torch.maximum(objects, m.to(objects.dtype))
        r = OBJECT_FREE_MARGIN_HR
        near = F.max_pool2d(objects, 2 * r + 1, stride=1, padding=r) > 0
        free = ~near
        if self.mask_valid is not None:
            v = self.mask_valid if self.mask_valid.dim() == 4 else self.mask_valid[:, None]
            free = free & (v > 0.5)
        if self.labelled is not None:
            free = free & self.labelled.to(torch.bool)[:, None, None, None]
        return free


@dataclass(frozen=True)
class LossTerm:
    """A loss a recipe can name: its task, what it needs, what it does, and how it is computed."""

    name: str
    task: str  # "sr" or "segmentation"
    help: str
    compute: Callable[[Batch], Tensor]
    needs_hr: bool = False
    target: Optional[str] = None  # the frozen network it runs through (task-driven terms)


def _dice(target: str) -> Callable[[Batch], Tensor]:
    def compute(b: Batch) -> Tensor:
        return L.soft_dice_loss(b.logits(target), b.masks[target].float(), valid=b.mask_valid)

    return compute


def _false_alarm(target: str) -> Callable[[Batch], Tensor]:
    def compute(b: Batch) -> Tensor:
        free = b.object_free()
        p = torch.sigmoid(b.logits(target))
        n = free.sum()
        return (p * free).sum() / n.clamp_min(1.0)

    return compute


def _consistency(b: Batch) -> Tensor:
    if b.degradation is None:
        raise RuntimeError("consistency_l1 needs the degradation operator")
    return L.consistency_l1(b.sr, b.lr[:, 0], b.lr_valid[:, 0], b.degradation)


def _no_compute(_b: Batch) -> Tensor:  # segmentation terms are computed by the trainer's segmentation step
    raise RuntimeError("a segmentation loss is computed on segmentation batches")


_TERMS = (
    LossTerm("cl1", "sr", "bias-corrected L1 to the HR image at the best of the shifts (the study's baseline)",
             lambda b: L.cl1(b.sr, b.hr, valid=b.hr_valid, border=b.border), needs_hr=True),
    LossTerm("cmse", "sr", "bias-corrected MSE to the HR image at the best shift",
             lambda b: L.cmse(b.sr, b.hr, valid=b.hr_valid, border=b.border), needs_hr=True),
    LossTerm("consistency_l1", "sr", "cL1 between the output degraded back to 10 m and the first revisit (no HR)",
             _consistency),
    LossTerm("dice_buildings", "sr", "soft Dice of the frozen buildings network on the output",
             _dice("buildings"), target="buildings"),
    LossTerm("dice_roads", "sr", "soft Dice of the frozen roads network on the output", _dice("roads"),
             target="roads"),
    LossTerm("fp_buildings", "sr", "mean buildings probability on object-free land (phantom buildings)",
             _false_alarm("buildings"), target="buildings"),
    LossTerm("fp_roads", "sr", "mean roads probability on object-free land (phantom roads)", _false_alarm("roads"),
             target="roads"),
    LossTerm("dice", "segmentation", "soft Dice of the network being trained", _no_compute),
    LossTerm("bce", "segmentation", "binary cross-entropy of the network being trained", _no_compute),
    LossTerm("weak_real", "segmentation", "BCE on the most object-like pixels of real images labelled as a whole "
             "(data.weak: present or absent)", _no_compute),
)

#: Every loss term by name.
LOSS_TERMS: Dict[str, LossTerm] = {t.name: t for t in _TERMS}


def terms_for(task: str) -> Dict[str, LossTerm]:
    """The terms a recipe of ``task`` ("sr" or "segmentation") may name."""
    return {n: t for n, t in LOSS_TERMS.items() if t.task == task}
