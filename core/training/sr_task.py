"""Super-resolution as a training task: the SR network, optionally judged by frozen segmentation networks.

The frozen building/road networks serve the task-driven Dice losses and the
validation Dice; the SR output is fed to them in their own bands and
normalization (see :mod:`core.evaluation.segnets`).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch

from ..evaluation.evaluate import evaluate_sr
from ..evaluation.segnets import load_frozen_segnet
from ..inference.loading import LoadedModel
from ..inference.planning import TilePlan, plan_tiles
from ..io.sentinel2 import canonical_band
from .config import ConfigError
from .loop import TrainingLoop

__all__ = ["SRTrainer"]


class SRTrainer(TrainingLoop):
    """RAMS, HAT or any registered SR network, with any weighted mix of pixel, consistency and task losses."""

    task = "sr"

    def load_task_networks(self) -> None:
        for target in ("buildings", "roads"):
            path = getattr(self.config.seg_nets, target)
            if path:  # used by the task loss and/or reported as validation metrics
                net, card = load_frozen_segnet(path, self.device, source_norm=self.norm)
                net.channels = self._seg_channels(card, path)
                self.seg_nets[target] = net
                self.seg_cards[target] = card

    def _seg_channels(self, card: Any, path: str) -> Optional[List[int]]:
        """Which of the SR output's bands a frozen network reads (None: all, in order)."""
        mine = [canonical_band(b) or b for b in self.bands]
        wanted = [canonical_band(b) or b for b in (card.bands or [])]
        if not wanted or wanted == mine or (len(mine) <= 1 and len(wanted) == 1):
            return None
        missing = [b for b in wanted if b not in mine]
        if missing:
            raise ConfigError(f"seg_nets: {path} reads {', '.join(card.bands)} but this run super-resolves "
                              f"{', '.join(self.bands) or 'one unnamed band'}")
        return [mine.index(b) for b in wanted]

    def compute_losses(self, model: torch.nn.Module, batch: Any) -> Dict[str, torch.Tensor]:
        return self.losses.sr(model, batch)

    def validation_metrics(self, loaded: LoadedModel, seg_plan: TilePlan) -> Dict[str, Any]:
        cfg = self.config
        seg = {t: LoadedModel(n.net, self.seg_cards[t], f"{t} network", None, self.device)
               for t, n in self.seg_nets.items()}
        # the recipe's tile and overlap, batched as inference batches them (RAMS needs a few tiles per
        # call on the CPU to stay on oneDNN's fast 3-D convolutions)
        plan = plan_tiles(loaded.card, self.device, cfg.val_tile, cfg.val_overlap)
        return evaluate_sr(loaded, self.val_scenes, self.band_idx, seg, plan, seg_plan, cfg.loss.border,
                           anchored=False)

    def output_geometry(self) -> Tuple[int, int]:
        cfg = self.config
        return (int(getattr(self.model, "scale", cfg.model.scale)),
                int(getattr(self.model, "frames", cfg.data.frames)))
