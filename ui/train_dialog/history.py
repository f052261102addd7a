"""What a training run reported so far: the reducer of the trainer's JSON events, and ETA wording.

Why a plain reducer: the trainer prints one JSON event per line (``step``,
``epoch``, ``log``, ``done``, ``error``); the dialog's progress bar, curves
and status all read one :class:`TrainHistory` fed event by event, which is
also how a recorded run is replayed. No Qt here.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

__all__ = ["TrainHistory", "format_eta", "read_events"]


@dataclass
class TrainHistory:
    """What the trainer reported so far, arranged for the curves and the progress bar."""

    epochs_total: int = 0
    epoch: int = 0
    step: int = 0
    steps: int = 0
    eta_s: Optional[float] = None
    epochs: List[int] = field(default_factory=list)
    train: Dict[str, List[float]] = field(default_factory=dict)
    weights: Dict[str, List[float]] = field(default_factory=dict)
    val: Dict[str, List[Optional[float]]] = field(default_factory=dict)
    step_x: List[float] = field(default_factory=list)
    step_loss: List[float] = field(default_factory=list)
    checkpoint: Optional[str] = None
    error: Optional[str] = None
    best: Optional[Dict[str, Any]] = None

    def feed(self, event: Dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "step":
            self.epochs_total = int(event.get("epochs") or self.epochs_total)
            self.epoch = int(event.get("epoch") or self.epoch)
            self.step, self.steps = int(event.get("step") or 0), int(event.get("steps") or 0)
            self.eta_s = event.get("eta_s")
            loss = event.get("loss")
            if isinstance(loss, (int, float)) and math.isfinite(loss) and self.steps:
                self.step_x.append(self.epoch - 1 + self.step / self.steps)
                self.step_loss.append(float(loss))
        elif kind == "epoch":
            e = int(event.get("epoch") or len(self.epochs) + 1)
            self.epochs_total = int(event.get("epochs") or self.epochs_total)
            self.epoch = e
            if e in self.epochs:  # a resumed run repeats nothing, but be safe
                return
            self.epochs.append(e)
            n = len(self.epochs)
            for group, values in ((self.train, event.get("train") or {}), (self.weights, event.get("weights") or {}),
                                  (self.val, event.get("val") or {})):
                for k, v in values.items():
                    if k == "scenes":
                        continue
                    series = group.setdefault(k, [None] * (n - 1))
                    series.append(float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None)
                for series in group.values():
                    while len(series) < n:
                        series.append(None)
            self.best = event.get("best") or self.best
        elif kind == "done":
            self.checkpoint = event.get("checkpoint")
        elif kind == "error":
            self.error = str(event.get("message") or "the trainer stopped with an error")

    @property
    def fraction(self) -> float:
        if not self.epochs_total:
            return 0.0
        within = self.step / self.steps if self.steps else 0.0
        done = (self.epoch - 1 + within) if self.step else len(self.epochs)
        return max(0.0, min(1.0, done / self.epochs_total))


def format_eta(seconds: Optional[float]) -> str:
    if seconds is None or not math.isfinite(seconds):
        return ""
    s = int(round(seconds))
    if s < 60:
        return f"about {s} s left"
    if s < 3600:
        return f"about {s // 60} min {s % 60:02d} s left"
    return f"about {s // 3600} h {(s % 3600) // 60:02d} min left"


def read_events(path: os.PathLike) -> List[Dict[str, Any]]:
    """Trainer events from a ``--progress jsonl`` log file."""
    out: List[Dict[str, Any]] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out
