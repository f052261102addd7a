"""Loading a network for inference: checkpoint or in-memory pair, device, units.

Why a module of its own: super-resolution, segmentation, trust maps and
evaluation all need the same three things from a checkpoint (the network on a
device, its card, and the map between reflectance and the network's units),
and the same refusals when the file is not what the job needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..jobs import InputError
from ..models.card import ModelCard
from .precision import autocast_for, choose_precision

__all__ = ["LoadedModel", "ModelLike", "load_model", "load_models", "choose_device"]

#: A checkpoint path, or an already loaded ``(model, card)`` pair (tests, the trainer's validation).
ModelLike = Union[str, os.PathLike, Tuple[torch.nn.Module, Any]]


def _is_pair(obj: Any) -> bool:
    return isinstance(obj, (tuple, list)) and len(obj) == 2 and isinstance(obj[0], torch.nn.Module)


@dataclass
class LoadedModel:
    """A network in eval mode on its device, with its card and where it came from."""

    model: torch.nn.Module
    card: ModelCard
    source: str
    sha256: Optional[str]
    device: torch.device
    #: the autocast dtype it runs in (None: fp32); see ``core.inference.precision``
    autocast: Optional[torch.dtype] = None

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """The network on a batch already in its units and on its device, in the chosen number format."""
        with autocast_for(self.autocast, self.device):
            return self.model(x)

    @property
    def offset(self) -> float:
        return self.card.norm_offset

    @property
    def norm_scale(self) -> float:
        return self.card.norm_scale

    @property
    def name(self) -> str:
        return self.card.display_name

    @property
    def scale(self) -> int:
        return int(self.card.scale)

    @property
    def frames(self) -> int:
        """Dates the network takes at once (1 for single-image networks and segmentation)."""
        return self.card.input_frames

    @property
    def bands(self) -> List[str]:
        return [str(b) for b in self.card.bands]

    @property
    def channels(self) -> int:
        """Bands the network takes and returns jointly (1 for single-band networks)."""
        return self.card.in_chans

    def to_model(self, reflectance: np.ndarray) -> np.ndarray:
        # Element-wise unit changes run in NumPy: on a busy CPU every small multi-threaded
        # torch op waits for a second thread to be scheduled.
        return np.ascontiguousarray((reflectance - np.float32(self.offset)) / np.float32(self.norm_scale),
                                    dtype=np.float32)

    def to_reflectance(self, y: torch.Tensor) -> np.ndarray:
        return y.float().cpu().numpy() * np.float32(self.norm_scale) + np.float32(self.offset)


def choose_device(device: Union[str, torch.device, None], messages: List[str]) -> torch.device:
    """The device asked for, or the CPU with a message when CUDA is not available."""
    dev = torch.device(device or "cpu")
    if dev.type == "cuda" and not torch.cuda.is_available():
        messages.append("CUDA was asked for but is not available here: running on the CPU")
        dev = torch.device("cpu")
    if dev.type == "cpu":
        messages.append(f"running on the CPU with {torch.get_num_threads()} thread(s)")
    return dev


def load_model(checkpoint: ModelLike, device: torch.device, task: Optional[str] = None,
               precision: str = "auto", messages: Optional[List[str]] = None) -> LoadedModel:
    """A checkpoint path (read through ``core.models.zoo``) or a ``(model, card)`` pair, in eval mode.

    ``task`` ("sr" or "segmentation") refuses a checkpoint of the other kind
    with a sentence naming the file. ``precision``: the number format of a
    *segmentation* network read from a file (``core.inference.precision``;
    every job that segments, evaluation included, loads through here, so all
    score the same pixels). Super-resolution and in-memory pairs (networks that
    may still be training) run in fp32.
    """
    if _is_pair(checkpoint):
        model, card = checkpoint
        source, sha = f"in-memory {type(model).__name__}", None
    else:
        from ..models.zoo import file_sha256, load_checkpoint

        path = Path(checkpoint)
        if not path.is_file():
            raise InputError(f"{path}: checkpoint file not found")
        model, card = load_checkpoint(path, device=str(device))
        source, sha = str(path), file_sha256(path)
        # A network read from a file is ours alone: take its faster inference form where it has one
        # (segmentation: batch norms folded, channels-last). In-memory pairs may still be training.
        inference_copy = getattr(model, "inference_copy", None)
        if callable(inference_copy):
            model = inference_copy()
    if task is not None and str(card.task or "sr") != task:
        kind = "super-resolution" if task == "sr" else "segmentation"
        raise InputError(f"{source}: is a {card.task} model, not a {kind} model")
    dtype = None
    if str(card.task or "sr") == "segmentation" and not _is_pair(checkpoint):
        dtype = choose_precision(precision, device, messages if messages is not None else [])
    return LoadedModel(model.to(device).eval(), card, source, sha, device, dtype)


def load_models(checkpoints: Union[ModelLike, Sequence[ModelLike]], device: torch.device,
                task: Optional[str] = None, precision: str = "auto",
                messages: Optional[List[str]] = None) -> List[LoadedModel]:
    """One or several checkpoints (paths or pairs) as :class:`LoadedModel` objects."""
    if isinstance(checkpoints, (str, os.PathLike)) or _is_pair(checkpoints):
        checkpoints = [checkpoints]
    found: List[str] = []
    loaded = [load_model(c, device, task, precision, found) for c in checkpoints]
    if messages is not None:
        messages.extend(dict.fromkeys(found))  # said once, not once per network
    return loaded
