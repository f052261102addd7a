"""UNet++ segmentation network (buildings or roads) via segmentation-models-pytorch.

The study trains UNet++ on HR patches and uses it, frozen, as the task network
whose Dice loss drives task-aware SR training. This wrapper adds what the rest
of the project relies on: one input band by default (``in_channels=4`` for
B02, B03, B04, B08; the checkpoint card's ``bands`` names them), one logit channel, any image size
(reflect padding to the encoder stride inside, logits cropped back), no
download ever unless asked for explicitly, and encoder stages that the chosen
depth does not use are removed so every parameter is trained.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..padding import pad_to_multiple
from ..registry import Rule, TileDefaults, choice_rule, config_from_preset, int_list_rule, int_rule, register

__all__ = ["SegmentationConfig", "SegmentationNet", "UNETPP_PRESETS", "EncoderWeightsError"]


class EncoderWeightsError(RuntimeError):
    """Pretrained encoder weights were asked for but cannot be had here."""


@dataclass
class SegmentationConfig:
    """Hyper-parameters of the UNet++ wrapper.

    ``encoder_depth`` sets the number of down-sampling stages (input sides are
    padded to a multiple of ``2 ** encoder_depth``); ``decoder_channels`` needs
    one entry per stage.
    """

    encoder_name: str = "resnet18"
    encoder_depth: int = 5
    decoder_channels: List[int] = field(default_factory=lambda: [256, 128, 64, 32, 16])
    in_channels: int = 1
    classes: int = 1
    decoder_attention_type: Optional[str] = None
    #: ``unetpp``: the study's nested decoder; ``unet``: the plain U-Net decoder on the same encoder, half
    #: the FLOPs per pixel at the tiny preset's widths (``docs/results/segmenters.md``: Dice per FLOP)
    decoder: str = "unetpp"


#: ``unetpp``: the study's network (ResNet-18 encoder). ``unetpp-tiny``: tests and demos on CPU.
#: ``unet-tiny``: the tiny encoder with the plain U-Net decoder, for segmenting whole tiles on a CPU.
UNETPP_PRESETS: Dict[str, Dict[str, Any]] = {
    "unetpp": dict(encoder_name="resnet18", encoder_depth=5, decoder_channels=[256, 128, 64, 32, 16]),
    "unetpp-tiny": dict(encoder_name="resnet18", encoder_depth=3, decoder_channels=[32, 16, 8]),
    "unet-tiny": dict(encoder_name="resnet18", encoder_depth=3, decoder_channels=[32, 16, 8], decoder="unet"),
    "unet-small": dict(encoder_name="resnet18", encoder_depth=4, decoder_channels=[64, 32, 16, 8], decoder="unet"),
}


def _import_smp():
    """Import smp without letting it reach the network (it only downloads on request)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import segmentation_models_pytorch as smp
    return smp


def _prune_unused_stages(encoder: nn.Module, depth: int) -> None:
    """Drop ResNet stages that a shallow encoder never runs.

    smp builds all four residual stages whatever the depth; unused ones would
    hold parameters that never get a gradient and bloat the checkpoints.
    Stage ``layer{i}`` runs when depth > i.
    """
    for i in range(1, 5):
        name = f"layer{i}"
        if depth <= i and isinstance(getattr(encoder, name, None), nn.Module):
            setattr(encoder, name, nn.Identity())


