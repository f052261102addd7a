"""The training loop every task shares: setup, epochs, DDP reduction, validation schedule, resume, checkpoints.

What differs between tasks (which networks ride along, which losses a batch
computes, how validation scores, what geometry the card records) is a hook
that :mod:`.sr_task` and :mod:`.segmentation_task` fill, as torchgeo's
``trainers/base.py`` leaves its tasks to subclasses. :func:`.trainer.train`
picks the subclass from the recipe's ``task``.

The run directory (``out_dir``) holds, after every epoch: ``last.pt`` (the whole
resume state: model, optimizer, scheduler, loss weighting, AMP scaler, RNG
states, epoch, history; plain tensors and containers so it loads with
``torch.load(weights_only=True)``; written atomically), ``last.safetensors`` and
``best.safetensors`` (model checkpoints with a full model card), ``history.json``,
``training_curves.png`` and ``config.yaml`` (the resolved recipe). A killed run
started again with the same config resumes from ``last.pt`` and ends with the
same weights as an uninterrupted run: the patch datasets are deterministic in
(seed, epoch, index) and every other source of randomness is restored.

Under ``torchrun`` the same loop trains with DistributedDataParallel
(see :mod:`.distributed`); only rank 0 writes files and reports progress.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import yaml
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from ..data.scene import read_scene
from ..evaluation.evaluate import scalar_metrics
from ..evaluation.segnets import FrozenSegNet, Normalization
from ..inference.loading import LoadedModel
from ..inference.planning import TilePlan
from ..io.atomic import write_text_atomic
from ..models.registry import unwrap
from ..models.zoo import ModelCard, save_checkpoint
from . import distributed as ddp
from .batch_losses import LossComputer
from .card_facts import training_level, training_stats
from .config import (
    ConfigError,
    TrainConfig,
    config_to_dict,
    preflight,
)
from .factories import (
    amp_dtype_for,
    band_indices,
    build_model,
    deterministic_kernels,
    input_normalization,
    make_dataset,
    make_loss_weighting,
    make_optimizer,
    make_scheduler,
    rng_state,
    seed_everything,
    set_rng_state,
)
from .run_files import (
    RESUME_FILE,
    RESUME_FORMAT,
    RUN_FILES,
    commit_together,
    curves_history,
    diff_keys,
    resume_signature,
)

__all__ = ["TrainingError", "NonFiniteLossError", "TrainingCancelled", "ProgressCallback", "TrainingLoop"]

ProgressCallback = Callable[[Dict[str, Any]], None]
PLOT_EVERY = 10  # epochs between redraws of training_curves.png (always drawn after the last epoch)


class TrainingError(RuntimeError):
    """Training stopped for a reason the user can act on."""


class NonFiniteLossError(TrainingError):
    """A loss term became NaN or infinite."""


class TrainingCancelled(TrainingError):
    """The user cancelled; the last completed epoch is in ``last.pt``."""


# --------------------------------------------------------------------------- the run


class TrainingLoop:
    """One training run of one task (a subclass). After :meth:`fit`, ``model`` holds the final weights.

    Not reused across runs. ``fit`` is what :func:`.trainer.train` calls; the
    class is public so tools (and the DDP test) can inspect the trained network
    of every rank. Subclasses implement the hooks of the "task" section.
    """

    #: The recipe ``task`` this loop trains (``"sr"``, ``"segmentation"``).
    task = ""

    def __init__(self, config: TrainConfig, progress: Optional[ProgressCallback] = None, resume: bool = True,
                 cancel: Any = None):
        self.config = config
        self.progress_cb = progress
        self.resume = resume
        self.cancel = cancel
        self.out = Path(config.out_dir)
        self.device = ddp.resolve_device(config.device)
        self.ctx = ddp.DistContext()

    # -- the task's hooks
    def load_task_networks(self) -> None:
        """Load networks the task needs besides the one it trains (none by default)."""

    def required_targets(self) -> List[str]:
        """Masks every training scene must hold."""
        return list(self.config.task_targets)

    def needs_hr(self) -> bool:
        """Whether every training scene must hold its HR image."""
        return bool(self.config.uses_hr)

    def compute_losses(self, model: torch.nn.Module, batch: Any) -> Dict[str, torch.Tensor]:
        """The unweighted loss terms of one batch."""
        raise NotImplementedError

    def validation_metrics(self, loaded: Any, seg_plan: Any) -> Dict[str, Any]:
        """Validation metrics of the network being trained (``loaded``) on the validation scenes."""
        raise NotImplementedError

    def output_geometry(self) -> Tuple[int, int]:
        """``(scale, frames)`` the card records for the trained network."""
        raise NotImplementedError

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
        self.train_scenes = [read_scene(p) for p in splits[cfg.data.train_split]]
        val_paths = splits[cfg.data.val_split][: cfg.data.val_scenes] if cfg.data.val_scenes else \
            splits[cfg.data.val_split]
        self.val_scenes = [read_scene(p) for p in val_paths]
        self._check_scenes()
        self.band_idx = band_indices(cfg, self.train_scenes)
        self.bands = [self.train_scenes[0].bands[i] for i in self.band_idx] if self.train_scenes[0].bands else []
        # what the card says the network saw: the level and reflectances of its training inputs
        jitter = cfg.data.radiometry  # drawn for every patch of both tasks (SR: revisits and HR alike)
        self.level = training_level(self.train_scenes, jitter)
        self.input_stats = training_stats(self.train_scenes, self.band_idx, self.bands or [
            f"band{i + 1}" for i in self.band_idx], hr=cfg.task == "segmentation", jitter=jitter, seed=cfg.seed,
            season=cfg.data.season if cfg.task == "segmentation" else None)

        seed_everything(cfg.seed)
        self.model, init_card = build_model(cfg, self.device)
        self.norm = input_normalization(cfg, self.train_scenes, init_card)
        if init_card is not None:
            self.log(f"fine-tuning from {cfg.model.init_from}")
        self.amp_dtype = amp_dtype_for(cfg, self.device)
        self.seg_nets: Dict[str, FrozenSegNet] = {}
        self.seg_cards: Dict[str, Any] = {}
        self.load_task_networks()
        self.ddp_model = ddp.wrap_model(self.model, self.ctx, self.device)
        self.dataset = make_dataset(cfg, self.train_scenes)
        if cfg.data.weak.root:
            counts = self.dataset.images.counts()
            self.log(f"real images labelled as a whole ({cfg.data.weak.root}): {counts['present']} with "
                     f"{cfg.target}, {counts['absent']} without")
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
        self.optimizer = make_optimizer(cfg, [p for p in self.model.parameters() if p.requires_grad])
        self.scheduler = make_scheduler(cfg, self.optimizer)
        self.weighting = make_loss_weighting(cfg)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.losses = LossComputer(cfg, self.norm, self.seg_nets, self.device, self.amp_dtype)
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
        return json.loads(json.dumps(dict(getattr(unwrap(self.model), "hparams", None) or {})))

    def _check_scenes(self) -> None:
        cfg = self.config
        for s in self.train_scenes:
            if self.needs_hr() and s.hr is None:
                raise ConfigError(f"data.root: scene {s.name} has no HR image, which this recipe needs")
            for target in self.required_targets():
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
            "rng": rng_state(),
            "history": json.loads(json.dumps(self.history)),
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "normalization": self.norm.as_dict(),
            "signature": json.dumps(resume_signature(self.config, self.ctx.world_size, self._network_hparams()),
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
        diff = diff_keys(saved, resume_signature(self.config, self.ctx.world_size,
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
        set_rng_state(state["rng"])
        if self.ctx.is_main:  # a run killed between the two renames: the history follows the checkpoint
            write_text_atomic(self.out / "history.json", json.dumps(self.history, indent=1))
        self.log(f"resumed from {path} after epoch {state['epoch']}")

    # -- checkpoints
    def _card(self, metrics: Dict[str, Any], epoch: int):
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
            "data": {"root": str(cfg.data.root), "version": cfg.data.version, "level": self.level,
                     "train_scenes": len(self.train_scenes), "lr_patch": cfg.data.lr_patch,
                     "seg_patch": cfg.data.seg_patch, "frames": cfg.data.frames,
                     "samples_per_epoch": cfg.data.samples_per_epoch,
                     "selection": {"share": cfg.data.selection.share,
                                   "min_coverage": cfg.data.selection.min_coverage,
                                   "classes": list(cfg.data.selection.classes)},
                     # how segmentation patches were varied (radiometry, sharpness, season): only those drawn
                     "variation": {key: dataclasses.asdict(getattr(cfg.data, key))
                                   for key in ("radiometry", "sharpness", "season")
                                   if cfg.task == "segmentation" and getattr(cfg.data, key).active}},
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
        if cfg.data.weak.root:  # the real images labelled as a whole that rode along
            recipe["data"]["weak"] = {**dataclasses.asdict(cfg.data.weak), **self.dataset.images.counts()}
        scale, frames = self.output_geometry()
        return ModelCard(
            arch=cfg.model.arch,
            hparams=hparams,
            task=cfg.task,
            target=cfg.target,
            scale=scale,
            bands=self.bands,
            frames=frames,
            normalization=self.norm.as_dict(),
            recipe=recipe,
            metrics={"val": metrics, "val_epoch": epoch},
            name=cfg.name,
            description=cfg.experiment.title or f"{cfg.task} network trained by core.training",
            level=self.level,
            input_stats=self.input_stats,
        )

    def _save(self, epoch: int, val: Dict[str, Any], improved: bool) -> None:
        if not self.ctx.is_main:
            return
        card = self._card(val, epoch)
        save_checkpoint(self.out / "last.safetensors", self.model, card)
        if improved:
            save_checkpoint(self.out / "best.safetensors", self.model, card)
        # last.pt carries the history too; history.json (read by the QGIS dialog) is renamed right after it.
        state = self._state(epoch)
        history = json.dumps(self.history, indent=1)
        commit_together({
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
        loaded = LoadedModel(self.model, self._card({}, 0), f"validation of {cfg.name}", None, self.device)
        scale = loaded.scale
        res = self.validation_metrics(loaded, TilePlan(cfg.val_tile * scale, cfg.val_overlap * scale, 1))
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
                terms = self.compute_losses(self.ddp_model, batch)
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
            with deterministic_kernels(self.config.deterministic):
                return self.run()
        except Exception as exc:
            with contextlib.suppress(Exception):
                self.emit("error", message=str(exc), kind=type(exc).__name__)
            raise
        finally:
            ddp.shutdown(self.ctx)
