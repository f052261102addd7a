"""The loss terms of one training batch: the model's forward pass and every configured term, unweighted.

Why apart from the loop: this is the only place that turns a batch into loss
values (SR terms through the one table in :mod:`.loss_terms`, segmentation as
soft Dice and masked BCE); :class:`.loop.TrainingLoop` only weights, reduces and
steps. Kept out of :mod:`.loss_terms` so that the config schema, which reads
that table, does not pull in inference and the frozen segmentation networks.
"""

from __future__ import annotations

import contextlib
from typing import Dict, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..data.weak_labels import weak_label_loss
from ..evaluation.segnets import FrozenSegNet, Normalization
from ..inference.sr import model_input
from ..models import losses as L
from ..models.registry import spec
from .config import TrainConfig
from .loss_terms import LOSS_TERMS, Batch

__all__ = ["LossComputer"]


def _masked_bce(logits: torch.Tensor, target: torch.Tensor, valid: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean BCE over the valid pixels only: nodata must not teach the network 'no object'."""
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    if valid is None:
        return loss.mean()
    w = valid.to(loss.dtype).reshape(loss.shape[0], 1, *loss.shape[-2:]).expand_as(loss)
    return (loss * w).sum() / w.sum().clamp_min(1.0)


class LossComputer:
    """Computes every configured loss term of one batch (unweighted), as float32 scalars."""

    def __init__(self, config: TrainConfig, norm: Normalization, seg_nets: Dict[str, FrozenSegNet],
                 device: torch.device, amp_dtype: Optional[torch.dtype]):
        self.config = config
        self.norm = norm
        self.seg_nets = seg_nets
        # frames the SR network takes at once (1: single-image), from the recipe, not the (DDP-wrapped) module
        self.frames = int(config.data.frames) if spec(config.model.arch).multi_image else 1
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
        if "weak_real" in self.names:  # one real crop rides along with every synthetic patch
            weak = self.config.data.weak
            image = self.norm.to_model(batch["weak_image"].to(self.device).float())
            with self.autocast():
                weak_logits = model(image)
            out["weak_real"] = weak_label_loss(weak_logits.float(), batch["weak_label"].to(self.device),
                                               batch["weak_valid"].to(self.device), weak.present_share,
                                               weak.absent_share)
        return {n: out[n] for n in self.names}
