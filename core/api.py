"""The few functions the QGIS plugin and the CLI call; thin wrappers over the engine.

Why wrappers: the UI must not learn the engine's module layout, and importing
this module must be fast (the plugin imports it when QGIS starts), so nothing
heavy (torch, rasterio) is imported here at module level; every function
imports what it needs when called.

Errors are the job primitives of :mod:`core.jobs` (``InputError``, ``OutputError``,
``Cancelled``, re-exported here so the UI needs this module only) and
``core.models.zoo.CheckpointError`` for a bad checkpoint; all carry a message
meant for the analyst.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable, List, Optional, Tuple, Union

from . import RESOURCES
from .jobs import Cancelled, CancelToken, InputError, OutputError  # the job primitives the UI needs

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

__all__ = [
    "CancelToken",
    "Cancelled",
    "InputError",
    "OutputError",
    "super_resolve",
    "segment",
    "trust_map",
    "trust_summary",
    "evaluate",
    "train",
    "list_models",
    "model_card",
    "shipped_models_dir",
]


def shipped_models_dir() -> Path:
    """``resources/models`` of the plugin: the starter checkpoints shipped with it."""
    return RESOURCES / "models"


def super_resolve(inputs, out_path, checkpoint, band=1, **options):
    """Super-resolve rasters to a GeoTIFF; see :func:`core.inference.super_resolve` for the options."""
    from .inference.sr import super_resolve as run

    return run(inputs, out_path, checkpoint, band=band, **options)


def segment(input_path, checkpoint, out_prob=None, out_mask=None, vectors=None, band=1, **options):
    """Segment a raster into probability / mask GeoTIFFs (+ GeoPackage); see :func:`core.inference.segment`."""
    from .inference.sr import segment as run

    return run(input_path, checkpoint, out_prob=out_prob, out_mask=out_mask, vectors=vectors, band=band, **options)


def trust_map(sr_path, inputs=None, band=None, out_path=None, **options):
    """Write ``<sr>_trust.tif`` (disagreement with the LR revisits + their spread); see :func:`core.trust.trust_map`.

    ``inputs=None`` takes the LR inputs recorded in the SR output's metadata.
    Returns a :class:`core.trust.TrustSummary` (mean / 95th percentile
    disagreement in reflectance, share of pixels above the threshold).
    """
    from .inference.trust import trust_map as run

    return run(sr_path, inputs, band=band, out_path=out_path, **options)


def trust_summary(trust_path: PathLike):
    """The summary stored in a trust GeoTIFF (None when it holds none): no recomputation."""
    from .inference.trust import read_summary

    return read_summary(trust_path)


def evaluate(checkpoint: PathLike, data_root: PathLike, split: Optional[str] = "test", **options):
    """Whole-scene metrics of a checkpoint on a split; see :func:`core.evaluation.evaluate_checkpoint`."""
    from .evaluation.evaluate import evaluate_checkpoint

    return evaluate_checkpoint(checkpoint, data_root, split=split, **options)


def train(config, progress=None, resume: bool = True, cancel=None, overrides=None) -> Path:
    """Launch one training run from a YAML path (or a loaded config); returns the best checkpoint."""
    from .training.config import load_config
    from .training.trainer import train as run

    if isinstance(config, (str, os.PathLike)) or isinstance(config, dict):
        config = load_config(config, overrides)
    return run(config, progress=progress, resume=resume, cancel=cancel)


def model_card(path: PathLike):
    """The model card of a checkpoint, read from its metadata only (weights are not loaded)."""
    from .models.zoo import read_card

    return read_card(path)


def list_models(dirs: Optional[Iterable[PathLike]] = None, include_shipped: bool = True) -> List[Tuple[Path, Any]]:
    """``(path, card)`` for every readable ``*.safetensors`` in the shipped folder and ``dirs``.

    Folders are searched non-recursively, in order; a path is listed once. A
    file whose card cannot be read is skipped with a warning in the log (the UI
    lists what it can load, never a broken entry).
    """
    from .models.zoo import read_card

    folders: List[Path] = []
    if include_shipped:
        folders.append(shipped_models_dir())
    folders.extend(Path(d) for d in (dirs or ()))
    seen = set()
    found: List[Tuple[Path, Any]] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.safetensors")):
            key = path.resolve()
            if key in seen:
                continue
            seen.add(key)
            try:
                card = read_card(path)
            except Exception as exc:  # a broken file must not hide the others
                log.warning("skipping %s: %s", path, exc)
                continue
            found.append((path, card))
    return found
