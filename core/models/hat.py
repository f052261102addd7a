"""HAT: Hybrid Attention Transformer for single-image SR (Chen et al., CVPR 2023).

A PyTorch re-implementation written against the paper and the official code
(read for facts only). Module, parameter and persistent-buffer names follow the
official implementation, so an official state dict (``params_ema``) loads with
``strict=True`` into the matching preset; see ``zoo.import_official_hat``.

What differs from the official code, and why:

* Features stay in a ``[B, H, W, C]`` layout between blocks (the official code
  keeps ``[B, H*W, C]`` and reshapes); the arithmetic is the same.
* Window attention runs through ``F.scaled_dot_product_attention`` with the
  relative-position bias (plus the shifted-window mask) as ``attn_mask``. The
  explicit ``softmax(q k^T * scale + bias) v`` path stays available
  (``model.set_attention_impl("explicit")``) and the tests prove both agree.
* Window partition and the cyclic shift are one ``index_select`` through
  precomputed index tables (:class:`WindowPlan`, built once per forward call
  and input size, with the shifted-window mask built from region labels by
  broadcasting instead of slice assignments).
* The overlapping cross-attention takes its key/value windows with
  ``Tensor.unfold`` on a zero-padded map, which is what ``nn.Unfold`` with
  padding computes.
* The input is padded inside the model (reflect) to a multiple of the window
  size and the output is cropped back, so any h, w >= 1 works.
* ``upsampler`` (see :mod:`.upsampling`): besides the official
  ``"pixelshuffle"`` (conv -> shuffle, what official imports and old cards
  rebuild), ``"resize_conv"`` (bilinear upsampling + a linear conv at the high
  resolution; the default for new networks: no 3-pixel checkerboard) and the
  shuffle variants ``"pixelshuffle_icnr"``, ``"pixelshuffle_balanced"`` and
  ``"pixelshuffle_degrid"`` (these keep the official state-dict layout).

Kept on purpose: the overlapping-attention position index uses the official
formula, whose shift leaves some entries negative; they index the bias table
from its end (PyTorch wrap-around), and trained official weights rely on it.

Input ``[B, in_chans, h, w]`` (model units), output ``[B, in_chans, s*h, s*w]``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .padding import pad_to_multiple
from .registry import (
    bool_rule,
    choice_rule,
    config_from_preset,
    float_rule,
    int_list_rule,
    int_rule,
    register,
)
from .upsampling import (
    DEFAULT_UPSAMPLER,
    LEGACY_UPSAMPLER,
    UPSAMPLERS,
    BalancedConv2d,
    Degrid,
    check_upsampler,
    icnr_,
    uses_balance,
    uses_degrid,
    uses_icnr,
)

__all__ = ["HATConfig", "HAT", "HAT_PRESETS", "hat_config", "ATTENTION_IMPLS", "WindowPlan", "window_plan",
           "Upsample", "ResizeConvUpsample"]

ATTENTION_IMPLS = ("sdpa", "explicit")
_MASK_VALUE = -100.0  # the official shifted-window mask value (not -inf)


@dataclass
class HATConfig:
    """Hyper-parameters of HAT. Defaults are the official 'HAT' (x3, window 16) set."""

    in_chans: int = 1
    scale: int = 3
    embed_dim: int = 180
    depths: List[int] = field(default_factory=lambda: [6] * 6)
    num_heads: List[int] = field(default_factory=lambda: [6] * 6)
    window_size: int = 16
    compress_ratio: int = 3
    squeeze_factor: int = 30
    conv_scale: float = 0.01
    overlap_ratio: float = 0.5
    mlp_ratio: float = 2.0
    qkv_bias: bool = True
    drop_path_rate: float = 0.1
    num_feat: int = 64
    img_range: float = 1.0
    patch_norm: bool = True
    resi_connection: str = "1conv"
    upsampler: str = DEFAULT_UPSAMPLER


_COMMON = dict(window_size=16, overlap_ratio=0.5, conv_scale=0.01, mlp_ratio=2.0, num_feat=64,
               upsampler=DEFAULT_UPSAMPLER, resi_connection="1conv", img_range=1.0)

#: Presets of the paper (HAT-S, HAT, HAT-L) and a tiny one for CPU tests and demos. The paper's
#: networks used ``upsampler="pixelshuffle"`` (give it to rebuild them exactly, as official imports do).
HAT_PRESETS: Dict[str, Dict[str, Any]] = {
    "hat-s": dict(_COMMON, embed_dim=144, depths=[6] * 6, num_heads=[6] * 6,
                  compress_ratio=24, squeeze_factor=24),
    "hat": dict(_COMMON, embed_dim=180, depths=[6] * 6, num_heads=[6] * 6,
                compress_ratio=3, squeeze_factor=30),
    "hat-l": dict(_COMMON, embed_dim=180, depths=[6] * 12, num_heads=[6] * 12,
                  compress_ratio=3, squeeze_factor=30),
    # Trains on a 2-core CPU in minutes: 2 groups of 2 blocks, 48 channels, 8x8 windows.
    "hat-tiny": dict(_COMMON, embed_dim=48, depths=[2, 2], num_heads=[3, 3], window_size=8,
                     compress_ratio=3, squeeze_factor=16, num_feat=32, drop_path_rate=0.0),
}


def hat_config(preset: Optional[str] = None, **overrides: Any) -> HATConfig:
    """A config from a preset name with keyword overrides (unknown keys refused)."""
    cfg = config_from_preset(HATConfig, HAT_PRESETS, "HAT", preset, overrides, fold_case=True)
    cfg.depths = [int(d) for d in cfg.depths]
    cfg.num_heads = [int(h) for h in cfg.num_heads]
    return cfg


# --------------------------------------------------------------------------- helpers


def _drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop the whole residual branch per sample."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


def _partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """``[B, H, W, *rest]`` -> ``[B, nW, ws*ws, *rest]`` (row-major windows, row-major pixels)."""
    b, h, w = x.shape[:3]
    rest = x.shape[3:]
    x = x.reshape(b, h // ws, ws, w // ws, ws, *rest)
    x = x.transpose(2, 3)  # B, nh, nw, ws, ws, ...
    return x.reshape(b, (h // ws) * (w // ws), ws * ws, *rest)


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
               impl: str) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + bias) v over the last two dims, fused (SDPA) or explicit.

    The fused CPU kernel is only taken for 4-D inputs with a 4-D mask, so SDPA
    gets 4-D views (a broadcast mask costs no memory there).
    """
    if impl == "sdpa":
        # q, k, v: [B, nW, heads, L, d]; bias: [heads, L, S] or [nW, heads, L, S].
        b = q.shape[0]
        if bias.ndim == 3:  # same bias for every window: windows join the batch
            q4, k4, v4 = (t.reshape(-1, *t.shape[-3:]) for t in (q, k, v))
            mask4 = bias.unsqueeze(0)
        else:  # one bias per window: windows join the heads, the mask broadcasts over B
            q4, k4, v4 = (t.reshape(b, -1, *t.shape[-2:]) for t in (q, k, v))
            mask4 = bias.reshape(1, -1, *bias.shape[-2:])
        out = F.scaled_dot_product_attention(q4, k4, v4, attn_mask=mask4)
        return out.reshape(q.shape[:-1] + v.shape[-1:])
    scale = q.shape[-1] ** -0.5
    attn = (q * scale) @ k.transpose(-2, -1) + bias
    return attn.softmax(dim=-1) @ v


