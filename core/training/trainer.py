"""``train(config)``: one training run for segmentation networks or (task-driven) super-resolution.

* **segmentation** - UNet++ on HR patches against a building or road mask, with
  soft Dice (optionally + BCE): :class:`.segmentation_task.SegmentationTrainer`;
* **sr** - RAMS, HAT or any registered SR network on LR/HR patches with any
  weighted combination of cL1, cMSE, consistency cL1 and the task-driven losses:
  Dice of a *frozen* segmentation network applied to the SR output (gradients
  flow through the frozen network into the SR network): :class:`.sr_task.SRTrainer`.

Both run the loop of :mod:`.loop` (resume, checkpoints, DDP, validation); what
the loop is built from lives in :mod:`.factories`, the loss terms of one batch
in :mod:`.batch_losses`, the run folder's paired writes in :mod:`.run_files`.
The names callers import from here are re-exported.

Progress events are dicts handed to ``progress``: ``step``, ``epoch``, ``log``,
``done`` and ``error`` (see :func:`train`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Type

from .config import TrainConfig
from .factories import seed_everything
from .loop import NonFiniteLossError, ProgressCallback, TrainingCancelled, TrainingError, TrainingLoop
from .run_files import RESUME_FILE, curves_history
from .segmentation_task import SegmentationTrainer
from .sr_task import SRTrainer

__all__ = [
    "TrainingError",
    "NonFiniteLossError",
    "TrainingCancelled",
    "ProgressCallback",
    "TrainingLoop",
    "TASK_TRAINERS",
    "trainer_for",
    "train",
    "curves_history",
    "seed_everything",
    "RESUME_FILE",
]

#: The loop that trains each recipe ``task``.
TASK_TRAINERS: Dict[str, Type[TrainingLoop]] = {t.task: t for t in (SRTrainer, SegmentationTrainer)}


def trainer_for(config: TrainConfig, progress: Optional[ProgressCallback] = None, resume: bool = True,
                cancel: Any = None) -> TrainingLoop:
    """The task's trainer for one run (call ``fit()`` on it); tools use it to inspect the trained network."""
    return TASK_TRAINERS[config.task](config, progress, resume, cancel)


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
    return trainer_for(config, progress, resume, cancel).fit()
