"""Segmentation as a training task: a network on HR patches against one target's mask (buildings or roads)."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import torch

from ..evaluation.evaluate import evaluate_segmentation
from ..inference.loading import LoadedModel
from ..inference.planning import TilePlan
from .loop import TrainingLoop

__all__ = ["SegmentationTrainer"]


class SegmentationTrainer(TrainingLoop):
    """UNet++ (or any registered segmentation network) with soft Dice, optionally plus BCE."""

    task = "segmentation"

    def required_targets(self) -> List[str]:
        return list(self.config.task_targets) + [self.config.target]

    def needs_hr(self) -> bool:
        return True

    def compute_losses(self, model: torch.nn.Module, batch: Any) -> Dict[str, torch.Tensor]:
        return self.losses.segmentation(model, batch)

    def validation_metrics(self, loaded: LoadedModel, seg_plan: TilePlan) -> Dict[str, Any]:
        return evaluate_segmentation(loaded, self.val_scenes, self.band_idx, seg_plan)

    def output_geometry(self) -> Tuple[int, int]:
        return 1, 1