def relative_position_index_sa(ws: int) -> torch.Tensor:
    """``[ws*ws, ws*ws]`` index into the ``(2ws-1)^2`` bias table of window self-attention."""
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :] + (ws - 1)  # 2, n, n
    return rel[0] * (2 * ws - 1) + rel[1]


def relative_position_index_oca(ws: int, overlap_ratio: float) -> torch.Tensor:
    """``[ws*ws, ow*ow]`` index into the ``(ws+ow-1)^2`` table of overlapping cross-attention."""
    ow = ws + int(overlap_ratio * ws)
    ori = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    ext = torch.stack(torch.meshgrid(torch.arange(ow), torch.arange(ow), indexing="ij")).flatten(1)
    rel = ext[:, None, :] - ori[:, :, None] + (ws - ow + 1)  # 2, ws*ws, ow*ow
    return rel[0] * (ws + ow - 1) + rel[1]


def shifted_window_mask(h: int, w: int, ws: int, shift: int, device=None) -> torch.Tensor:
    """``[nW, ws*ws, ws*ws]`` additive mask (0 / -100) for shifted windows on an h x w map.

    After the cyclic shift, windows on the last row/column mix pixels from
    opposite borders; each pixel gets a region label (3 bands per axis, cut at
    ``side - ws`` and ``side - shift``) and attention across labels is masked.
    """
    def bands(n: int) -> torch.Tensor:
        idx = torch.arange(n, device=device)
        return (idx >= n - ws).long() + (idx >= n - shift).long()

    labels = bands(h)[:, None] * 3 + bands(w)[None, :]  # h, w
    win = _partition(labels[None, :, :, None], ws)[0, :, :, 0]  # nW, n
    diff = win[:, None, :] != win[:, :, None]
    return torch.zeros(diff.shape, device=device).masked_fill_(diff, _MASK_VALUE)


