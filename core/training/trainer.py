"""One training loop for segmentation networks and for (task-driven) super-resolution.

``train(config)`` runs a whole recipe from a :class:`core.config.TrainConfig`:

* **segmentation** - UNet++ on HR patches against a building or road mask, with
  soft Dice (optionally + BCE);
* **sr** - RAMS or HAT on LR/HR patches with any weighted combination of cL1,
  cMSE, consistency cL1 and the task-driven losses: Dice of a *frozen*
  segmentation network applied to the SR output (gradients flow through the
  frozen network into the SR network). The SR output is converted to
  reflectance and into the segmentation network's own normalization first.

The run directory (``out_dir``) holds, after every epoch: ``last.pt`` (the whole
resume state: model, optimizer, scheduler, loss weighting, AMP scaler, RNG
states, epoch, history; plain tensors and containers so it loads with
``torch.load(weights_only=True)``; written atomically), ``last.safetensors`` and
``best.safetensors`` (model checkpoints with a full model card), ``history.json``,
``training_curves.png`` and ``config.yaml`` (the resolved recipe). A killed run
started again with the same config resumes from ``last.pt`` and ends with the
same weights as an uninterrupted run: the patch datasets are deterministic in
(seed, epoch, index) and every other source of randomness is restored.

Under ``torchrun`` the same function trains with DistributedDataParallel
(see :mod:`core.distributed`); only rank 0 writes files and reports progress.

Progress events are dicts handed to ``progress``: ``step``, ``epoch``, ``log``,
``done`` and ``error`` (see :func:`train`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from ..evaluation.evaluate import evaluate_segmentation, evaluate_sr, scalar_metrics
from ..evaluation.segnets import FrozenSegNet, Normalization, load_frozen_segnet
from ..inference.sr import model_input
from ..io.atomic import remove_orphans, replace_file, temp_path_for, write_text_atomic
from . import distributed as ddp
from .config import (
    ConfigError,
    TrainConfig,
    config_to_dict,
    preflight,
)
from .loss_terms import LOSS_TERMS, Batch

__all__ = [
    "TrainingError",
    "NonFiniteLossError",
    "TrainingCancelled",
    "ProgressCallback",
    "Trainer",
    "train",
    "curves_history",
    "seed_everything",
    "RESUME_FILE",
]

ProgressCallback = Callable[[Dict[str, Any]], None]
RESUME_FILE = "last.pt"
RESUME_FORMAT = 1
RUN_FILES = (RESUME_FILE, "last.safetensors", "best.safetensors", "history.json", "training_curves.png")
PLOT_EVERY = 10  # epochs between redraws of training_curves.png (always drawn after the last epoch)
# Changing these between a run and its resumption would silently train another recipe.
_RESUME_KEYS = ("task", "target", "lr", "optimizer", "weight_decay", "grad_clip", "scheduler", "seed",
                "model", "loss", "seg_nets", "max_steps_per_epoch")
#: Resuming also compares the network's own hyper-parameters (upsampler, bands...): a code default that
#: changed between two sessions must not load old weights into a different network.
_RESUME_DATA_KEYS = ("version", "train_split", "band", "bands", "lr_patch", "seg_patch", "frames", "samples_per_epoch",
                     "batch_size", "augment", "selection", "normalization")


class TrainingError(RuntimeError):
    """Training stopped for a reason the user can act on."""


class NonFiniteLossError(TrainingError):
    """A loss term became NaN or infinite."""


class TrainingCancelled(TrainingError):
    """The user cancelled; the last completed epoch is in ``last.pt``."""


# --------------------------------------------------------------------------- seeding and RNG state


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) from one number."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _rng_state() -> Dict[str, Any]:
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


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"],
                         state["numpy_has_gauss"], state["numpy_gauss"]))
    random.setstate((state["python_version"], tuple(state["python_internal"]), state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError):
            torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def _deterministic(enabled: bool):
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


def _amp_dtype(config: TrainConfig, device: torch.device) -> Optional[torch.dtype]:
    if device.type != "cuda" or config.amp == "off":
        return None
    if config.amp == "fp16":
        return torch.float16
    if config.amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def _normalization(config: TrainConfig, scenes: List, init_card) -> Normalization:
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


def _build_model(config: TrainConfig, device: torch.device):
    """The network to train, and the card of the checkpoint it starts from (or None)."""
    from ..models.zoo import build, load_checkpoint

    init_card = None
    if config.model.init_from:
        model, init_card = load_checkpoint(config.model.init_from, device="cpu")
    else:
        kwargs = dict(config.model.hparams)
        if config.model.preset:
            kwargs["preset"] = config.model.preset
        channels = len(config.data.bands) if config.data.bands else 1
        if config.task == "sr":
            kwargs.setdefault("scale", config.model.scale)
            if config.model.arch == "rams":
                kwargs.setdefault("frames", config.data.frames)
            if channels > 1:  # data.bands decides how many bands the network takes jointly
                kwargs["in_chans"] = channels
        elif channels > 1:
            kwargs["in_channels"] = channels
        model = build(config.model.arch, **kwargs)
    return model.to(device), init_card


def _make_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    if config.optimizer == "nadam":
        return torch.optim.NAdam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def _make_scheduler(config: TrainConfig, optimizer):
    s = config.scheduler
    if s.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=s.min_lr)
    if s.name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=s.step_size, gamma=s.gamma)
    return None


def _make_weighting(config: TrainConfig):
    from .weighting import DynamicWeighting, StaticWeighting

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
    from ..inference.bands import canonical_band

    have = [canonical_band(b) or b for b in (scenes[0].bands or [])]
    out = []
    for name in config.data.bands:
        key = canonical_band(name) or name
        if key not in have:
            raise ConfigError(f"data.bands: {name} is not among the scenes' bands ({', '.join(scenes[0].bands)})")
        out.append(have.index(key))
    return out


def _make_dataset(config: TrainConfig, scenes: List):
    from ..data.patches import PatchSelection, SegPatchDataset, SRPatchDataset

    d = config.data
    bands = band_indices(config, scenes)
    selection = PatchSelection(share=d.selection.share, min_coverage=d.selection.min_coverage,
                               classes=tuple(d.selection.classes))
    if config.task == "segmentation":
        return SegPatchDataset(scenes, target=config.target, patch=d.seg_patch, samples_per_epoch=d.samples_per_epoch,
                               selection=selection, augment=d.augment, seed=config.seed, bands=bands)
    return SRPatchDataset(scenes, lr_patch=d.lr_patch, frames=d.frames, samples_per_epoch=d.samples_per_epoch,
                          selection=selection, augment=d.augment, seed=config.seed, bands=bands)


def _masked_bce(logits: torch.Tensor, target: torch.Tensor, valid: Optional[torch.Tensor]) -> torch.Tensor:
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    if valid is None:
        return loss.mean()
    w = valid.to(loss.dtype).reshape(loss.shape[0], 1, *loss.shape[-2:]).expand_as(loss)
    return (loss * w).sum() / w.sum().clamp_min(1.0)


class _LossComputer:
    """Computes every configured loss term of one batch (unweighted), as float32 scalars."""

    def __init__(self, config: TrainConfig, norm: Normalization, seg_nets: Dict[str, FrozenSegNet],
                 device: torch.device, amp_dtype: Optional[torch.dtype]):
        self.config = config
        self.norm = norm
        self.seg_nets = seg_nets
        # frames the SR network takes at once (1: single-image), from the recipe, not the (DDP-wrapped) module
        self.frames = 1 if config.model.arch == "hat" else int(config.data.frames)
        self.device = device
        self.amp_dtype = amp_dtype
        self.names = config.loss_names
        self.degradation = None
        if "consistency_l1" in self.names:
            from ..data.degrade import Degradation

            kwargs = {"scale": config.model.scale}
            if config.loss.psf_sigma is not None:
                kwargs["sigma_hr"] = config.loss.psf_sigma
            elif config.data.bands:  # each band its own PSF width (its MTF at Nyquist)
                from ..data.degrade import sigma_for_bands

                kwargs["sigma_hr"] = sigma_for_bands(config.data.bands, config.model.scale)
            self.degradation = Degradation(**kwargs).to(device)

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def sr(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Every configured SR term of one batch, through the one table of terms (``loss_terms``)."""
        dev = self.device
        lr = self.norm.to_model(batch["lr"].to(dev, non_blocking=True).float())  # [B, T, C, h, w]
        with self.autocast():
            sr = model(model_input(lr, self.frames))
        hr_valid = batch["hr_valid"].to(dev) if batch.get("hr_valid") is not None else None
        mask_valid = batch["mask_valid"].to(dev) if batch.get("mask_valid") is not None else hr_valid
        targets = [t for t in ("buildings", "roads") if t in batch]
        labelled = None
        flags = [batch[f"has_{t}"] for t in targets if f"has_{t}" in batch]
        if flags:
            labelled = torch.stack(flags).all(0).to(dev)
        view = Batch(
            sr=sr.float(), lr=lr, lr_valid=batch["lr_valid"].to(dev),
            hr=self.norm.to_model(batch["hr"].to(dev).float()) if self.config.uses_hr else None,
            hr_valid=hr_valid, mask_valid=mask_valid, masks={t: batch[t].to(dev) for t in targets},
            labelled=labelled, border=self.config.loss.border, seg_nets=self.seg_nets,
            degradation=self.degradation, autocast=self.autocast,
        )
        return {n: LOSS_TERMS[n].compute(view) for n in self.names}

    def segmentation(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        from . import losses as L

        image = self.norm.to_model(batch["image"].to(self.device).float())
        mask = batch["mask"].to(self.device).float()
        valid = batch.get("valid")
        valid = valid.to(self.device) if valid is not None else None
        with self.autocast():
            logits = model(image)
        logits = logits.float()
        out = {}
        if "dice" in self.names:
            out["dice"] = L.soft_dice_loss(logits, mask, valid=valid)
        if "bce" in self.names:
            out["bce"] = _masked_bce(logits, mask, valid)
        return {n: out[n] for n in self.names}


CURVE_METRICS = ("cpsnr", "cssim", "buildings_dice", "roads_dice", "dice")


def curves_history(history: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The history with only the headline validation metrics, for readable training-curve plots."""
    return [{**h, "val": {k: v for k, v in (h.get("val") or {}).items() if k in CURVE_METRICS}} for h in history]


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGTERM and SIGINT until the block ends, then deliver them (main thread only).

    The QGIS dialog stops a run with SIGTERM; landing between two renames it
    would leave ``history.json`` and ``last.pt`` describing different epochs.
    Elsewhere than the main thread Python cannot catch signals: the block runs as is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: List[int] = []
    previous: Dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            previous[sig] = signal.signal(sig, lambda signum, _frame: caught.append(signum))
        except (ValueError, OSError):  # pragma: no cover - no signals on this platform
            pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if caught:
            os.kill(os.getpid(), caught[0])  # now that the files agree, stop as asked


def _commit_together(writers: Mapping[Path, Callable[[Path], None]]) -> None:
    """Write each file into its temporary sibling, then rename them all in order, signals held.

    Files that describe the same moment (the resume state and the history of
    its epochs) are either all the old ones or all the new ones: the slow part
    (writing) happens before, only the renames happen inside the held block.
    """
    temps: List[Any] = []
    try:
        for path, write in writers.items():
            remove_orphans(path)
            tmp = temp_path_for(path)
            temps.append((tmp, path))
            write(tmp)
        with _signals_held():
            for tmp, path in temps:
                replace_file(tmp, path)
    finally:
        for tmp, _ in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _resume_signature(config: TrainConfig, world_size: int, network: Optional[Mapping[str, Any]] = None
                      ) -> Dict[str, Any]:
    full = config_to_dict(config)
    sig = {k: full[k] for k in _RESUME_KEYS}
    if network is not None:
        sig["network"] = dict(network)
    sig["world_size"] = world_size  # the global batch (and so the trajectory) depends on it
    sig["data"] = {k: full["data"][k] for k in _RESUME_DATA_KEYS}
    if config.scheduler.name == "cosine":  # its period is the number of epochs; otherwise runs may be extended
        sig["epochs"] = config.epochs
    return json.loads(json.dumps(sig))


def _diff_keys(a: Any, b: Any, prefix: str = "") -> List[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys: List[str] = []
        for k in sorted(set(a) | set(b)):
            keys += _diff_keys(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k)
        return keys
    return [] if a == b else [prefix]


# --------------------------------------------------------------------------- the run


class Trainer:
    """One training run (see :func:`train`). After :meth:`fit`, ``model`` holds the final weights.

    Not reused across runs. ``fit`` is what :func:`train` calls; the class is
    public so tools (and the DDP test) can inspect the trained network of every rank.
    """

    def __init__(self, config: TrainConfig, progress: Optional[ProgressCallback] = None, resume: bool = True,
                 cancel: Any = None):
        self.config = config
        self.progress_cb = progress
        self.resume = resume
        self.cancel = cancel
        self.out = Path(config.out_dir)
        self.device = ddp.resolve_device(config.device)
        self.ctx = ddp.DistContext()

    # -- events (rank 0 only)
    def emit(self, event: str, **payload: Any) -> None:
        if self.progress_cb is not None and self.ctx.is_main:
            self.progress_cb({"event": event, **payload})

    def log(self, message: str) -> None:
        self.emit("log", message=message)

    # -- setup
    def setup(self) -> None:
        cfg = self.config
        self.ctx = ddp.init_distributed(self.device)
        splits = preflight(cfg, self.ctx.world_size)
        from ..data.scene import read_scene

        self.train_scenes = [read_scene(p) for p in splits[cfg.data.train_split]]
        val_paths = splits[cfg.data.val_split][: cfg.data.val_scenes] if cfg.data.val_scenes else \
            splits[cfg.data.val_split]
        self.val_scenes = [read_scene(p) for p in val_paths]
        self._check_scenes()
        self.band_idx = band_indices(cfg, self.train_scenes)
        self.bands = [self.train_scenes[0].bands[i] for i in self.band_idx] if self.train_scenes[0].bands else []

        seed_everything(cfg.seed)
        self.model, init_card = _build_model(cfg, self.device)
        self.norm = _normalization(cfg, self.train_scenes, init_card)
        if init_card is not None:
            self.log(f"fine-tuning from {cfg.model.init_from}")
        self.amp_dtype = _amp_dtype(cfg, self.device)
        self.seg_nets: Dict[str, FrozenSegNet] = {}
        self.seg_cards = {}
        if cfg.task == "sr":
            for target in ("buildings", "roads"):
                path = getattr(cfg.seg_nets, target)
                if path:  # used by the task loss and/or reported as validation metrics
                    net, card = load_frozen_segnet(path, self.device, source_norm=self.norm)
                    net.channels = self._seg_channels(card, path)
                    self.seg_nets[target] = net
                    self.seg_cards[target] = card
        self.ddp_model = ddp.wrap_model(self.model, self.ctx, self.device)
        self.dataset = _make_dataset(cfg, self.train_scenes)
        from torch.utils.data import DataLoader
        from torch.utils.data.distributed import DistributedSampler

        # The same seeded permutation on every rank, each taking every world_size-th index:
        # step k of N ranks covers exactly the samples of step k of one rank with an N x batch.
        self.sampler = DistributedSampler(self.dataset, num_replicas=self.ctx.world_size, rank=self.ctx.rank,
                                          shuffle=True, seed=cfg.seed, drop_last=True)
        self.loader = DataLoader(self.dataset, batch_size=cfg.data.batch_size, sampler=self.sampler,
                                 num_workers=cfg.data.num_workers, drop_last=True,
                                 pin_memory=self.device.type == "cuda")
        self.steps = len(self.loader)
        if cfg.max_steps_per_epoch:
            self.steps = min(self.steps, cfg.max_steps_per_epoch)
        if self.steps < 1:
            raise ConfigError("data.batch_size: no full batch fits in one epoch")
        self.optimizer = _make_optimizer(cfg, [p for p in self.model.parameters() if p.requires_grad])
        self.scheduler = _make_scheduler(cfg, self.optimizer)
        self.weighting = _make_weighting(cfg)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.losses = _LossComputer(cfg, self.norm, self.seg_nets, self.device, self.amp_dtype)
        self.metric, self.mode = cfg.resolved_best_metric()
        self.history: List[Dict[str, Any]] = []
        self.best_value: Optional[float] = None
        self.best_epoch: Optional[int] = None
        self.start_epoch = 1
        if self.resume and (self.out / RESUME_FILE).is_file():
            self._load_resume_state()  # refuses another recipe before anything in the folder changes
        elif not self.resume and self.ctx.is_main:
            stale = [self.out / n for n in RUN_FILES if (self.out / n).is_file()]
            for path in stale:  # a fresh start must not leave the previous run's best checkpoint behind
                path.unlink()
            if stale:
                self.log(f"starting afresh in {self.out}: removed the previous run's {', '.join(p.name for p in stale)}")
        if self.ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.out / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        ddp.barrier(self.ctx)

    def _network_hparams(self) -> Dict[str, Any]:
        from ..models.registry import unwrap

        return json.loads(json.dumps(dict(getattr(unwrap(self.model), "hparams", None) or {})))

    def _seg_channels(self, card, path) -> Optional[List[int]]:
        """Which of the SR output's bands a frozen network reads (None: all, in order)."""
        from ..inference.bands import canonical_band

        mine = [canonical_band(b) or b for b in self.bands]
        wanted = [canonical_band(b) or b for b in (card.bands or [])]
        if not wanted or wanted == mine or (len(mine) <= 1 and len(wanted) == 1):
            return None
        missing = [b for b in wanted if b not in mine]
        if missing:
            raise ConfigError(f"seg_nets: {path} reads {', '.join(card.bands)} but this run super-resolves "
                              f"{', '.join(self.bands) or 'one unnamed band'}")
        return [mine.index(b) for b in wanted]

    def _check_scenes(self) -> None:
        cfg = self.config
        for s in self.train_scenes:
            if cfg.task == "segmentation" or cfg.uses_hr:
                if s.hr is None:
                    raise ConfigError(f"data.root: scene {s.name} has no HR image, which this recipe needs")
            for target in cfg.task_targets + ([cfg.target] if cfg.task == "segmentation" else []):
                if target not in s.masks:
                    raise ConfigError(f"data.root: scene {s.name} has no {target} mask, which this recipe needs")
            if max(band_indices(cfg, [s])) >= s.lr.shape[1]:
                raise ConfigError(f"data.band: scene {s.name} has only {s.lr.shape[1]} band(s)")

    # -- resume state
    def _state(self, epoch: int) -> Dict[str, Any]:
        return {
            "format": RESUME_FORMAT,
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "weighting": self.weighting.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "rng": _rng_state(),
            "history": json.loads(json.dumps(self.history)),
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "normalization": self.norm.as_dict(),
            "signature": json.dumps(_resume_signature(self.config, self.ctx.world_size, self._network_hparams()),
                                    sort_keys=True),
        }

    def _load_resume_state(self) -> None:
        path = self.out / RESUME_FILE
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise TrainingError(f"{path}: cannot read the resume state ({exc}); "
                                "start afresh with --no-resume") from None
        if state.get("format") != RESUME_FORMAT:
            raise TrainingError(f"{path}: resume state of an unknown format; start afresh with --no-resume")
        saved = json.loads(state["signature"])
        diff = _diff_keys(saved, _resume_signature(self.config, self.ctx.world_size,
                                                   self._network_hparams() if "network" in saved else None))
        if diff:
            raise TrainingError(
                f"{path}: this run folder was trained with another recipe (differs in {', '.join(diff)}); "
                "use another out_dir, or --no-resume to start afresh"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.weighting.load_state_dict(state["weighting"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.norm = Normalization.from_card(state["normalization"])
        self.losses.norm = self.norm
        for net in self.seg_nets.values():
            net.source_norm = self.norm
        self.history = list(state["history"])
        self.best_value = state["best_value"]
        self.best_epoch = state["best_epoch"]
        self.start_epoch = int(state["epoch"]) + 1
        _set_rng_state(state["rng"])
        if self.ctx.is_main:  # a run killed between the two renames: the history follows the checkpoint
            write_text_atomic(self.out / "history.json", json.dumps(self.history, indent=1))
        self.log(f"resumed from {path} after epoch {state['epoch']}")

    # -- checkpoints
    def _card(self, metrics: Dict[str, Any], epoch: int):
        from ..models.zoo import ModelCard

        cfg = self.config
        hparams = dict(getattr(self.model, "hparams", None) or {})
        if not hparams:
            hparams = dict(cfg.model.hparams)
            if cfg.model.preset:
                hparams["preset"] = cfg.model.preset
        recipe = {
            "task": cfg.task,
            "losses": [{"name": t.name, "weight": t.weight, "proportion": t.proportion} for t in cfg.loss.terms],
            "weighting": cfg.loss.weighting,
            "reference": cfg.loss.reference,
            "final_weights": {k: float(v) for k, v in self.weighting.weights.items()},
            "data": {"root": str(cfg.data.root), "version": cfg.data.version,
                     "train_scenes": len(self.train_scenes), "lr_patch": cfg.data.lr_patch,
                     "seg_patch": cfg.data.seg_patch, "frames": cfg.data.frames,
                     "samples_per_epoch": cfg.data.samples_per_epoch,
                     "selection": {"share": cfg.data.selection.share,
                                   "min_coverage": cfg.data.selection.min_coverage,
                                   "classes": list(cfg.data.selection.classes)}},
            "epochs": epoch,
            "batch_size": cfg.data.batch_size,
            "global_batch": cfg.data.batch_size * self.ctx.world_size,
            "world_size": self.ctx.world_size,
            "optimizer": cfg.optimizer,
            "lr": cfg.lr,
            "seed": cfg.seed,
            "init_from": cfg.model.init_from,
            "seg_nets": {t: getattr(cfg.seg_nets, t) for t in ("buildings", "roads")},
            "experiment": {"id": cfg.experiment.id, "table": cfg.experiment.table,
                           "title": cfg.experiment.title},
        }
        is_sr = cfg.task == "sr"
        return ModelCard(
            arch=cfg.model.arch,
            hparams=hparams,
            task=cfg.task,
            target=cfg.target,
            scale=int(getattr(self.model, "scale", cfg.model.scale)) if is_sr else 1,
            bands=self.bands,
            frames=int(getattr(self.model, "frames", cfg.data.frames)) if is_sr else 1,
            normalization=self.norm.as_dict(),
            recipe=recipe,
            metrics={"val": metrics, "val_epoch": epoch},
            name=cfg.name,
            description=cfg.experiment.title or f"{cfg.task} network trained by core.training",
        )

    def _save(self, epoch: int, val: Dict[str, Any], improved: bool) -> None:
        from ..models.zoo import save_checkpoint

        if not self.ctx.is_main:
            return
        card = self._card(val, epoch)
        save_checkpoint(self.out / "last.safetensors", self.model, card)
        if improved:
            save_checkpoint(self.out / "best.safetensors", self.model, card)
        # last.pt carries the history too; history.json (read by the QGIS dialog) is renamed right after it.
        state = self._state(epoch)
        history = json.dumps(self.history, indent=1)
        _commit_together({
            self.out / RESUME_FILE: lambda tmp: torch.save(state, tmp),
            self.out / "history.json": lambda tmp: tmp.write_text(history, encoding="utf-8"),
        })
        # Drawing costs seconds (matplotlib layout), so only now and then and at the end;
        # the live curves of the QGIS dialog come from the progress events instead.
        if epoch == self.config.epochs or epoch % PLOT_EVERY == 0:
            try:
                from ..evaluation.report import plot_training_curves

                plot_training_curves(curves_history(self.history), self.out / "training_curves.png",
                                     title=self.config.name)
            except Exception as exc:  # a plot must never stop a training run
                self.log(f"training curves not drawn: {exc}")

    # -- validation
    def validate(self) -> Dict[str, Any]:
        cfg = self.config
        if not self.ctx.is_main:
            return {}
        # Validation goes through the plugin's tiled passes, like evaluation (core.evaluation.scene_predict).
        from ..inference.loading import LoadedModel
        from ..inference.planning import TilePlan, plan_tiles

        loaded = LoadedModel(self.model, self._card({}, 0), f"validation of {cfg.name}", None, self.device)
        bands = self.band_idx
        scale = loaded.scale
        seg_plan = TilePlan(cfg.val_tile * scale, cfg.val_overlap * scale, 1)
        if cfg.task == "segmentation":
            res = evaluate_segmentation(loaded, self.val_scenes, bands, seg_plan)
        else:
            seg = {t: LoadedModel(n.net, self.seg_cards[t], f"{t} network", None, self.device)
                   for t, n in self.seg_nets.items()}
            # the recipe's tile and overlap, batched as inference batches them (RAMS needs a few tiles per
            # call on the CPU to stay on oneDNN's fast 3-D convolutions)
            plan = plan_tiles(loaded.card, self.device, "sr", cfg.val_tile, cfg.val_overlap)
            res = evaluate_sr(loaded, self.val_scenes, bands, seg, plan, seg_plan, cfg.loss.border, anchored=False)
        res.pop("scenes", None)
        if res.get("lpips") is None:  # not computed during validation (kept cheap)
            res.pop("lpips", None)
        return scalar_metrics(res)

    # -- training
    def _check_finite(self, values: torch.Tensor, names: List[str], epoch: int, step: int, total: float) -> None:
        bad = [n for n, v in zip(names, values.tolist()) if not math.isfinite(v)]
        if bad or not math.isfinite(total):
            what = ", ".join(f"'{n}'" for n in bad) or "the weighted total"
            raise NonFiniteLossError(
                f"loss {what} became {values.tolist() if bad else total} at epoch {epoch}, step {step}; "
                "training stopped. Lower the learning rate (lr), check the data for NaN/invalid pixels, "
                "or use amp: off. last.pt holds the last completed epoch."
            )

    def run(self) -> Path:
        cfg = self.config
        self.setup()
        total_epochs = cfg.epochs
        if self.start_epoch > total_epochs:
            self.log(f"run already complete ({total_epochs} epochs)")
        t_steps = 0.0
        n_steps = 0
        for epoch in range(self.start_epoch, total_epochs + 1):
            self.emit("log", message=f"epoch {epoch}/{total_epochs}", epoch=epoch)
            self.dataset.set_epoch(epoch)
            self.sampler.set_epoch(epoch)
            self.ddp_model.train()
            names = self.losses.names
            sums = torch.zeros(len(names) + 1, dtype=torch.float64)
            count = 0
            t_epoch = time.perf_counter()
            for step, batch in enumerate(itertools.islice(self.loader, self.steps), start=1):
                if self.cancel is not None and getattr(self.cancel, "cancelled", False):
                    raise TrainingCancelled(f"training cancelled at epoch {epoch}, step {step}; "
                                            f"{self.out / RESUME_FILE} holds the last completed epoch")
                t0 = time.perf_counter()
                compute = self.losses.segmentation if cfg.task == "segmentation" else self.losses.sr
                terms = compute(self.ddp_model, batch)
                total = self.weighting.combine(terms)
                reduced = torch.stack([v.detach() for v in terms.values()] + [total.detach()]).to(torch.float64)
                reduced = ddp.all_reduce_mean(self.ctx, reduced.to(self.device)).cpu()
                self._check_finite(reduced[:-1], names, epoch, step, float(reduced[-1]))
                self.optimizer.zero_grad(set_to_none=True)
                if self.scaler is not None:
                    self.scaler.scale(total).backward()
                    self.scaler.unscale_(self.optimizer)
                else:
                    total.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                if self.scaler is not None:
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    self.optimizer.step()
                self.weighting.observe({n: reduced[i].float() for i, n in enumerate(names)})
                sums += reduced
                count += 1
                t_steps += time.perf_counter() - t0
                n_steps += 1
                if step % cfg.log_every == 0 or step == self.steps:
                    remaining = (total_epochs - epoch) * self.steps + (self.steps - step)
                    self.emit("step", epoch=epoch, epochs=total_epochs, step=step, steps=self.steps,
                              losses={n: float(reduced[i]) for i, n in enumerate(names)},
                              loss=float(reduced[-1]),
                              weights={k: float(v) for k, v in self.weighting.weights.items()},
                              lr=float(self.optimizer.param_groups[0]["lr"]),
                              eta_s=float(t_steps / n_steps * remaining))
            train_means = {n: float(sums[i] / max(1, count)) for i, n in enumerate(names)}
            train_means["total"] = float(sums[-1] / max(1, count))
            weights_used = {k: float(v) for k, v in self.weighting.weights.items()}
            new_weights = self.weighting.end_epoch(sync=False)  # losses were already all-reduced per step
            new_weights = {k: float(v) for k, v in (new_weights or self.weighting.weights).items()}
            if self.scheduler is not None:
                self.scheduler.step()
            train_time = time.perf_counter() - t_epoch

            val: Dict[str, Any] = {}
            improved = False
            if epoch % cfg.validate_every == 0 or epoch == total_epochs:
                val = self.validate()
                value = val.get(self.metric)
                if value is not None and math.isfinite(value) and (
                    self.best_value is None
                    or (value > self.best_value if self.mode == "max" else value < self.best_value)
                ):
                    self.best_value, self.best_epoch, improved = float(value), epoch, True
            if self.best_epoch is None and epoch == total_epochs:
                improved = True  # no usable metric: the final weights are the best we have
                self.best_epoch = epoch
            record = {"epoch": epoch, "train": train_means, "val": val, "weights": weights_used,
                      "next_weights": new_weights, "lr": float(self.optimizer.param_groups[0]["lr"]),
                      "time_s": train_time, "improved": improved}
            self.history.append(record)
            self._save(epoch, val, improved)
            ddp.barrier(self.ctx)
            self.emit("epoch", epoch=epoch, epochs=total_epochs, train=train_means, val=val,
                      weights=weights_used, next_weights=new_weights, time_s=train_time,
                      best={"metric": self.metric, "value": self.best_value, "epoch": self.best_epoch},
                      improved=improved)
        best = self.out / "best.safetensors"
        self.emit("done", checkpoint=str(best), run_dir=str(self.out), best_epoch=self.best_epoch,
                  best_value=self.best_value, metric=self.metric)
        return best

    def fit(self) -> Path:
        """Run the whole recipe (deterministic kernels on, errors reported as events)."""
        try:
            with _deterministic(self.config.deterministic):
                return self.run()
        except Exception as exc:
            with contextlib.suppress(Exception):
                self.emit("error", message=str(exc), kind=type(exc).__name__)
            raise
        finally:
            ddp.shutdown(self.ctx)


def train(config: TrainConfig, progress: Optional[ProgressCallback] = None, resume: bool = True,
          cancel: Any = None) -> Path:
    """Train one recipe; returns the path of ``best.safetensors``.

    ``progress`` receives event dicts (rank 0 only):

    * ``{"event": "step", epoch, epochs, step, steps, losses, loss, weights, lr, eta_s}``
    * ``{"event": "epoch", epoch, epochs, train, val, weights, next_weights, best, improved, time_s}``
    * ``{"event": "log", message}``, ``{"event": "done", checkpoint, run_dir, ...}``,
      ``{"event": "error", message}`` (then the exception is raised).

    ``resume`` continues from ``out_dir/last.pt`` when present. ``cancel`` is any
    object with a ``cancelled`` attribute (e.g. ``core.inference.CancelToken``),
    checked between steps. Configuration problems raise
    :class:`core.config.ConfigError` before the first step; NaN/inf losses raise
    :class:`NonFiniteLossError` naming the term and step.
    """
    return Trainer(config, progress, resume, cancel).fit()
