"""Factories of a training run: the pieces :class:`.loop.TrainingLoop` builds from its recipe, and its randomness.

Why apart from the loop: each function maps one part of a :class:`TrainConfig`
to one object (network, optimizer, scheduler, loss weighting, patch dataset,
input normalization, AMP dtype), with no state of its own, so the loop reads as
a sequence of steps. Seeding and the RNG snapshot live here too: they decide
what the datasets and the network draw, and ``last.pt`` stores the snapshot.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import numpy as np
import torch

from ..data.patches import PatchSelection, SegPatchDataset, SRPatchDataset
from ..evaluation.segnets import Normalization
from ..io.sentinel2 import canonical_band
from ..models.registry import spec
from ..models.zoo import build, load_checkpoint
from .config import ConfigError, TrainConfig
from .weighting import DynamicWeighting, StaticWeighting

__all__ = [
    "seed_everything",
    "rng_state",
    "set_rng_state",
    "deterministic_kernels",
    "amp_dtype_for",
    "input_normalization",
    "build_model",
    "make_optimizer",
    "make_scheduler",
    "make_loss_weighting",
    "band_indices",
    "make_dataset",
]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) from one number."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def rng_state() -> Dict[str, Any]:
    """RNG states as tensors/lists, so ``last.pt`` loads with ``weights_only=True``."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: Dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_gauss": float(np_state[4]),
        "python_version": int(py_version),
        "python_internal": list(py_internal),
        "python_gauss": py_gauss,
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` took, so a resumed run draws what the uninterrupted one would."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"],
                         state["numpy_has_gauss"], state["numpy_gauss"]))
    random.setstate((state["python_version"], tuple(state["python_internal"]), state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError):
            torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def deterministic_kernels(enabled: bool) -> Iterator[None]:
    """Deterministic kernels (warn where none exists) for the run, then the caller's setting back.

    ``set_deterministic_debug_mode("warn")`` is ``use_deterministic_algorithms(True,
    warn_only=True)`` without importing TorchInductor (seconds per process; we do not compile).
    """
    before = torch.get_deterministic_debug_mode()
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        if before == 0:
            torch.set_deterministic_debug_mode("warn")
    try:
        yield
    finally:
        torch.set_deterministic_debug_mode(before)


# --------------------------------------------------------------------------- pieces


def amp_dtype_for(config: TrainConfig, device: torch.device) -> Optional[torch.dtype]:
    """Autocast dtype of the recipe's ``amp`` on this device; None: full precision (always on the CPU)."""
    if device.type != "cuda" or config.amp == "off":
        return None
    if config.amp == "fp16":
        return torch.float16
    if config.amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def input_normalization(config: TrainConfig, scenes: List, init_card) -> Normalization:
    """The model's input normalization: from the config, the fine-tuned checkpoint, or the data.

    Derived from data: offset 0 and the 99.9th percentile of the training
    images' valid reflectance (rounded up to 2 significant digits), so model
    units sit roughly in [0, 1] and the number is readable in the card.
    """
    if config.data.normalization is not None:
        return Normalization(float(config.data.normalization["offset"]), float(config.data.normalization["scale"]))
    if init_card is not None:
        return Normalization.from_card(init_card.normalization)
    band = band_indices(config, scenes)[0]
    values = []
    for s in scenes:
        if s.hr is not None:
            img, valid = s.hr[band], s.hr_valid
        else:
            img, valid = s.lr[:, band], s.lr_valid
        v = np.asarray(img)[np.asarray(valid, dtype=bool)] if valid is not None else np.asarray(img).ravel()
        if v.size:
            values.append(v[:: max(1, v.size // 200_000)])
    if not values:
        return Normalization()
    top = float(np.percentile(np.concatenate(values), 99.9))
    if not math.isfinite(top) or top <= 0:
        return Normalization()
    digits = 1 - int(math.floor(math.log10(top)))
    top = math.ceil(top * 10**digits) / 10**digits
    return Normalization(0.0, top)


def build_model(config: TrainConfig, device: torch.device) -> Tuple[torch.nn.Module, Any]:
    """The network to train, and the card of the checkpoint it starts from (or None)."""
    init_card = None
    if config.model.init_from:
        model, init_card = load_checkpoint(config.model.init_from, device="cpu")
    else:
        kwargs = dict(config.model.hparams)
        if config.model.preset:
            kwargs["preset"] = config.model.preset
        family = spec(config.model.arch)
        channels = len(config.data.bands) if config.data.bands else 1
        if config.task == "sr":
            kwargs.setdefault("scale", config.model.scale)
        if family.frames_hparam:
            kwargs.setdefault(family.frames_hparam, config.data.frames)
        if channels > 1:  # data.bands decides how many bands the network takes jointly
            kwargs[family.channels_hparam] = channels
        model = build(config.model.arch, **kwargs)
    return model.to(device), init_card


def make_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    """The recipe's optimizer over ``params`` (the trainable parameters)."""
    if config.optimizer == "nadam":
        return torch.optim.NAdam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer) -> Optional[Any]:
    """The recipe's learning-rate schedule (stepped once per epoch), or None for a constant rate."""
    s = config.scheduler
    if s.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=s.min_lr)
    if s.name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=s.step_size, gamma=s.gamma)
    return None


def make_loss_weighting(config: TrainConfig) -> Any:
    """Static or dynamic weighting of the recipe's loss terms (see :mod:`.weighting`)."""
    if config.loss.weighting == "dynamic":
        others = [t for t in config.loss.terms if t.name != config.loss.reference]
        proportions = {t.name: float(t.proportion) for t in others if t.proportion is not None}
        fixed = {t.name: float(t.weight) for t in others if t.proportion is None}
        return DynamicWeighting(reference=config.loss.reference, proportions=proportions, fixed=fixed)
    return StaticWeighting({t.name: float(t.weight) for t in config.loss.terms})


def band_indices(config: TrainConfig, scenes: List) -> List[int]:
    """Indices of the bands a run takes in its scenes' band list: ``data.bands`` by name, else ``data.band``."""
    if not config.data.bands:
        return [int(config.data.band)]
    have = [canonical_band(b) or b for b in (scenes[0].bands or [])]
    out = []
    for name in config.data.bands:
        key = canonical_band(name) or name
        if key not in have:
            raise ConfigError(f"data.bands: {name} is not among the scenes' bands ({', '.join(scenes[0].bands)})")
        out.append(have.index(key))
    return out


def make_dataset(config: TrainConfig, scenes: List) -> Any:
    """The deterministic patch dataset of the task (seeded by the recipe, re-drawn per epoch)."""
    d = config.data
    bands = band_indices(config, scenes)
    selection = PatchSelection(share=d.selection.share, min_coverage=d.selection.min_coverage,
                               classes=tuple(d.selection.classes))
    if config.task == "segmentation":
        dataset = SegPatchDataset(scenes, target=config.target, patch=d.seg_patch,
                                  samples_per_epoch=d.samples_per_epoch, selection=selection, augment=d.augment,
                                  seed=config.seed, bands=bands, radiometry=d.radiometry, sharpness=d.sharpness,
                                  season=d.season)
        if d.weak.root:  # real images labelled as a whole ride along (loss term weak_real)
            from ..data.weak_labels import WeakImages, WithWeakLabels

            if not scenes[0].bands:
                raise ConfigError("data.weak.root: the training scenes name no bands, so the real images' bands "
                                  "cannot be matched to them")
            names = [scenes[0].bands[i] for i in bands]
            dataset = WithWeakLabels(dataset, WeakImages(Path(d.weak.root), config.target, names, d.seg_patch))
        return dataset
    return SRPatchDataset(scenes, lr_patch=d.lr_patch, frames=d.frames, samples_per_epoch=d.samples_per_epoch,
                          selection=selection, augment=d.augment, seed=config.seed, bands=bands,
                          radiometry=d.radiometry)