@register("unetpp", task="segmentation", presets=UNETPP_PRESETS, default_preset="unetpp")
class SegmentationNet(nn.Module):
    """UNet++ ``[B, in_channels, H, W] -> logits [B, classes, H, W]`` for any H, W.

    ``encoder_weights``: None (random init, the default), ``"imagenet"`` (only
    if the weights are already in the local Hugging Face cache; nothing can be
    downloaded here) or the path of a local file holding an encoder state dict
    (``.safetensors`` or a weights-only ``.pth``). Either way, the weights end
    up in this network's checkpoint, so rebuilding never needs them again.
    """

    ARCH = "unetpp"
    #: Segments at the input resolution: the registry accepts ``scale`` only as 1 and does not pass it on.
    FIXED_SCALE = 1
    HPARAM_RULES = {
        "encoder_name": Rule("str"), "encoder_depth": int_rule(1, 5),
        "decoder_channels": int_list_rule(1, 4096, max_len=5), "in_channels": int_rule(1, 64),
        "classes": int_rule(1, 64), "decoder_attention_type": choice_rule(None, "scse"),
        "decoder": choice_rule("unetpp", "unet"),
    }
    CHANNELS_HPARAM = "in_channels"
    TILE_MULTIPLE = 32  # the encoder's stride at depth 5

    @classmethod
    def tile_defaults(cls, hparams: Mapping[str, Any], frames: int, cuda: bool) -> TileDefaults:
        """256-px HR tiles (512 on CUDA) with 1/16 overlap (16 px on the CPU, about 14 % recomputed).

        Measured on world-v3 test scenes against one untiled pass: 16 px of overlap flips 0.12-0.92 % of
        the mask pixels, 32 px 0.12-0.88 % (the tiling itself costs that much), for 13 % less work.
        """
        return TileDefaults(tile=512 if cuda else 256, per_px=4 * 64 * 12, overlap_divisor=16)

    def __init__(self, preset: Optional[str] = None, encoder_weights: Optional[str] = None,
                 **hparams: Any) -> None:
        super().__init__()
        cfg = config_from_preset(SegmentationConfig, UNETPP_PRESETS, "UNet++", preset, hparams)
        cfg.decoder_channels = [int(c) for c in cfg.decoder_channels]
        if cfg.decoder not in ("unetpp", "unet"):
            raise ValueError(f"segmentation decoder: 'unetpp' or 'unet' (got {cfg.decoder!r})")
        if len(cfg.decoder_channels) != cfg.encoder_depth:
            raise ValueError(
                f"UNet++: decoder_channels needs {cfg.encoder_depth} entries (one per encoder stage), "
                f"got {len(cfg.decoder_channels)}"
            )
        self.config = cfg
        self.scale = 1
        self.frames = 1
        self.in_chans = cfg.in_channels
        self.stride = 2 ** cfg.encoder_depth
        self.channels_last = False  # set on the inference copy (see inference_copy)

        smp = _import_smp()
        family = smp.UnetPlusPlus if cfg.decoder == "unetpp" else smp.Unet
        self.net = family(
            encoder_name=cfg.encoder_name, encoder_depth=cfg.encoder_depth, encoder_weights=None,
            decoder_channels=tuple(cfg.decoder_channels), decoder_attention_type=cfg.decoder_attention_type,
            in_channels=cfg.in_channels, classes=cfg.classes,
        )
        _prune_unused_stages(self.net.encoder, cfg.encoder_depth)
        if encoder_weights is not None:
            self._load_encoder_weights(encoder_weights)

    @property
    def hparams(self) -> Dict[str, Any]:
        """JSON-friendly hyper-parameters that rebuild this exact network (weights excluded)."""
        return asdict(self.config)

    def _load_encoder_weights(self, weights: str) -> None:
        cfg = self.config
        path = Path(weights)
        if not (path.suffix in (".safetensors", ".pth", ".pt", ".bin") or path.exists()):
            path = self._cached_pretrained(weights)
        if not path.is_file():
            raise EncoderWeightsError(f"encoder weights file {path} does not exist")
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(path))
            else:  # never unpickle arbitrary objects
                state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise EncoderWeightsError(f"cannot read encoder weights {path}: {exc}") from exc
        if not isinstance(state, dict):
            raise EncoderWeightsError(f"encoder weights {path} do not hold a state dict")
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        stem = state.get("conv1.weight")
        if stem is not None and stem.shape[1] == 3 and cfg.in_channels == 1:
            # An RGB stem on one band: sum over colours (the rule smp applies to its own weights).
            state["conv1.weight"] = stem.sum(1, keepdim=True)
        elif stem is not None and stem.shape[1] == 3 and cfg.in_channels > 3:
            # More bands than colours (e.g. RGB + NIR): cycle the colour filters and rescale so
            # the stem's response to a grey input keeps its size (smp's rule, too).
            idx = torch.arange(cfg.in_channels) % 3
            state["conv1.weight"] = stem[:, idx] * (3.0 / cfg.in_channels)
        try:
            # nn.Module's own method: smp's encoders override it without returning the key report.
            missing, _ = nn.Module.load_state_dict(self.net.encoder, state, strict=False)
        except RuntimeError as exc:  # shape mismatches
            raise EncoderWeightsError(f"encoder weights {path} do not fit encoder {cfg.encoder_name!r}: {exc}") from exc
        if missing:
            raise EncoderWeightsError(
                f"encoder weights {path} do not fit encoder {cfg.encoder_name!r}: "
                f"{len(missing)} tensors missing, e.g. {', '.join(missing[:3])}"
            )

    def _cached_pretrained(self, weights: str) -> Path:
        """Path of smp's published encoder weights if already in the local Hugging Face cache.

        Nothing is downloaded: the lookup is local-only, so it fails at once
        (with a message saying what to do) instead of retrying a network that
        is not there.
        """
        name = self.config.encoder_name
        smp = _import_smp()
        settings = smp.encoders.encoders.get(name, {}).get("pretrained_settings", {})
        if weights not in settings:
            raise EncoderWeightsError(
                f"no pretrained weights named {weights!r} for encoder {name!r} "
                f"(known: {', '.join(settings) or 'none'}), and no file of that name exists"
            )
        try:
            from huggingface_hub import hf_hub_download

            found = hf_hub_download(settings[weights]["repo_id"], filename="model.safetensors",
                                    revision=settings[weights].get("revision"), local_files_only=True)
        except Exception as exc:
            raise EncoderWeightsError(
                f"pretrained {weights!r} weights for encoder {name!r} are not on this computer and cannot be "
                "downloaded here (no network access at run time). Train from scratch (encoder_weights=None) or "
                "pick a local file holding the encoder weights (encoder_weights='/path/to/encoder.safetensors')."
            ) from exc
        return Path(found)

    def inference_copy(self) -> "SegmentationNet":
        """A copy for inference: batch norms folded into their convolutions, channels-last memory.

        Why: in eval mode a batch norm is a fixed per-channel affine map, so it
        can live inside the preceding convolution's weights; the CPU then skips
        one memory pass per layer, and oneDNN's channels-last convolutions need
        no layout conversions. Together about 1.3x faster on the CPU
        (``bench/bench_full_tile.py``); the logits move by ~1e-5. The copy
        cannot be trained (its batch norms are gone); the original is untouched.
        """
        fused = copy.deepcopy(self).eval()
        for module in list(fused.modules()):
            _fold_batch_norms(module)
        fused.channels_last = True
        return fused.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"UNet++ expects [batch, {self.in_chans} channel(s), height, width]; got {tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.stride)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = self.net(x)
        return logits[..., :h, :w].contiguous()


def _fold_batch_norms(module: nn.Module) -> None:
    """Fold every batch norm that directly follows a convolution in ``module`` into that convolution.

    Two shapes occur in smp's UNet++ with a ResNet encoder: ``Sequential(conv,
    bn, ...)`` (decoder blocks, shortcut projections) and the ResNet naming
    ``conv{i}`` followed by ``bn{i}`` (stem and basic blocks, whose forward
    applies them in that order). Each folded batch norm becomes an identity.
    """
    if isinstance(module, nn.Sequential):
        names = list(module._modules)
        for first, second in zip(names, names[1:]):
            conv, bn = module._modules[first], module._modules[second]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module._modules[first] = fuse_conv_bn_eval(conv, bn)
                module._modules[second] = nn.Identity()
    for i in range(1, 4):
        conv, bn = getattr(module, f"conv{i}", None), getattr(module, f"bn{i}", None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            setattr(module, f"conv{i}", fuse_conv_bn_eval(conv, bn))
            setattr(module, f"bn{i}", nn.Identity())
