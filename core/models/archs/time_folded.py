"""3-D convolutions over (time, height, width) run as 2-D convolutions on time-major, channels-last frames.

Why: PyTorch's CPU ``conv3d`` reaches oneDNN only for large enough inputs
(batch x channels x depth x rows); below that it falls onto a native kernel
that runs at a few % of the machine's peak. RAMS's 3-D body is 16-32 features
wide and 3-9 frames deep, so most of its layers land there: on 128-px LR tiles
the shipped RAMS ran at ~9 % of the matmul peak. A ``k_t x k x k`` kernel over
time is the sum of ``k_t`` 2-D ``k x k`` convolutions of neighbouring frames,
and 2-D convolutions on channels-last tensors always take oneDNN's fast path.

Layout used here: ``x [B*T, C, H, W]`` in ``torch.channels_last`` memory,
frames of one sample consecutive (time-major). Padding in time is zeros, as in
``nn.Conv3d``. The results equal ``nn.Conv3d``'s to float rounding (a
different summation order; the tests hold the whole network to 1e-4). The
modules stay ``nn.Conv3d`` (weight-normalised or balanced), so checkpoints do
not change: only the arithmetic is arranged differently.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..upsampling import SubpixelBalanced, balance_subpixel

__all__ = ["conv3d_weights", "temporal_conv", "to_frames", "frames_view", "channel_gate"]

CHANNELS_LAST = torch.channels_last


def conv3d_weights(conv: nn.Conv3d) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """The weight and bias a 3-D convolution applies (weight norm computed, sub-pixel balance applied)."""
    if isinstance(conv, SubpixelBalanced):
        return balance_subpixel(conv.weight, conv.bias, conv.subpixel_scale)
    return conv.weight, conv.bias


def to_frames(x: torch.Tensor) -> torch.Tensor:
    """``[B, T, C, H, W]`` -> time-major channels-last ``[B*T, C, H, W]``."""
    b, t, c, h, w = x.shape
    return x.reshape(b * t, c, h, w).contiguous(memory_format=CHANNELS_LAST)


def frames_view(x: torch.Tensor, frames: int) -> torch.Tensor:
    """``[B*T, C, H, W]`` viewed as ``[B, T, C, H, W]`` (no copy)."""
    return x.view(x.shape[0] // frames, frames, *x.shape[1:])


def temporal_conv(x: torch.Tensor, frames: int, conv: nn.Conv3d) -> Tuple[torch.Tensor, int]:
    """``conv`` (an ``nn.Conv3d`` with stride 1, no dilation, no groups) on time-major frames.

    Returns the output frames and their count per sample: ``T + 2 p_t - k_t + 1``.
    Output frame ``t`` is ``bias + sum_d conv2d(x[t + d - p_t], w[:, :, d])`` over
    the taps whose source frame exists (zero padding contributes nothing).
    """
    if conv.stride != (1, 1, 1) or conv.dilation != (1, 1, 1) or conv.groups != 1:
        raise ValueError("temporal_conv: only stride 1, dilation 1 and groups 1 are supported")
    weight, bias = conv3d_weights(conv)
    k_t, p_t = weight.shape[2], conv.padding[0]
    pad_hw = tuple(conv.padding[1:])
    batch = x.shape[0] // frames
    t_out = frames + 2 * p_t - k_t + 1
    if t_out < 1:
        raise ValueError(f"temporal_conv: {frames} frames are too few for a {k_t}-frame kernel")
    if weight.shape[0] >= weight.shape[1]:
        return _taps_as_channels(x, frames, weight, bias, p_t, pad_hw, t_out), t_out
    out: Optional[torch.Tensor] = None
    for d in range(k_t):
        # Output frames t in [lo, hi) read source frames t + d - p_t, all inside [0, frames).
        lo, hi = max(0, p_t - d), min(t_out, frames + p_t - d)
        if hi <= lo:
            continue
        kernel = weight[:, :, d].contiguous(memory_format=CHANNELS_LAST)
        if batch == 1:  # a contiguous run of frames: convolve only the ones used
            part5 = F.conv2d(x[lo + d - p_t: hi + d - p_t], kernel, None, padding=pad_hw).unsqueeze(0)
        else:
            part = F.conv2d(x, kernel, None, padding=pad_hw)
            part5 = frames_view(part, frames)[:, lo + d - p_t: hi + d - p_t]
        if out is None and (lo, hi) == (0, t_out):
            out = part5  # a fresh tensor: summing into it in place is safe, for autograd too
        else:
            if out is None:
                out = part5.new_zeros((batch, t_out) + part5.shape[2:])
            out[:, lo:hi] += part5  # conv2d's backward never needs its output, so in place is safe
    assert out is not None
    if bias is not None:
        out = out + bias.view(1, 1, -1, 1, 1)
    flat = out.reshape(batch * t_out, *out.shape[2:])
    return flat.contiguous(memory_format=CHANNELS_LAST), t_out


def _taps_as_channels(x: torch.Tensor, frames: int, weight: torch.Tensor, bias: Optional[torch.Tensor], p_t: int,
                      pad_hw: Tuple[int, ...], t_out: int) -> torch.Tensor:
    """The temporal convolution as one 2-D convolution over the ``k_t`` neighbouring frames stacked as channels.

    Why both forms: summing ``k_t`` per-tap outputs costs ``k_t - 1`` passes over
    the output in strided adds; stacking costs one copy of ``k_t`` times the
    input. Where a layer widens or keeps its width (``C_out >= C_in``), the one
    wider convolution is faster (RAMS's first layer, 4 -> 32 features, about 3x);
    where it narrows, the per-tap sum reads less. Time padding is zero frames.
    """
    cout, cin, k_t = weight.shape[:3]
    batch = x.shape[0] // frames
    h, w = x.shape[-2:]
    x5 = x.permute(0, 2, 3, 1).reshape(batch, frames, h, w, cin)  # the channels-last memory as it lies
    if p_t:
        x5 = F.pad(x5, (0, 0, 0, 0, 0, 0, p_t, p_t))
    taps = torch.stack([x5[:, d:d + t_out] for d in range(k_t)], dim=4)  # [B, T_out, H, W, k_t, C]
    inp = taps.reshape(batch * t_out, h, w, k_t * cin).permute(0, 3, 1, 2)  # channels-last, channel = d * C + c
    kernel = weight.permute(0, 2, 1, 3, 4).reshape(cout, k_t * cin, *weight.shape[3:])
    out = F.conv2d(inp, kernel.contiguous(memory_format=CHANNELS_LAST), bias, padding=pad_hw)
    return out.contiguous(memory_format=CHANNELS_LAST)


def channel_gate(x: torch.Tensor, y: torch.Tensor, frames: int, squeeze: nn.Conv3d,
                 excite: nn.Conv3d) -> torch.Tensor:
    """``x + y * sigmoid(excite(relu(squeeze(mean_{T,H,W} y))))`` on time-major frames (squeeze-excitation)."""
    y5 = frames_view(y, frames)
    a = y5.mean(dim=(1, 3, 4))  # [B, C]
    a = a.view(a.shape[0], a.shape[1], 1, 1, 1)
    a = torch.sigmoid(excite(F.relu(squeeze(a))))  # the 1x1x1 convolutions on the pooled values
    gate = a.view(a.shape[0], 1, a.shape[1], 1, 1)
    out5 = frames_view(x, frames) + y5 * gate
    return out5.reshape(x.shape).contiguous(memory_format=CHANNELS_LAST)
