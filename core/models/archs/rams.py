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

Bands (``in_chans = C``, default 1): the bands of a revisit are the feature
channels of the 3-D head (``Conv3D C -> F``), so the whole body runs once for
all bands; only the head, the upscaling convolutions (``F -> s*s*C``) and the
global path (``T*C`` channels) grow with C. A 4-band pass costs little more
than a 1-band pass, instead of four.

Input ``[B, T, C, h, w]`` or, equivalently, ``[B, T*C, h, w]`` with the frames
outermost (``x.reshape(B, T*C, h, w)`` of the 5-D form, so one band is the
familiar ``[B, T, h, w]``); model units. Output ``[B, C, s*h, s*w]``.

Upsampling (``upsampler``, see :mod:`.upsampling`): in the original network
both paths end in a pixel shuffle (``"pixelshuffle"``, what a card without the
key rebuilds; the shuffles are applied to the paths' sum, the same thing for
one pass instead of two). New networks use ``"resize_conv"``: each path's
features are interpolated bilinearly (trilinearly over H, W for the 3-D path)
and its last convolution runs at the high resolution with C outputs, which
leaves no 3-pixel checkerboard.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Mapping, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm

from ..padding import safe_reflect_pad
from .time_folded import channel_gate, frames_view, temporal_conv, to_frames
from ..registry import TileDefaults, choice_rule, float_rule, int_rule, register
from ..upsampling import (
    DEFAULT_UPSAMPLER,
    LEGACY_UPSAMPLER,
    UPSAMPLERS,
    BalancedConv2d,
    BalancedConv3d,
    Degrid,
    check_upsampler,
    icnr_,
    uses_balance,
    uses_degrid,
    uses_icnr,
)

