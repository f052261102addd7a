"""RAMS: Residual Attention Multi-image Super-resolution (Salvetti et al., 2020).

A PyTorch re-implementation of the network described in the paper and its
official TensorFlow code (read for facts only). What it keeps, and why:

* Every convolution is weight-normalized (``torch.nn.utils.parametrizations``),
  so the parameter count matches the paper both without the weight-norm gains
  (956,423 at the defaults) and with them (958,129).
* The LR stack is treated as a 3-D volume ``(T, H, W)`` with one feature
  channel at the start; 3x3x3 convolutions mix neighbouring frames.
* H and W are reflect-padded by one pixel before the 3-D body and once more
  before each temporal-reduction step, whose 'valid' 3x3x3 convolution then
  removes one pixel per side again: the LR size is kept exactly, T shrinks by
  2 per step (9 -> 7 -> 5 -> 3) and a last 'valid' convolution reaches T = 1.
* A global residual path runs a 2-D temporal-attention block over the frames
  (frames as channels) and adds its upsampled output to the main path.

Input ``[B, T, h, w]`` (one band, T frames, model units), output ``[B, 1, s*h, s*w]``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm

from .padding import safe_reflect_pad

__all__ = ["RAMSConfig", "RAMS", "count_parameters", "PAPER_PARAMS", "PAPER_PARAMS_WITH_GAIN"]

#: Parameter count reported for the paper's defaults (weights and biases).
PAPER_PARAMS = 956_423
#: The same counting the weight-norm gains g as well.
PAPER_PARAMS_WITH_GAIN = 958_129

_GAIN_SUFFIX = "parametrizations.weight.original0"


def count_parameters(model: nn.Module, include_weight_norm_gain: bool = True) -> int:
    """Number of trainable scalars; optionally without weight-norm gains ``g``.

    Papers using weight normalization often report the count of the plain
    layers (direction ``v`` plus bias); the gains add one scalar per filter.
    """
    total = 0
    for name, p in model.named_parameters():
        if not include_weight_norm_gain and name.endswith(_GAIN_SUFFIX):
            continue
        total += p.numel()
    return total


@dataclass
class RAMSConfig:
    """Hyper-parameters of RAMS (paper defaults).

    ``mean`` / ``std`` are the dataset statistics the network normalizes its
    input with (and denormalizes its output with); with inputs already in model
    units the defaults 0 / 1 make this a no-op.
    """

    scale: int = 3
    frames: int = 9
    filters: int = 32
    kernel_size: int = 3
    r: int = 8
    N: int = 12
    mean: float = 0.0
    std: float = 1.0


def _wn_conv3d(cin: int, cout: int, k: int, padding: int) -> nn.Module:
    return weight_norm(nn.Conv3d(cin, cout, k, padding=padding), dim=0)


def _wn_conv2d(cin: int, cout: int, k: int, padding: int) -> nn.Module:
    return weight_norm(nn.Conv2d(cin, cout, k, padding=padding), dim=0)


class FeatureAttentionBlock(nn.Module):
    """Residual block with squeeze-excitation over 3-D features ``[B, F, T, H, W]``.

    The attention weights come from the global average of each feature channel,
    so the block can emphasise the channels carrying useful high frequencies.
    """

    def __init__(self, filters: int, kernel_size: int, r: int) -> None:
        super().__init__()
        pad = kernel_size // 2
        squeezed = max(1, filters // r)
        self.conv1 = _wn_conv3d(filters, filters, kernel_size, pad)
        self.conv2 = _wn_conv3d(filters, filters, kernel_size, pad)
        self.squeeze = _wn_conv3d(filters, squeezed, 1, 0)
        self.excite = _wn_conv3d(squeezed, filters, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        a = y.mean(dim=(2, 3, 4), keepdim=True)
        a = torch.sigmoid(self.excite(F.relu(self.squeeze(a))))
        return x + y * a


class TemporalAttentionBlock(nn.Module):
    """The 2-D counterpart used on the global path: frames are the channels."""

    def __init__(self, channels: int, kernel_size: int, r: int) -> None:
        super().__init__()
        pad = kernel_size // 2
        squeezed = max(1, channels // r)
        self.conv1 = _wn_conv2d(channels, channels, kernel_size, pad)
        self.conv2 = _wn_conv2d(channels, channels, kernel_size, pad)
        self.squeeze = _wn_conv2d(channels, squeezed, 1, 0)
        self.excite = _wn_conv2d(squeezed, channels, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        a = y.mean(dim=(2, 3), keepdim=True)
        a = torch.sigmoid(self.excite(F.relu(self.squeeze(a))))
        return x + y * a


class TemporalReduction(nn.Module):
    """Reflect-pad H, W; attention block; 3x3x3 'valid' conv + ReLU (T -= 2)."""

    def __init__(self, filters: int, kernel_size: int, r: int) -> None:
        super().__init__()
        self.block = FeatureAttentionBlock(filters, kernel_size, r)
        self.reduce = _wn_conv3d(filters, filters, 3, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _reflect_pad_hw(x, 1)
        return F.relu(self.reduce(self.block(x)))


def _reflect_pad_hw(x: torch.Tensor, p: int) -> torch.Tensor:
    """Reflect-pad H and W of a 5-D ``[B, F, T, H, W]`` tensor (T untouched)."""
    b, f, t, h, w = x.shape
    y = safe_reflect_pad(x.reshape(b, f * t, h, w), (p, p, p, p))
    return y.reshape(b, f, t, h + 2 * p, w + 2 * p)


class RAMS(nn.Module):
    """Residual Attention Multi-image Super-resolution network.

    ``forward(x [B, T, h, w]) -> [B, 1, scale*h, scale*w]`` for any h, w >= 1.
    """

    ARCH = "rams"

    def __init__(self, scale: int = 3, frames: int = 9, filters: int = 32, kernel_size: int = 3,
                 r: int = 8, N: int = 12, mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        cfg = RAMSConfig(int(scale), int(frames), int(filters), int(kernel_size), int(r), int(N),
                         float(mean), float(std))
        if cfg.kernel_size != 3:
            # The reduction convs are 3x3x3 'valid' and the reflect pads are one
            # pixel: the official design only balances sizes for k = 3.
            raise ValueError(f"RAMS: kernel_size must be 3 (got {cfg.kernel_size})")
        steps = int((cfg.frames - 1) / (cfg.kernel_size - 1) - 1) if cfg.frames >= 3 else -1
        if steps < 0 or cfg.frames - 2 * steps - 2 < 1:
            raise ValueError(f"RAMS: needs at least 3 frames (got {cfg.frames})")
        if cfg.std <= 0:
            raise ValueError(f"RAMS: std must be > 0 (got {cfg.std})")
        self.config = cfg
        self.scale = cfg.scale
        self.frames = cfg.frames
        self.in_chans = 1
        self.reduction_steps = steps

        f, k = cfg.filters, cfg.kernel_size
        self.head = _wn_conv3d(1, f, k, k // 2)
        self.body = nn.Sequential(*[FeatureAttentionBlock(f, k, cfg.r) for _ in range(cfg.N)])
        self.body_tail = _wn_conv3d(f, f, k, k // 2)
        self.reductions = nn.Sequential(*[TemporalReduction(f, k, cfg.r) for _ in range(steps)])
        self.upscale = _wn_conv3d(f, cfg.scale ** 2, 3, 0)
        self.global_attention = TemporalAttentionBlock(cfg.frames, k, cfg.r)
        self.global_upscale = _wn_conv2d(cfg.frames, cfg.scale ** 2, 3, 0)
        self.shuffle = nn.PixelShuffle(cfg.scale)

    @property
    def hparams(self) -> Dict[str, Any]:
        """JSON-friendly hyper-parameters that rebuild this exact network."""
        return asdict(self.config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.frames:
            raise ValueError(
                f"RAMS expects [batch, {self.frames} frames, height, width]; got {tuple(x.shape)}"
            )
        cfg = self.config
        x = (x - cfg.mean) / cfg.std
        # Main path: one feature channel, frames as depth.
        v = _reflect_pad_hw(x.unsqueeze(1), 1)
        v = self.head(v)
        v = v + self.body_tail(self.body(v))
        v = self.reductions(v)
        v = self.upscale(v)[:, :, 0]  # [B, s^2, h, w]; T is 1 here for odd T
        main = self.shuffle(v)
        # Global residual path: frames as channels.
        g = safe_reflect_pad(x, (1, 1, 1, 1))
        g = self.global_upscale(self.global_attention(g))
        out = main + self.shuffle(g)
        return out * cfg.std + cfg.mean
