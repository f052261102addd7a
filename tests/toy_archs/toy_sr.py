"""A toy multi-image SR network: the one file (and one ``@register``) a new architecture needs.

Why it exists: ``tests/test_registry_toy.py`` trains it, saves it, reads it
back and super-resolves a raster with it through the same code paths as RAMS
and HAT. If any consumer still branched on a network's name, that test would
fail without editing that consumer.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from core.models.registry import TileDefaults, int_rule, register

TOY_PRESETS = {"toy": {"scale": 3, "frames": 3, "in_chans": 1, "width": 8}}


@register("toysr", task="sr", presets=TOY_PRESETS, default_preset="toy")
class ToySR(nn.Module):
    """Mean of the revisits, two convolutions, bilinear upsampling, one convolution (with a bicubic skip)."""

    MULTI_IMAGE = True
    FRAMES_HPARAM = "frames"
    TILE_MULTIPLE = 8
    HPARAM_RULES = {"scale": int_rule(1, 8), "frames": int_rule(1, 16), "in_chans": int_rule(1, 8),
                    "width": int_rule(1, 64)}

    @classmethod
    def tile_defaults(cls, hparams: Mapping[str, Any], frames: int, cuda: bool) -> TileDefaults:
        return TileDefaults(tile=40, per_px=4 * int(hparams.get("width", 8)) * 4, overlap_divisor=8)

    def __init__(self, scale: int = 3, frames: int = 3, in_chans: int = 1, width: int = 8) -> None:
        super().__init__()
        self.scale, self.frames, self.in_chans, self.width = int(scale), int(frames), int(in_chans), int(width)
        self.body = nn.Sequential(nn.Conv2d(in_chans, width, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.tail = nn.Conv2d(width, in_chans, 3, padding=1)

    @property
    def hparams(self) -> Dict[str, Any]:
        return {"scale": self.scale, "frames": self.frames, "in_chans": self.in_chans, "width": self.width}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:  # [B, T, h, w]: one band
            x = x.unsqueeze(2)
        mean = x.mean(dim=1)  # [B, C, h, w]
        up = F.interpolate(mean, scale_factor=self.scale, mode="bicubic", align_corners=False)
        feat = F.interpolate(self.body(mean), scale_factor=self.scale, mode="bilinear", align_corners=False)
        return up + self.tail(feat)