__all__ = ["RAMSConfig", "RAMS", "RAMS_PRESETS", "count_parameters", "PAPER_PARAMS", "PAPER_PARAMS_WITH_GAIN"]

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
    units the defaults 0 / 1 make this a no-op. ``in_chans``: bands per frame.
    ``upsampler``: one of :data:`.upsampling.UPSAMPLERS`.
    """

    scale: int = 3
    frames: int = 9
    filters: int = 32
    kernel_size: int = 3
    r: int = 8
    N: int = 12
    mean: float = 0.0
    std: float = 1.0
    in_chans: int = 1
    upsampler: str = DEFAULT_UPSAMPLER


def _wn_conv3d(cin: int, cout: int, k: int, padding: int, balance: int = 0) -> nn.Module:
    """Weight-normalized Conv3d; ``balance`` = the scale of the pixel shuffle it feeds, to tie its sub-kernels."""
    conv = BalancedConv3d(cin, cout, k, padding=padding, subpixel_scale=balance) if balance else \
        nn.Conv3d(cin, cout, k, padding=padding)
    return weight_norm(conv, dim=0)


def _wn_conv2d(cin: int, cout: int, k: int, padding: int, balance: int = 0) -> nn.Module:
    conv = BalancedConv2d(cin, cout, k, padding=padding, subpixel_scale=balance) if balance else \
        nn.Conv2d(cin, cout, k, padding=padding)
    return weight_norm(conv, dim=0)


class _AttentionBlock(nn.Module):
    """Residual block with squeeze-excitation: two convolutions, their output scaled per channel.

    ``conv`` builds the (weight-normalized) convolutions and ``dims`` are the axes the
    attention averages over; the two subclasses differ in nothing else.
    """

    def __init__(self, channels: int, kernel_size: int, r: int, conv: Any, dims: Tuple[int, ...]) -> None:
        super().__init__()
        pad = kernel_size // 2
        squeezed = max(1, channels // r)
        self.dims = dims
        self.conv1 = conv(channels, channels, kernel_size, pad)
        self.conv2 = conv(channels, channels, kernel_size, pad)
        self.squeeze = conv(channels, squeezed, 1, 0)
        self.excite = conv(squeezed, channels, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        a = y.mean(dim=self.dims, keepdim=True)
        a = torch.sigmoid(self.excite(F.relu(self.squeeze(a))))
        return x + y * a


class FeatureAttentionBlock(_AttentionBlock):
    """Residual block with squeeze-excitation over 3-D features, on time-major frames ``[B*T, F, H, W]``.

    The attention weights come from the global average of each feature channel
    (over frames, rows and columns), so the block can emphasise the channels
    carrying useful high frequencies. Its 3x3x3 convolutions run as sums of 2-D
    ones (:mod:`.time_folded`): same weights, oneDNN's fast path on the CPU.
    """

    def __init__(self, filters: int, kernel_size: int, r: int) -> None:
        super().__init__(filters, kernel_size, r, _wn_conv3d, (2, 3, 4))

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:  # type: ignore[override]
        y, _ = temporal_conv(x, frames, self.conv1)
        y, _ = temporal_conv(F.relu(y), frames, self.conv2)
        return channel_gate(x, y, frames, self.squeeze, self.excite)


class TemporalAttentionBlock(_AttentionBlock):
    """The 2-D counterpart used on the global path: frames are the channels."""

    def __init__(self, channels: int, kernel_size: int, r: int) -> None:
        super().__init__(channels, kernel_size, r, _wn_conv2d, (2, 3))


class TemporalReduction(nn.Module):
    """Reflect-pad H, W; attention block; 3x3x3 'valid' conv + ReLU (T -= 2), on time-major frames."""

    def __init__(self, filters: int, kernel_size: int, r: int) -> None:
        super().__init__()
        self.block = FeatureAttentionBlock(filters, kernel_size, r)
        self.reduce = _wn_conv3d(filters, filters, 3, 0)

    def forward(self, x: torch.Tensor, frames: int) -> Tuple[torch.Tensor, int]:
        x = self.block(_reflect_pad_frames(x), frames)
        y, frames = temporal_conv(x, frames, self.reduce)
        return F.relu(y), frames


def _reflect_pad_frames(x: torch.Tensor, p: int = 1) -> torch.Tensor:
    """Reflect-pad H and W of time-major frames ``[B*T, F, H, W]`` (each frame on its own)."""
    return safe_reflect_pad(x, (p, p, p, p)).contiguous(memory_format=torch.channels_last)


def _checked_config(scale: int, frames: int, filters: int, kernel_size: int, r: int, N: int, mean: float,
                    std: float, in_chans: int, upsampler: str) -> Tuple[RAMSConfig, int]:
    """The config and its number of temporal-reduction steps, or a ValueError saying what is wrong."""
    cfg = RAMSConfig(int(scale), int(frames), int(filters), int(kernel_size), int(r), int(N),
                     float(mean), float(std), int(in_chans), check_upsampler(str(upsampler), "RAMS"))
    if cfg.kernel_size != 3:
        # The reduction convs are 3x3x3 'valid' and the reflect pads are one
        # pixel: the official design only balances sizes for k = 3.
        raise ValueError(f"RAMS: kernel_size must be 3 (got {cfg.kernel_size})")
    steps = int((cfg.frames - 1) / (cfg.kernel_size - 1) - 1) if cfg.frames >= 3 else -1
    if steps < 0 or cfg.frames - 2 * steps - 2 < 1:
        raise ValueError(f"RAMS: needs at least 3 frames (got {cfg.frames})")
    if cfg.std <= 0:
        raise ValueError(f"RAMS: std must be > 0 (got {cfg.std})")
    if cfg.in_chans < 1 or cfg.filters < 1 or cfg.r < 1 or cfg.N < 0:
        raise ValueError(f"RAMS: in_chans, filters and r must be >= 1 and N >= 0 (got {cfg})")
    return cfg, steps


def _weight_norm_tensors(conv: nn.Module) -> List[torch.Tensor]:
    """Gain g, direction v and bias of a weight-normalized convolution (output channels first)."""
    p = conv.parametrizations.weight
    return [p.original0, p.original1, conv.bias]


#: Presets: the paper's network and a small one for CPU tests and demos.
RAMS_PRESETS: Dict[str, Dict[str, Any]] = {"rams": {}, "rams-tiny": {"filters": 8, "N": 2}}


@register("rams", task="sr", presets=RAMS_PRESETS, default_preset="rams")
class RAMS(nn.Module):
    """Residual Attention Multi-image Super-resolution network.

    ``forward(x [B, T, C, h, w] or [B, T*C, h, w]) -> [B, C, scale*h, scale*w]`` for any h, w >= 1.
    """

    ARCH = "rams"
    #: Older cards lack these keys: they were one-band, plain pixel-shuffle networks.
    LEGACY_HPARAMS = {"in_chans": 1, "upsampler": LEGACY_UPSAMPLER}
    HPARAM_RULES = {
        "scale": int_rule(1, 8), "frames": int_rule(3, 64), "filters": int_rule(1, 1024),
        "kernel_size": int_rule(1, 15), "r": int_rule(1, 1024), "N": int_rule(0, 256),
        "mean": float_rule(), "std": float_rule(0.0, open_lo=True), "in_chans": int_rule(1, 64),
        "upsampler": choice_rule(*UPSAMPLERS),
    }
    MULTI_IMAGE = True
    FRAMES_HPARAM = "frames"

    @classmethod
    def tile_defaults(cls, hparams: Mapping[str, Any], frames: int, cuda: bool) -> TileDefaults:
        """128-px LR tiles on the CPU (256 on CUDA) with 8 px of overlap, enough context to hide the seams.

        Why small on the CPU: the time-folded 3-D body streams every frame's
        features through each layer, and at 128 px a layer's frames stay in the
        caches; at 256 px the same network ran 1.8x slower per pixel on one
        thread (``bench/bench_full_tile.py`` prints both). Activations grow with
        filters x frames; a resize-conv upsampler runs its last convolution at
        the output resolution (F x 3 x 9 more per pixel).
        """
        filters = int(hparams.get("filters", 32))
        per_px = 4 * filters * frames * 8
        if hparams.get("upsampler") == "resize_conv":
            per_px += 4 * filters * 3 * 9
        return TileDefaults(tile=256 if cuda else 128, per_px=per_px, overlap_divisor=16 if not cuda else 32)

    def __init__(self, scale: int = 3, frames: int = 9, filters: int = 32, kernel_size: int = 3,
                 r: int = 8, N: int = 12, mean: float = 0.0, std: float = 1.0, in_chans: int = 1,
                 upsampler: str = DEFAULT_UPSAMPLER) -> None:
        super().__init__()
        cfg, steps = _checked_config(scale, frames, filters, kernel_size, r, N, mean, std, in_chans, upsampler)
        self.config = cfg
        self.scale = cfg.scale
        self.frames = cfg.frames
        self.in_chans = cfg.in_chans
        self.reduction_steps = steps

        f, k, c, s2 = cfg.filters, cfg.kernel_size, cfg.in_chans, cfg.scale ** 2
        self.head = _wn_conv3d(c, f, k, k // 2)
        self.body = nn.ModuleList([FeatureAttentionBlock(f, k, cfg.r) for _ in range(cfg.N)])
        self.body_tail = _wn_conv3d(f, f, k, k // 2)
        self.reductions = nn.ModuleList([TemporalReduction(f, k, cfg.r) for _ in range(steps)])
        # Resize-convolution interpolates first and convolves at the high resolution: C outputs, no shuffle.
        # (Module creation order is the original one, so a seed gives the same initial weights as before.)
        up = c if cfg.upsampler == "resize_conv" else s2 * c
        balance = cfg.scale if uses_balance(cfg.upsampler) else 0
        self.upscale = _wn_conv3d(f, up, 3, 0, balance)
        self.global_attention = TemporalAttentionBlock(cfg.frames * c, k, cfg.r)
        self.global_upscale = _wn_conv2d(cfg.frames * c, up, 3, 0, balance)
        self.shuffle = nn.PixelShuffle(cfg.scale)
        if uses_icnr(cfg.upsampler):
            icnr_(_weight_norm_tensors(self.upscale) + _weight_norm_tensors(self.global_upscale), cfg.scale)
        self.degrid = Degrid(cfg.scale) if uses_degrid(cfg.upsampler) else None

    @property
    def hparams(self) -> Dict[str, Any]:
        """JSON-friendly hyper-parameters that rebuild this exact network."""
        return asdict(self.config)

    @classmethod
    def state_shapes(cls, **hparams: Any) -> Dict[str, Tuple[int, ...]]:
        """State-dict shapes of ``RAMS(**hparams)``, computed without building it.

        Checkpoint loading compares these with the file's header before
        allocating anything. Building on the ``meta`` device would do too, but
        there PyTorch computes the weight-norm gains with its Python reference
        kernels, whose first use imports ``torch._dynamo`` (seconds). The tests
        check this table against real networks of many shapes.
        """
        cfg, steps = _checked_config(**{**asdict(RAMSConfig()), **hparams})
        f, k, c, tc = cfg.filters, cfg.kernel_size, cfg.in_chans, cfg.frames * cfg.in_chans
        up = c if cfg.upsampler == "resize_conv" else cfg.scale ** 2 * c
        convs: List[Tuple[str, int, int, int, int]] = [("head", c, f, k, 3)]  # name, in, out, kernel, dims

        def attention(prefix: str, ch: int, dims: int) -> None:
            sq = max(1, ch // cfg.r)
            convs.extend([(f"{prefix}.conv1", ch, ch, k, dims), (f"{prefix}.conv2", ch, ch, k, dims),
                          (f"{prefix}.squeeze", ch, sq, 1, dims), (f"{prefix}.excite", sq, ch, 1, dims)])

        for i in range(cfg.N):
            attention(f"body.{i}", f, 3)
        convs.append(("body_tail", f, f, k, 3))
        for j in range(steps):
            attention(f"reductions.{j}.block", f, 3)
            convs.append((f"reductions.{j}.reduce", f, f, 3, 3))
        convs.append(("upscale", f, up, 3, 3))
        attention("global_attention", tc, 2)
        convs.append(("global_upscale", tc, up, 3, 2))
        shapes: Dict[str, Tuple[int, ...]] = {}
        for name, cin, cout, kk, dims in convs:
            shapes[f"{name}.bias"] = (cout,)
            shapes[f"{name}.parametrizations.weight.original0"] = (cout,) + (1,) * (dims + 1)
            shapes[f"{name}.parametrizations.weight.original1"] = (cout, cin) + (kk,) * dims
        return shapes

    def _frames_and_bands(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as ``[B, T, C, h, w]`` (from either accepted layout), or a ValueError saying what is expected."""
        t, c = self.frames, self.in_chans
        if x.ndim == 5 and x.shape[1] == t and x.shape[2] == c:
            return x
        if x.ndim == 4 and x.shape[1] == t * c:
            return x.view(x.shape[0], t, c, *x.shape[-2:])
        if c == 1:
            want = f"[batch, {t} frames, height, width]"
        else:
            want = f"[batch, {t} frames, {c} bands, height, width] or [batch, {t * c} = frames x bands, height, width]"
        raise ValueError(f"RAMS expects {want}; got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._frames_and_bands(x)
        b, t, c, h, w = x.shape
        cfg = self.config
        x = (x - cfg.mean) / cfg.std
        # Main path: bands as feature channels, frames as depth, kept time-major ([B*T, F, H, W]).
        v = _reflect_pad_frames(to_frames(x))
        v, frames = temporal_conv(v, t, self.head)
        body = v
        for block in self.body:
            body = block(body, frames)
        tail, _ = temporal_conv(body, frames, self.body_tail)
        v = v + tail
        for reduction in self.reductions:
            v, frames = reduction(v, frames)  # frames: T - 2 per step; H, W stay h + 2, w + 2
        # Global residual path: frames x bands as channels.
        g = self.global_attention(safe_reflect_pad(x.reshape(b, t * c, h, w), (1, 1, 1, 1)))
        s = cfg.scale
        if cfg.upsampler == "resize_conv":
            # Per frame: the trilinear (1, s, s) interpolation of the 3-D form is bilinear in H, W.
            v = F.interpolate(v, scale_factor=s, mode="bilinear", align_corners=False)
            g = F.interpolate(g, scale_factor=s, mode="bilinear", align_corners=False)
            up, _ = temporal_conv(v.contiguous(memory_format=torch.channels_last), frames, self.upscale)
            # The LR border pad is s HR pixels; the 'valid' 3x3 conv ate one of them.
            out = frames_view(up, up.shape[0] // b)[:, 0] + self.global_upscale(g)
            out = out[..., s - 1: s - 1 + s * h, s - 1: s - 1 + s * w]
        else:
            up, _ = temporal_conv(v, frames, self.upscale)
            out = self.shuffle(frames_view(up, up.shape[0] // b)[:, 0] + self.global_upscale(g))  # T' is 1 for odd T
        if self.degrid is not None:
            out = self.degrid(out)
        return (out * cfg.std + cfg.mean).contiguous()
