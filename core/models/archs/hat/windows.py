"""HAT's window machinery: partitions, relative-position indices, shifted-window masks, attention.

Kept apart from the blocks because it is pure tensor bookkeeping (no
parameters): the index tables are what an official state dict's persistent
buffers hold, and the tests check them against the official formulas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import torch
import torch.nn.functional as F

__all__ = ["MASK_VALUE", "stochastic_depth", "partition_windows", "window_attention", "relative_position_index_sa",
           "relative_position_index_oca", "shifted_window_mask", "WindowPlan", "window_plan", "to_windows",
           "from_windows"]

MASK_VALUE = -100.0  # the official shifted-window mask value (not -inf)


def stochastic_depth(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop the whole residual branch per sample."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


def partition_windows(x: torch.Tensor, ws: int) -> torch.Tensor:
    """``[B, H, W, *rest]`` -> ``[B, nW, ws*ws, *rest]`` (row-major windows, row-major pixels)."""
    b, h, w = x.shape[:3]
    rest = x.shape[3:]
    x = x.reshape(b, h // ws, ws, w // ws, ws, *rest)
    x = x.transpose(2, 3)  # B, nh, nw, ws, ws, ...
    return x.reshape(b, (h // ws) * (w // ws), ws * ws, *rest)


def window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
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
    win = partition_windows(labels[None, :, :, None], ws)[0, :, :, 0]  # nW, n
    diff = win[:, None, :] != win[:, :, None]
    return torch.zeros(diff.shape, device=device).masked_fill_(diff, MASK_VALUE)


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
        g = partition_windows(flat[None, :, :, None], ws).reshape(-1)
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


def to_windows(x: torch.Tensor, index: torch.Tensor, num_windows: int) -> torch.Tensor:
    """``[B, H, W, C]`` -> ``[B, nW, n, C]`` through a plan's gather index (one copy)."""
    b, c = x.shape[0], x.shape[-1]
    return x.reshape(b, -1, c).index_select(1, index).view(b, num_windows, -1, c)


def from_windows(x: torch.Tensor, index: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``[B, nW, n, C]`` -> ``[B, H, W, C]`` through a plan's scatter index (one copy)."""
    b, c = x.shape[0], x.shape[-1]
    return x.reshape(b, -1, c).index_select(1, index).view(b, h, w, c)


# --------------------------------------------------------------------------- modules