@dataclass
class WindowPlan:
    """Index tables for one feature-map size, built once per forward and shared by all blocks.

    ``gather[shifted]`` lists, window by window and pixel by pixel, the flat
    position of the source pixel, with the cyclic shift folded in: one
    ``index_select`` replaces the official roll + partition (two copies), and
    ``scatter[shifted]`` (the inverse permutation) replaces reverse + roll back.
    ``inner`` / ``border`` split the shifted windows into those the mask leaves
    alone and those (last row / column) that need it.
    """

    h: int
    w: int
    window_size: int
    gather: Dict[bool, torch.Tensor]
    scatter: Dict[bool, torch.Tensor]
    mask: torch.Tensor  # nW, n, n
    inner: torch.Tensor
    border: torch.Tensor

    @property
    def num_windows(self) -> int:
        return (self.h // self.window_size) * (self.w // self.window_size)


def window_plan(h: int, w: int, ws: int, shift: int, device=None, dtype=torch.float32) -> WindowPlan:
    """The :class:`WindowPlan` of an ``h x w`` map (multiples of ``ws``) and a shift."""
    rows = torch.arange(h, device=device)
    cols = torch.arange(w, device=device)
    gather: Dict[bool, torch.Tensor] = {}
    scatter: Dict[bool, torch.Tensor] = {}
    for shifted, s in ((False, 0), (True, shift)):
        # Position (i, j) of the map rolled by -s holds source pixel ((i+s) % h, (j+s) % w).
        flat = ((rows + s) % h)[:, None] * w + ((cols + s) % w)[None, :]
        g = _partition(flat[None, :, :, None], ws).reshape(-1)
        inv = torch.empty_like(g)
        inv[g] = torch.arange(g.numel(), device=device)
        gather[shifted], scatter[shifted] = g, inv
    mask = shifted_window_mask(h, w, ws, shift, device=device).to(dtype)
    # The mask is non-zero exactly on the last row and the last column of windows
    # (they hold pixels from opposite borders); listed without looking at data,
    # so the plan also builds on the meta device (FLOP counting).
    nh, nw = h // ws, w // ws
    border = [i for i in range(nh * nw) if shift > 0 and (i // nw == nh - 1 or i % nw == nw - 1)]
    inner = sorted(set(range(nh * nw)) - set(border))
    return WindowPlan(h, w, ws, gather, scatter, mask, torch.tensor(inner, dtype=torch.long, device=device),
                      torch.tensor(border, dtype=torch.long, device=device))


def _to_windows(x: torch.Tensor, index: torch.Tensor, num_windows: int) -> torch.Tensor:
    """``[B, H, W, C]`` -> ``[B, nW, n, C]`` through a plan's gather index (one copy)."""
    b, c = x.shape[0], x.shape[-1]
    return x.reshape(b, -1, c).index_select(1, index).view(b, num_windows, -1, c)


def _from_windows(x: torch.Tensor, index: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``[B, nW, n, C]`` -> ``[B, H, W, C]`` through a plan's scatter index (one copy)."""
    b, c = x.shape[0], x.shape[-1]
    return x.reshape(b, -1, c).index_select(1, index).view(b, h, w, c)


# --------------------------------------------------------------------------- modules


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
            out = _attention(q, k, v, bias, self.impl)
        elif self.impl == "explicit":
            out = _attention(q, k, v, bias + plan.mask.unsqueeze(1).to(bias.dtype), self.impl)
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
            return _attention(q, k, v, bias + plan.mask.unsqueeze(1).to(bias.dtype), "sdpa")
        def pick(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            return t.index_select(1, idx)  # about twice as fast as t[:, idx] on these strided views

        out = q.new_empty(q.shape)
        out.index_copy_(1, inner, _attention(pick(q, inner), pick(k, inner), pick(v, inner), bias, "sdpa"))
        border_bias = bias + plan.mask.index_select(0, border).unsqueeze(1).to(bias.dtype)  # nB, heads, n, n
        out.index_copy_(1, border, _attention(pick(q, border), pick(k, border), pick(v, border), border_bias, "sdpa"))
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
        windows = _to_windows(y, plan.gather[shifted], plan.num_windows)
        windows = self.attn(windows, rpi_sa, plan if shifted else None)
        y = _from_windows(windows, plan.scatter[shifted], h, w)
        x = shortcut + _drop_path(y, self.drop_path, self.training) + conv_x * self.conv_scale
        return x + _drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)


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
        q = _to_windows(qkv[..., :c], plan.gather[False], plan.num_windows)  # B, nW, n, C
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
        out = _attention(q, k, v, bias, self.impl)  # B, nW, heads, n, d
        out = _from_windows(out.transpose(2, 3).reshape(b, nw, n, c), plan.scatter[False], h, w)
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


@register("hat", task="sr", presets=HAT_PRESETS, default_preset="hat")
class HAT(nn.Module):
    """Hybrid Attention Transformer. ``forward(x [B, C, h, w]) -> [B, C, s*h, s*w]``.

    Build from a preset with ``HAT(preset="hat-s", in_chans=1)`` or give every
    hyper-parameter (see :class:`HATConfig`). ``in_chans`` bands go in and come
    out (e.g. 4 for B02, B03, B04, B08).
    """

    ARCH = "hat"
    LEGACY_HPARAMS = {"upsampler": LEGACY_UPSAMPLER}
    HPARAM_RULES = {
        "in_chans": int_rule(1, 64), "scale": int_rule(1, 8), "embed_dim": int_rule(1, 2048),
        "depths": int_list_rule(1, 64, max_len=32), "num_heads": int_list_rule(1, 64, max_len=32),
        "window_size": int_rule(2, 64), "compress_ratio": int_rule(1, 2048), "squeeze_factor": int_rule(1, 2048),
        "conv_scale": float_rule(0.0, 10.0), "overlap_ratio": float_rule(0.0, 1.0),
        "mlp_ratio": float_rule(0.0, 16.0, open_lo=True), "qkv_bias": bool_rule(),
        "drop_path_rate": float_rule(0.0, 1.0), "num_feat": int_rule(1, 2048),
        "img_range": float_rule(0.0, 1e6, open_lo=True), "patch_norm": bool_rule(),
        "resi_connection": choice_rule("1conv", "identity"), "upsampler": choice_rule(*UPSAMPLERS),
    }

    def __init__(self, preset: Optional[str] = None, **hparams: Any) -> None:
        super().__init__()
        cfg = hat_config(preset, **hparams)
        check_upsampler(cfg.upsampler, "HAT")
        if len(cfg.depths) != len(cfg.num_heads):
            raise ValueError("HAT: depths and num_heads must have the same length")
        for heads in cfg.num_heads:
            if cfg.embed_dim % heads:
                raise ValueError(f"HAT: embed_dim {cfg.embed_dim} is not divisible by {heads} heads")
        if cfg.window_size < 2:
            raise ValueError("HAT: window_size must be at least 2")
        self.config = cfg
        self.scale = int(cfg.scale)
        self.frames = 1
        self.in_chans = int(cfg.in_chans)
        self.window_size = int(cfg.window_size)
        self.img_range = float(cfg.img_range)
        dim = cfg.embed_dim

        # The official code subtracts the DIV2K RGB mean for 3-band inputs only.
        mean = torch.tensor([0.4488, 0.4371, 0.4040]) if cfg.in_chans == 3 else torch.zeros(cfg.in_chans)
        self.register_buffer("mean", mean.view(1, -1, 1, 1), persistent=False)
        # Index tables are computed on the CPU and moved: on the meta device (shape checks of a
        # checkpoint, FLOP counts) meshgrid would run PyTorch's Python reference, importing torch._dynamo.
        here = torch.empty(0).device
        with torch.device("cpu"):
            rpi_sa = relative_position_index_sa(cfg.window_size)
            rpi_oca = relative_position_index_oca(cfg.window_size, cfg.overlap_ratio)
        self.register_buffer("relative_position_index_SA", rpi_sa.to(here))
        self.register_buffer("relative_position_index_OCA", rpi_oca.to(here))

        self.conv_first = nn.Conv2d(cfg.in_chans, dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(dim, cfg.patch_norm)
        total = sum(cfg.depths)  # stochastic depth grows linearly from 0 over all blocks
        dpr = [cfg.drop_path_rate * i / max(1, total - 1) for i in range(total)]
        self.layers = nn.ModuleList()
        start = 0
        for depth, heads in zip(cfg.depths, cfg.num_heads):
            self.layers.append(RHAG(
                dim, cfg.resi_connection, depth=depth, num_heads=heads, window_size=cfg.window_size,
                compress_ratio=cfg.compress_ratio, squeeze_factor=cfg.squeeze_factor,
                conv_scale=cfg.conv_scale, overlap_ratio=cfg.overlap_ratio, mlp_ratio=cfg.mlp_ratio,
                qkv_bias=cfg.qkv_bias, drop_path=dpr[start:start + depth]))
            start += depth
        self.norm = nn.LayerNorm(dim)
        self.conv_after_body = nn.Conv2d(dim, dim, 3, 1, 1) if cfg.resi_connection == "1conv" else nn.Identity()
        self.conv_before_upsample = nn.Sequential(nn.Conv2d(dim, cfg.num_feat, 3, 1, 1), nn.LeakyReLU(inplace=True))
        if cfg.upsampler == "resize_conv":
            self.upsample = ResizeConvUpsample(cfg.scale, cfg.num_feat)
        else:
            self.upsample = Upsample(cfg.scale, cfg.num_feat, icnr=uses_icnr(cfg.upsampler),
                                     balance=uses_balance(cfg.upsampler))
        self.conv_last = nn.Conv2d(cfg.num_feat, cfg.in_chans, 3, 1, 1)
        self.degrid = Degrid(cfg.scale) if uses_degrid(cfg.upsampler) else None
        self.apply(self._init_weights)
        for m in self.modules():
            if isinstance(m, (WindowAttention, OCAB)):
                nn.init.trunc_normal_(m.relative_position_bias_table, std=0.02)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    @property
    def hparams(self) -> Dict[str, Any]:
        """JSON-friendly hyper-parameters that rebuild this exact network."""
        return asdict(self.config)

    @property
    def attention_impl(self) -> str:
        return next(m.impl for m in self.modules() if isinstance(m, (WindowAttention, OCAB)))

    def set_attention_impl(self, impl: str) -> HAT:
        """Choose ``"sdpa"`` (fused kernel, default) or ``"explicit"`` (softmax formula) attention."""
        if impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention implementation must be one of {ATTENTION_IMPLS} (got {impl!r})")
        for m in self.modules():
            if isinstance(m, (WindowAttention, OCAB)):
                m.impl = impl
        return self

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Deep features of ``x [B, C, H, W]`` (H, W multiples of the window)."""
        h, w = x.shape[-2:]
        ws = self.window_size
        plan = window_plan(h, w, ws, ws // 2, device=x.device, dtype=x.dtype)
        t = self.patch_embed(x.permute(0, 2, 3, 1))  # B, H, W, C
        for layer in self.layers:
            t = layer(t, self.relative_position_index_SA, self.relative_position_index_OCA, plan)
        return self.norm(t).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"HAT expects [batch, {self.in_chans} channel(s), height, width]; got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.window_size)
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.img_range
        x = self.conv_first(x)
        x = self.conv_after_body(self.forward_features(x)) + x
        x = self.conv_last(self.upsample(self.conv_before_upsample(x)))
        if self.degrid is not None:
            x = self.degrid(x)
        x = x / self.img_range + mean
        return x[..., : h * self.scale, : w * self.scale]
