"""HAT: Hybrid Attention Transformer for single-image SR (Chen et al., CVPR 2023).

A PyTorch re-implementation written against the paper and the official code
(read for facts only). Module, parameter and persistent-buffer names follow the
official implementation, so an official state dict (``params_ema``) loads with
``strict=True`` into the matching preset; see ``.official.import_official_hat``.

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

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional

import torch
import torch.nn as nn

from ...padding import pad_to_multiple
from ...registry import (
    TileDefaults,
    bool_rule,
    choice_rule,
    config_from_preset,
    float_rule,
    int_list_rule,
    int_rule,
    register,
)
from ...upsampling import (
    DEFAULT_UPSAMPLER,
    LEGACY_UPSAMPLER,
    UPSAMPLERS,
    Degrid,
    check_upsampler,
    uses_balance,
    uses_degrid,
    uses_icnr,
)
from .blocks import OCAB, RHAG, PatchEmbed, ResizeConvUpsample, Upsample, WindowAttention
from .windows import relative_position_index_oca, relative_position_index_sa, window_plan

__all__ = ["HATConfig", "HAT", "HAT_PRESETS", "hat_config", "ATTENTION_IMPLS"]

ATTENTION_IMPLS = ("sdpa", "explicit")


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
    TILE_MULTIPLE = 16  # the paper's window (the tiny preset's 8 divides it)

    @classmethod
    def tile_defaults(cls, hparams: Mapping[str, Any], frames: int, cuda: bool) -> TileDefaults:
        """Attention is heavy: 64-px tiles for HAT/HAT-L, 96 for the small presets, doubled on CUDA; 1/16 overlap."""
        preset = str(hparams.get("preset", "hat")).lower()
        embed = int(hparams.get("embed_dim", 96 if preset in ("hat-s", "hat-tiny", "hat-small") else 180))
        tile = 96 if embed <= 144 else 64
        return TileDefaults(tile=tile * 2 if cuda else tile, per_px=4 * embed * 24, overlap_divisor=16)

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
