"""HAT's building blocks (channel attention, hybrid and overlapping cross-attention blocks, upsamplers).

Module and parameter names follow the official implementation so that an
official state dict loads with ``strict=True``.
"""

from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...upsampling import BalancedConv2d, icnr_
from .windows import WindowPlan, from_windows, stochastic_depth, to_windows, window_attention

__all__ = ["ChannelAttention", "CAB", "Mlp", "WindowAttention", "HAB", "OCAB", "AttenBlocks", "RHAG",
           "PatchEmbed", "Upsample", "ResizeConvUpsample"]


class ChannelAttention(nn.Module):
    """Squeeze-excitation (as in RCAN): channel weights from the global average."""

    def __init__(self, num_feat: int, squeeze_factor: int) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(num_feat, num_feat // squeeze_factor, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(num_feat // squeeze_factor, num_feat, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class CAB(nn.Module):
    """Channel-attention block: the convolutional branch of each HAB."""

    def __init__(self, num_feat: int, compress_ratio: int, squeeze_factor: int) -> None:
        super().__init__()
        mid = num_feat // compress_ratio
        self.cab = nn.Sequential(
            nn.Conv2d(num_feat, mid, 3, 1, 1),
            nn.GELU(),
            nn.Conv2d(mid, num_feat, 3, 1, 1),
            ChannelAttention(num_feat, squeeze_factor),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cab(x)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside (possibly shifted) windows with relative-position bias."""

    def __init__(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.impl = "sdpa"
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def bias(self, rpi: torch.Tensor) -> torch.Tensor:
        """``[heads, n, n]`` relative-position bias gathered from the table."""
        n = self.window_size ** 2
        return self.relative_position_bias_table.index_select(0, rpi.reshape(-1)).reshape(n, n, -1).permute(2, 0, 1)

    def forward(self, windows: torch.Tensor, rpi: torch.Tensor, plan: Optional[WindowPlan]) -> torch.Tensor:
        """``[B, nW, n, C]`` windows -> attended and projected windows of the same shape.

        ``plan`` is given for shifted windows (its mask applies), None otherwise.
        """
        b, nw, n, c = windows.shape
        nh = self.num_heads
        qkv = self.qkv(windows).reshape(b, nw, n, 3, nh, c // nh).permute(3, 0, 1, 4, 2, 5)
        q, k, v = qkv.unbind(0)  # B, nW, heads, n, d
        bias = self.bias(rpi)  # heads, n, n
        if plan is None:
            out = window_attention(q, k, v, bias, self.impl)
        elif self.impl == "explicit":
            out = window_attention(q, k, v, bias + plan.mask.unsqueeze(1).to(bias.dtype), self.impl)
        else:
            out = self._masked_sdpa(q, k, v, bias, plan)
        return self.proj(out.transpose(2, 3).reshape(b, nw, n, c))

    @staticmethod
    def _masked_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
                     plan: WindowPlan) -> torch.Tensor:
        """Shifted-window attention that builds the per-window mask only where it is not zero.

        Only windows on the last row or column of a shifted map mix pixels from
        opposite borders; the others need the bias alone. Building the full
        ``[nW, heads, n, n]`` mask would cost as much memory as the attention
        matrix itself, which the fused kernel otherwise never materialises.
        """
        inner, border = plan.inner, plan.border
        if inner.numel() == 0:
            return window_attention(q, k, v, bias + plan.mask.unsqueeze(1).to(bias.dtype), "sdpa")
        def pick(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            return t.index_select(1, idx)  # about twice as fast as t[:, idx] on these strided views

        out = q.new_empty(q.shape)
        out.index_copy_(1, inner, window_attention(pick(q, inner), pick(k, inner), pick(v, inner), bias, "sdpa"))
        border_bias = bias + plan.mask.index_select(0, border).unsqueeze(1).to(bias.dtype)  # nB, heads, n, n
        out.index_copy_(1, border, window_attention(pick(q, border), pick(k, border), pick(v, border), border_bias, "sdpa"))
        return out


class HAB(nn.Module):
    """Hybrid attention block: (shifted) window attention + scaled channel-attention conv + MLP."""

    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, compress_ratio: int,
                 squeeze_factor: int, conv_scale: float, mlp_ratio: float, qkv_bias: bool,
                 drop_path: float) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.conv_scale = conv_scale
        self.drop_path = float(drop_path)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias)
        self.conv_block = CAB(dim, compress_ratio, squeeze_factor)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, rpi_sa: torch.Tensor, plan: WindowPlan) -> torch.Tensor:
        b, h, w, c = x.shape
        shortcut = x
        y = self.norm1(x)
        conv_x = self.conv_block(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        shifted = self.shift_size > 0
        windows = to_windows(y, plan.gather[shifted], plan.num_windows)
        windows = self.attn(windows, rpi_sa, plan if shifted else None)
        y = from_windows(windows, plan.scatter[shifted], h, w)
        x = shortcut + stochastic_depth(y, self.drop_path, self.training) + conv_x * self.conv_scale
        return x + stochastic_depth(self.mlp(self.norm2(x)), self.drop_path, self.training)


class OCAB(nn.Module):
    """Overlapping cross-attention: queries from windows, keys/values from enlarged windows."""

    def __init__(self, dim: int, window_size: int, overlap_ratio: float, num_heads: int,
                 qkv_bias: bool, mlp_ratio: float) -> None:
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.overlap_win_size = int(window_size * overlap_ratio) + window_size
        self.impl = "sdpa"
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((window_size + self.overlap_win_size - 1) ** 2, num_heads))
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, rpi_oca: torch.Tensor, plan: WindowPlan) -> torch.Tensor:
        b, h, w, c = x.shape
        ws, ow, nh = self.window_size, self.overlap_win_size, self.num_heads
        d = c // nh
        shortcut = x
        qkv = self.qkv(self.norm1(x))  # B, H, W, 3C
        q = to_windows(qkv[..., :c], plan.gather[False], plan.num_windows)  # B, nW, n, C
        nw, n = q.shape[1], q.shape[2]
        q = q.view(b, nw, n, nh, d).transpose(2, 3)  # B, nW, heads, n, d
        # Key/value windows of side ow centred on each query window; zero outside the map.
        p = (ow - ws) // 2
        kv = F.pad(qkv[..., c:], (0, 0, p, p, p, p))  # B, H+2p, W+2p, 2C
        kv = kv.unfold(1, ow, ws).unfold(2, ow, ws)  # B, nh, nw, 2C, ow, ow (a strided view)
        # One copy into [B, nW, ow*ow, 2C]: channels last, as the fused kernel needs d contiguous.
        kv = kv.permute(0, 1, 2, 4, 5, 3).reshape(b, nw, ow * ow, 2, nh, d)
        k, v = kv.permute(3, 0, 1, 4, 2, 5).unbind(0)  # B, nW, heads, ow*ow, d
        table = self.relative_position_bias_table
        # ``% len``: the official index has negative entries that count from the table's end.
        bias = table.index_select(0, rpi_oca.reshape(-1) % table.shape[0]).reshape(n, ow * ow, -1).permute(2, 0, 1)
        out = window_attention(q, k, v, bias, self.impl)  # B, nW, heads, n, d
        out = from_windows(out.transpose(2, 3).reshape(b, nw, n, c), plan.scatter[False], h, w)
        x = self.proj(out) + shortcut
        return x + self.mlp(self.norm2(x))


class AttenBlocks(nn.Module):
    """The HABs of one group (alternating plain / shifted windows) followed by one OCAB."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, compress_ratio: int,
                 squeeze_factor: int, conv_scale: float, overlap_ratio: float, mlp_ratio: float,
                 qkv_bias: bool, drop_path: Sequence[float]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([
            HAB(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2, compress_ratio,
                squeeze_factor, conv_scale, mlp_ratio, qkv_bias, drop_path[i])
            for i in range(depth)
        ])
        self.overlap_attn = OCAB(dim, window_size, overlap_ratio, num_heads, qkv_bias, mlp_ratio)

    def forward(self, x: torch.Tensor, rpi_sa: torch.Tensor, rpi_oca: torch.Tensor,
                plan: WindowPlan) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x, rpi_sa, plan)
        return self.overlap_attn(x, rpi_oca, plan)


class RHAG(nn.Module):
    """Residual hybrid attention group: blocks, a 3x3 conv, and a skip over both."""

    def __init__(self, dim: int, resi_connection: str, **kwargs: Any) -> None:
        super().__init__()
        self.residual_group = AttenBlocks(dim, **kwargs)
        if resi_connection == "1conv":
            self.conv = nn.Conv2d(dim, dim, 3, 1, 1)
        elif resi_connection == "identity":
            self.conv = nn.Identity()
        else:
            raise ValueError(f"HAT: resi_connection must be '1conv' or 'identity' (got {resi_connection!r})")

    def forward(self, x: torch.Tensor, rpi_sa: torch.Tensor, rpi_oca: torch.Tensor,
                plan: WindowPlan) -> torch.Tensor:
        y = self.residual_group(x, rpi_sa, rpi_oca, plan)
        return self.conv(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1) + x


class PatchEmbed(nn.Module):
    """Holds the optional LayerNorm applied to the tokens (named as in the official code)."""

    def __init__(self, dim: int, norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x) if self.norm is not None else x


class Upsample(nn.Sequential):
    """Pixel-shuffle upsampler for scale 2^n or 3 (as in the official code).

    ``icnr``: identical sub-kernels at init; ``balance``: sub-kernels with tied
    sums throughout (:class:`.upsampling.BalancedConv2d`, same state-dict names).
    """

    def __init__(self, scale: int, num_feat: int, icnr: bool = False, balance: bool = False) -> None:
        def conv(factor: int) -> nn.Module:
            if balance:
                return BalancedConv2d(num_feat, factor * factor * num_feat, 3, 1, 1, subpixel_scale=factor)
            return nn.Conv2d(num_feat, factor * factor * num_feat, 3, 1, 1)

        layers: List[nn.Module] = []
        if scale >= 1 and (scale & (scale - 1)) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [conv(2), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [conv(3), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"HAT: scale {scale} is not supported (2^n or 3)")
        super().__init__(*layers)
        if icnr:
            for conv, shuffle in zip(layers[::2], layers[1::2]):
                icnr_([conv.weight, conv.bias], shuffle.upscale_factor)


class ResizeConvUpsample(nn.Sequential):
    """Bilinear upsampling, then a 3x3 conv at the high resolution (no sub-pixel kernels).

    No activation follows: interpolated noise has a variance that repeats
    every ``scale`` pixels, and a nonlinearity would turn that into a faint
    grid of its own. The conv costs as much as the pixel-shuffle conv it
    replaces (``num_feat^2 * 9`` per HR pixel vs ``num_feat * 9 num_feat * 9``
    per LR pixel).
    """

    def __init__(self, scale: int, num_feat: int) -> None:
        super().__init__(nn.Upsample(scale_factor=scale, mode="bilinear", align_corners=False),
                         nn.Conv2d(num_feat, num_feat, 3, 1, 1))
