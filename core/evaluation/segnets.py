"""Frozen segmentation networks that judge another network's output in its own units.

Why a module of its own: the task-driven loss (training) and the Dice metrics
(evaluation) both run the frozen UNet++ networks on SR output, and both must
feed them reflectance converted exactly as those networks saw HR images during
their own training, whatever units the SR network works in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence

import torch
from torch import nn

from ..models.zoo import load_checkpoint

__all__ = ["Normalization", "FrozenSegNet", "load_frozen_segnet"]


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

    def __init__(self, net: nn.Module, seg_norm: Normalization, source_norm: Normalization = Normalization(),
                 channels: Optional[Sequence[int]] = None):
        super().__init__()
        self.channels = list(channels) if channels is not None else None  # input bands the network reads
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
        if self.channels is not None:
            x = x[:, self.channels]
        reflectance = self.source_norm.to_reflectance(x)
        return self.net(self.seg_norm.to_model(reflectance))


def load_frozen_segnet(path, device="cpu", source_norm: Normalization = Normalization()):
    """Load a segmentation checkpoint as a :class:`FrozenSegNet`; returns (net, card)."""
    net, card = load_checkpoint(path, device=device)
    if not card.is_segmentation:
        raise ValueError(f"{path}: a {card.task!r} checkpoint, not a segmentation network")
    frozen = FrozenSegNet(net, Normalization.from_card(card.normalization), source_norm).to(device)
    return frozen, card
