"""Official HAT weights (``.pth`` from the XPixelGroup release) into this plugin's safetensors checkpoints.

HAT-specific, so it lives with HAT: the hyper-parameters are read off the
weights' shapes, checked against a preset when one is named, and the file is
unpickled with ``weights_only=True`` only (a file needing arbitrary Python
objects is refused rather than run).
"""

from __future__ import annotations

import math
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import torch

from ...card import CheckpointError, ModelCard
from ...registry import build
from ...zoo import PathLike, describe_mismatch, file_sha256, read_card, save_checkpoint, shapes_of
from .network import HAT_PRESETS

__all__ = ["load_official_hat_state", "infer_hat_hparams", "import_official_hat"]



def load_official_hat_state(path: PathLike) -> Dict[str, torch.Tensor]:
    """The state dict inside an official HAT ``.pth`` (``params_ema``, else ``params``).

    Loads with ``weights_only=True``: a file that needs arbitrary Python objects
    to unpickle is refused rather than run.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: holds Python objects other than tensors; refusing to unpickle them "
            f"because that could run code ({str(exc).splitlines()[0][:200]})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: corrupted or truncated PyTorch file ({exc})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict of weights, found a {type(obj).__name__}")
    for key in ("params_ema", "params"):
        if key in obj:
            state = obj[key]
            break
    else:
        if "conv_first.weight" in obj:
            state = obj  # a bare state dict
        else:
            keys = ", ".join(map(str, list(obj)[:5]))
            raise CheckpointError(
                f"{path}: not an official HAT checkpoint (no 'params_ema' or 'params' entry; top-level keys: {keys})"
            )
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: the weights entry is not a dict of tensors")
    state = {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}
    if "conv_first.weight" not in state:
        raise CheckpointError(f"{path}: the weights do not look like HAT (no 'conv_first.weight')")
    return state


def _as_list(v: Any) -> Any:
    return list(v) if isinstance(v, (list, tuple)) else v


def _ratio(total: int, part: int) -> int:
    """The integer r with total // r == part (how the official code derives channel counts)."""
    r = max(1, total // part)
    for cand in (r, r + 1, r - 1):
        if cand >= 1 and total // cand == part:
            return cand
    raise ValueError(f"no integer ratio maps {total} channels to {part}")


def infer_hat_hparams(state: Mapping[str, torch.Tensor]) -> Dict[str, Any]:
    """Read HAT's hyper-parameters off the shapes of an official state dict."""
    try:
        first = state["conv_first.weight"]
        dim, in_chans = int(first.shape[0]), int(first.shape[1])
        layer_ids = sorted({int(m.group(1)) for k in state for m in [re.match(r"layers\.(\d+)\.", k)] if m})
        depths, heads = [], []
        for i in layer_ids:
            blocks = {int(m.group(1)) for k in state
                      for m in [re.match(rf"layers\.{i}\.residual_group\.blocks\.(\d+)\.", k)] if m}
            depths.append(len(blocks))
            heads.append(int(state[f"layers.{i}.residual_group.blocks.0.attn.relative_position_bias_table"].shape[1]))
        table = state["layers.0.residual_group.blocks.0.attn.relative_position_bias_table"].shape[0]
        ws = (int(round(math.sqrt(table))) + 1) // 2
        oca = state["layers.0.residual_group.overlap_attn.relative_position_bias_table"].shape[0]
        ow = int(round(math.sqrt(oca))) - ws + 1
        pre = "layers.0.residual_group.blocks.0."
        compress = _ratio(dim, int(state[pre + "conv_block.cab.0.weight"].shape[0]))
        squeeze = _ratio(dim, int(state[pre + "conv_block.cab.3.attention.1.weight"].shape[0]))
        mlp_ratio = float(state[pre + "mlp.fc1.weight"].shape[0]) / dim
        num_feat = int(state["conv_before_upsample.0.weight"].shape[0])
        ups = sorted(int(m.group(1)) for k in state for m in [re.match(r"upsample\.(\d+)\.weight$", k)] if m)
        growth = int(state[f"upsample.{ups[0]}.weight"].shape[0]) // num_feat
        scale = 3 if growth == 9 else 2 ** len(ups)
    except (KeyError, IndexError, ValueError, ZeroDivisionError) as exc:
        raise CheckpointError(f"the weights do not have the layout of an official HAT network ({exc})") from None
    return dict(
        in_chans=in_chans, scale=scale, embed_dim=dim, depths=depths, num_heads=heads, window_size=ws,
        compress_ratio=compress, squeeze_factor=squeeze, overlap_ratio=(ow - ws) / ws, mlp_ratio=mlp_ratio,
        num_feat=num_feat, qkv_bias=(pre + "attn.qkv.bias") in state,
        patch_norm="patch_embed.norm.weight" in state,
        resi_connection="1conv" if "conv_after_body.weight" in state else "identity",
        upsampler="pixelshuffle",  # what the official networks use
    )


def import_official_hat(pth_path: PathLike, out_path: PathLike, preset: Optional[str] = None,
                        in_chans: Optional[int] = None, scale: Optional[int] = None,
                        bands: Optional[List[str]] = None, normalization: Optional[Dict[str, float]] = None,
                        name: Optional[str] = None, description: Optional[str] = None) -> ModelCard:
    """Convert an official HAT ``.pth`` into this plugin's safetensors checkpoint.

    The architecture is read off the weights; ``preset``, ``in_chans`` and
    ``scale``, when given, are checked against them (a mismatch is refused
    rather than silently loading the wrong network). Official HAT works on
    [0, 1] images, hence the default normalization offset 0, scale 1.
    """
    pth_path = Path(pth_path)
    state = load_official_hat_state(pth_path)
    inferred = infer_hat_hparams(state)
    if in_chans is not None and int(in_chans) != inferred["in_chans"]:
        raise CheckpointError(f"{pth_path}: the weights take {inferred['in_chans']} band(s), not {in_chans}")
    if scale is not None and int(scale) != inferred["scale"]:
        raise CheckpointError(f"{pth_path}: the weights are a x{inferred['scale']} network, not x{scale}")
    if preset is not None:
        if preset not in HAT_PRESETS:
            raise CheckpointError(f"unknown HAT preset {preset!r}; choose one of {', '.join(HAT_PRESETS)}")
        want = HAT_PRESETS[preset]
        diff = [k for k in ("embed_dim", "depths", "num_heads", "window_size", "compress_ratio", "squeeze_factor")
                if _as_list(want[k]) != _as_list(inferred[k])]
        if diff:
            raise CheckpointError(
                f"{pth_path}: the weights are not a {preset!r} network: "
                + ", ".join(f"{k} {inferred[k]} (preset {want[k]})" for k in diff)
            )
        inferred = dict(HAT_PRESETS[preset], **inferred)
    model = build("hat", **inferred)
    own = model.state_dict()
    for key in ("relative_position_index_SA", "relative_position_index_OCA"):
        # Older official code kept these indices outside the state dict; they are derived anyway.
        if key not in state:
            state[key] = own[key]
    problem = describe_mismatch(pth_path, "hat", shapes_of(model.state_dict()), shapes_of(state))
    if problem:
        raise CheckpointError(problem)
    for key in ("relative_position_index_SA", "relative_position_index_OCA"):
        if not torch.equal(state[key].to(own[key].dtype), own[key]):
            raise CheckpointError(f"{pth_path}: {key} differs from the one this window size implies")
    model.load_state_dict(state, strict=True)
    card = ModelCard.for_model(
        model,
        bands=list(bands) if bands else (["B8"] if inferred["in_chans"] == 1 else []),
        normalization=dict(normalization or {"offset": 0.0, "scale": 1.0}),
        recipe={"source": "official HAT weights", "file": pth_path.name, "sha256": file_sha256(pth_path)},
        name=name or pth_path.stem,
        description=description or f"Imported from the official HAT checkpoint {pth_path.name}",
    )
    save_checkpoint(out_path, model, card)
    return read_card(out_path)
