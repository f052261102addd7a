"""The few functions the QGIS plugin and the CLI call; thin wrappers over the engine.

Why wrappers: the UI must not learn the engine's module layout, and importing
this module must be fast (the plugin imports it when QGIS starts), so nothing
heavy (torch, rasterio) is imported here at module level: the engine's
modules are :func:`core.lazy.lazy_module` handles, imported on first use.

Errors are the job primitives of :mod:`core.jobs` (``InputError``, ``OutputError``,
``Cancelled``, re-exported here so the UI needs this module only) and
``core.models.zoo.CheckpointError`` for a bad checkpoint; all carry a message
meant for the analyst.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, List, Optional, Sequence, Tuple, Union

from . import RESOURCES
from .evaluation.compare_types import CompareResult, MaskSource  # plain dataclasses: cheap to import
from .jobs import (  # the job primitives the UI needs
    Cancelled,
    CancelToken,
    InputError,
    OutputError,
    Progress,
)
from .lazy import lazy_module
from .models.card_peek import card_bands, card_target, card_task, peek_card
from .options import (
    AreaOptions,
    CompareOptions,
    EvaluateOptions,
    ExportOptions,
    SegmentOptions,
    StackOptions,
    SuperResolveOptions,
    TrustOptions,
    WaldOptions,
)

if TYPE_CHECKING:  # the card type, without importing the model code (torch) when QGIS starts
    from .models.card import ModelCard

log = logging.getLogger(__name__)

# The engine, imported on first use: QGIS imports this module when it starts (see the module docstring).
_sr_job = lazy_module(".inference.sr_job", __package__)
_segment = lazy_module(".inference.segment", __package__)
_trust = lazy_module(".inference.trust", __package__)
_evaluate = lazy_module(".evaluation.evaluate", __package__)
_compare = lazy_module(".evaluation.compare", __package__)
_config = lazy_module(".training.config", __package__)
_trainer = lazy_module(".training.trainer", __package__)
_starter = lazy_module(".training.starter", __package__)
_finetune = lazy_module(".area.finetune", __package__)
_wald = lazy_module(".area.wald", __package__)
_zoo = lazy_module(".models.zoo", __package__)
_stack = lazy_module(".io.stack", __package__)
_s2_product = lazy_module(".io.s2_product", __package__)

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
    "compare_outputs",
    "CompareResult",
    "MaskSource",
    "train",
    "list_models",
    "model_card",
    "model_cards_are_cheap",
    "shipped_models_dir",
    "shipped_checkpoint",
    "finetune_area",
    "adapt_area",
    "shipped_recipe",
    "build_stack",
    "export_product",
]


def shipped_models_dir() -> Path:
    """``resources/models`` of the plugin: the starter checkpoints shipped with it."""
    return RESOURCES / "models"


def super_resolve(inputs, out_path, checkpoint, options: Optional[SuperResolveOptions] = None,
                  progress: Optional[Progress] = None, cancel: Optional[CancelToken] = None):
    """Super-resolve one raster or several revisits into a GeoTIFF at 3x; returns an ``SRResult``.

    ``inputs``: a path or a list (revisits on any grid; the first sets the grid).
    ``checkpoint``: an SR ``.safetensors`` file. ``options``: band(s), tiling,
    device, extent, anchoring and trust map (:class:`core.options.SuperResolveOptions`).
    With ``options.trust`` the trust map follows in the same job: a run that
    stops half-way (error or cancel) leaves neither file, as a cancelled SR run
    leaves nothing.
    """
    return _sr_job.run_super_resolve(inputs, out_path, checkpoint, options, progress=progress, cancel=cancel)


def segment(input_path, checkpoints, out_mask=None, out_prob=None, vectors=None,
            options: Optional[SegmentOptions] = None, progress: Optional[Progress] = None,
            cancel: Optional[CancelToken] = None):
    """Segment buildings and/or roads on a raster into mask / probability GeoTIFFs (+ GeoPackage)."""
    return _segment.segment(input_path, checkpoints, out_mask=out_mask, out_prob=out_prob, vectors=vectors,
               options=options or SegmentOptions(), progress=progress, cancel=cancel)


def trust_map(sr_path, inputs=None, out_path=None, options: Optional[TrustOptions] = None,
              progress: Optional[Progress] = None, cancel: Optional[CancelToken] = None, checkpoint=None):
    """Write ``<sr>_trust.tif`` (+ ``<sr>_trust_class.tif``) for an SR output and return its summary.

    ``inputs=None`` takes the LR inputs recorded in the SR output's metadata;
    ``checkpoint=None`` the SR checkpoint it records (for the instability band).
    See ``core.inference.trust``.
    """
    return _trust.trust_map(sr_path, inputs, out_path=out_path, options=options or TrustOptions(), progress=progress,
               cancel=cancel, checkpoint=checkpoint)


def trust_summary(trust_path: PathLike):
    """The summary stored in a trust GeoTIFF (None when it holds none): no recomputation."""
    return _trust.read_summary(trust_path)


def evaluate(checkpoint: PathLike, data_root: PathLike, seg_buildings: Optional[PathLike] = None,
             seg_roads: Optional[PathLike] = None, options: Optional[EvaluateOptions] = None,
             progress: Optional[Progress] = None):
    """Whole-scene metrics of a checkpoint on a dataset split (``core.evaluation.evaluate``)."""
    return _evaluate.evaluate_checkpoint(checkpoint, data_root, seg_buildings=seg_buildings, seg_roads=seg_roads,
                               options=options or EvaluateOptions(), progress=progress)


def compare_outputs(outputs, reference=None, masks=None, seg_checkpoints=None,
                    options: Optional[CompareOptions] = None, progress: Optional[Progress] = None,
                    cancel: Optional[CancelToken] = None, trust_inputs=None):
    """Baseline vs task-driven on one area: cPSNR/cSSIM, building/road Dice and trust rows per SR output.

    ``outputs``: label -> SR GeoTIFF; ``reference``: HR raster or None; ``masks``:
    target -> :class:`MaskSource`; ``seg_checkpoints``: target -> segmentation
    checkpoint; ``options``: :class:`core.options.CompareOptions` (trust maps or
    not, reference band, border, device); ``trust_inputs``: label -> (LR inputs,
    band) of outputs just made. See :func:`core.evaluation.compare.compare_outputs`.
    Returns a :class:`CompareResult`.
    """
    return _compare.compare_outputs(outputs, reference, masks, seg_checkpoints, options or CompareOptions(), progress=progress,
               cancel=cancel, trust_inputs=trust_inputs)


def train(config, progress=None, resume: bool = True, cancel=None, overrides=None) -> Path:
    """Launch one training run from a YAML path (or a loaded config); returns the best checkpoint."""
    if isinstance(config, (str, os.PathLike)) or isinstance(config, dict):
        config = _config.load_config(config, overrides)
    return _trainer.train(config, progress=progress, resume=resume, cancel=cancel)


def finetune_area(revisits: Sequence[PathLike], buildings: PathLike, roads: PathLike, sr_checkpoint: PathLike,
                  seg_buildings: PathLike, seg_roads: PathLike, out_dir: PathLike,
                  options: Optional[AreaOptions] = None, progress: Optional[Callable[[dict], None]] = None,
                  cancel: Optional[CancelToken] = None, command: Optional[str] = None):
    """Fine-tune an SR network on the analyst's area from S-2 revisits and OSM vectors; returns an ``AreaResult``.

    ``options``: :class:`core.options.AreaOptions` (band, tile size, held-out
    share, epochs, learning rate, patches, device; ``recipe=None`` is the
    shipped area recipe). A multi-band network (the shipped ones) reads its
    card's bands by name from the revisits. With ``options.finetune_segmenters``
    the building and road networks are fine-tuned on the area first (on the
    starting SR network's output of the revisits against the OSM masks) and
    the SR network trains against them; ``result.segmenters`` holds their
    checkpoints and held-out Dice before/after. With ``options.wald`` the
    self-supervised Wald adaptation runs instead (:func:`adapt_area`, with
    ``options.to_wald()``). ``progress`` receives event dicts. See
    :func:`core.area.finetune.run_area`.
    """
    options = options or AreaOptions()
    if options.wald:
        return adapt_area(revisits, sr_checkpoint, out_dir, buildings, roads, seg_buildings, seg_roads,
                          options.to_wald(), progress=progress, cancel=cancel, command=command)
    return _finetune.run_area(revisits, buildings, roads, sr_checkpoint, seg_buildings, seg_roads, out_dir, options=options,
                    progress=progress, cancel=cancel, command=command)


def adapt_area(revisits: Sequence[PathLike], sr_checkpoint: PathLike, out_dir: PathLike,
               buildings: Optional[PathLike] = None, roads: Optional[PathLike] = None,
               seg_buildings: Optional[PathLike] = None, seg_roads: Optional[PathLike] = None,
               options: Optional[WaldOptions] = None, progress: Optional[Callable[[dict], None]] = None,
               cancel: Optional[CancelToken] = None, command: Optional[str] = None):
    """Adapt an SR network to the analyst's own revisits by Wald's protocol (no HR image); returns a ``WaldResult``.

    ``options``: :class:`core.options.WaldOptions` (band, tile size in 10 m
    pixels, held-out share, gap, noise, training knobs). Vectors and
    segmentation networks are optional: with them the report adds the
    object-free false-positive share vs bicubic and Dice of the 10 m -> 3.33 m
    output. ``progress`` receives event dicts (the trainer's, stage logs, ``done``).
    See :func:`core.area.wald.adapt_area`.
    """
    return _wald.adapt_area(revisits, sr_checkpoint, out_dir, buildings_vector=buildings, roads_vector=roads,
               seg_buildings=seg_buildings, seg_roads=seg_roads, options=options, progress=progress, cancel=cancel,
               command=command)


def model_card(path: PathLike) -> ModelCard:
    """The model card of a checkpoint, read from its metadata only (weights are not loaded)."""
    return _zoo.read_card(path)


def model_cards_are_cheap() -> bool:
    """True when reading a model card costs milliseconds: the model code, and so PyTorch, is imported already.

    Why: a card is validated against the architecture registry, whose first use imports PyTorch (about
    2 s). A caller with an event loop to keep alive (the plugin's dock) reads cards where it stands when
    this is true and in a worker thread the first time, when it is false.
    """
    return importlib.util.resolve_name(".models.zoo", __package__) in sys.modules


def list_models(dirs: Optional[Iterable[PathLike]] = None,
                include_shipped: bool = True) -> List[Tuple[Path, ModelCard]]:
    """``(path, card)`` for every readable ``*.safetensors`` in the shipped folder and ``dirs``.

    Folders are searched non-recursively, in order; a path is listed once. A
    file whose card cannot be read is skipped with a warning in the log (the UI
    lists what it can load, never a broken entry).
    """
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
                card = _zoo.read_card(path)
            except Exception as exc:  # a broken file must not hide the others
                log.warning("skipping %s: %s", path, exc)
                continue
            found.append((path, card))
    return found


def shipped_checkpoint(task: str, target: Optional[str] = None, one_band: bool = False) -> Optional[Path]:
    """The first shipped checkpoint for ``task`` ("sr" or "segmentation") and ``target``, or None.

    Reads the cards as plain JSON (:mod:`core.models.card_peek`), without
    PyTorch: the Processing provider calls it while QGIS starts (issue 21).
    ``one_band``: only a network taking one band.
    """
    folder = shipped_models_dir()
    for path in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
        card = peek_card(path)
        if card is None or card_task(card) != task or (target is not None and card_target(card) != target):
            continue
        if one_band and len(card_bands(card)) > 1:
            continue
        return path
    return None


def shipped_recipe(checkpoint: PathLike) -> Optional[Path]:
    """The recipe (``resources/configs/starter/*.yaml``) that made a shipped checkpoint, or None.

    Why: the training dialog starts from a shipped network's own recipe (its
    bands, sizes, losses), not only from the study's one-band recipes. The
    checkpoint is matched by its file and its card's name against the list of
    starter models that ``make weights`` trains (:data:`core.training.starter.STARTER_MODELS`),
    so a renamed or retrained file with another card is not given a recipe
    that did not make it. Reads the card as plain JSON (no PyTorch).
    """
    path = Path(checkpoint)
    card = peek_card(path) if path.is_file() else None
    if card is None:
        return None
    for model in _starter.STARTER_MODELS:
        if path.name == model.file and str(card.get("name") or "") in (model.key, Path(model.file).stem):
            recipe = _starter.CONFIG_DIR / model.config
            return recipe if recipe.is_file() else None
    return None


def build_stack(inputs, out_path, options: Optional[StackOptions] = None, progress: Optional[Progress] = None,
                cancel: Optional[CancelToken] = None):
    """Stack several Sentinel-2 dates (products or rasters) into one revisit GeoTIFF; returns a ``StackResult``.

    ``options``: :class:`core.options.StackOptions` (bands, dates kept, least clear share, SCL classes, extent,
    baseline of plain rasters); see :func:`core.io.stack.build_stack`.
    """
    return _stack.build_stack(inputs, out_path, options or StackOptions(), progress=progress, cancel=cancel)


def export_product(product, out_path, options: Optional[ExportOptions] = None, progress: Optional[Progress] = None,
                   cancel: Optional[CancelToken] = None) -> Path:
    """Export a Sentinel-2 product's 10 m bands (``.SAFE``, ``.zip`` or MTD file) to one GeoTIFF, clouds as nodata.

    ``options``: bands, SCL classes masked and extent (:class:`core.options.ExportOptions`).
    """
    options = options or ExportOptions()
    return _s2_product.export_product(product, out_path, bands=options.bands, extent=options.extent, scl_nodata=options.scl_nodata,
               progress=progress, cancel=cancel)
