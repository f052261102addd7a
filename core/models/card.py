"""The model card: what a checkpoint holds, typed, and checked before anything is built.

A card travels as JSON inside a safetensors file, so it is data from outside:
:meth:`ModelCard.from_dict` checks every field's type and range and refuses
with a :class:`CheckpointError` naming the file and the field, in words an
analyst can act on. A card that passes rebuilds its network (on the ``meta``
device first, to compare tensor shapes without allocating; see ``zoo``).

Callers read what they need through properties (``norm_offset``,
``norm_scale``, ``display_name``, ``in_chans``, ``is_multi_image``, ...), so
nothing downstream has to guess defaults for missing fields.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

import torch.nn as nn

from . import registry

#: The seasons a segmentation recipe may draw, in the order of ``data.season.weights`` (``core/data/seasons.py``
#: simulates them; kept here because a card must read its recipe without the data layer).
SEASON_NAMES = ("snow", "frost", "dry", "burnt", "flood", "dormant")

__all__ = ["CheckpointError", "ModelCard", "MAX_FRAMES", "MAX_SCALE", "LEVELS"]

#: More revisits than this is not a multi-image SR network but a corrupted card.
MAX_FRAMES = 64
MAX_SCALE = 16
#: Processing levels a card may name (Sentinel-2 L1C top of atmosphere, L2A surface reflectance, or both).
LEVELS = ("L1C", "L2A", "L1C+L2A")


class CheckpointError(ValueError):
    """A file that cannot be used as a checkpoint; the message says which file and why."""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass
class ModelCard:
    """What a checkpoint is: enough to rebuild the network and to use it correctly.

    ``normalization``: model units are ``(reflectance - offset) / scale``.
    ``frames``: LR frames the network takes (None for segmentation).
    ``bands``: names of the input bands, in input order (e.g. ``["B8"]`` or
    ``["B2", "B3", "B4", "B8"]``).
    ``extra``: keys of newer card versions, kept so nothing is lost on re-save.
    """

    arch: str
    hparams: Dict[str, Any] = field(default_factory=dict)
    task: str = "sr"
    target: Optional[str] = None
    scale: int = 3
    bands: List[str] = field(default_factory=lambda: ["B8"])
    frames: Optional[int] = None
    normalization: Dict[str, float] = field(default_factory=lambda: {"offset": 0.0, "scale": 1.0})
    recipe: Dict[str, Any] = field(default_factory=dict)
    metrics: Dict[str, Any] = field(default_factory=dict)
    name: str = ""
    description: str = ""
    version: str = "1"
    created: str = ""
    #: Processing level of the training inputs: "L1C" (top of atmosphere), "L2A" (surface reflectance),
    #: "L1C+L2A" (both); None when the card does not say (older cards).
    level: Optional[str] = None
    #: Per-band reflectance percentiles of the training inputs, ``{"B02": {"p2":, "p50":, "p98":}}``; empty on
    #: older cards (then no input is judged against them).
    input_stats: Dict[str, Dict[str, float]] = field(default_factory=dict)
    extra: Dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ what callers read

    @property
    def norm_offset(self) -> float:
        """Reflectance that maps to model value 0."""
        return float(self.normalization.get("offset", 0.0))

    @property
    def norm_scale(self) -> float:
        """Reflectance span of one model unit."""
        return float(self.normalization.get("scale", 1.0))

    @property
    def display_name(self) -> str:
        """The card's name, else its architecture."""
        return self.name or self.arch

    @property
    def trained_level(self) -> Optional[str]:
        """The processing level the network was trained for, as far as the card tells.

        Cards written before ``level`` existed say nothing, except the shipped
        starter networks, whose description says they were trained on the
        synthetic world v2: its spectra are per-class surface reflectances
        (L2A-like, docs/world_v2.md), so they count as ``L2A``. Any other old
        card stays unknown (None) and gets no level warning.
        """
        if self.level:
            return self.level
        data = self.recipe.get("data") if isinstance(self.recipe.get("data"), Mapping) else {}
        if data.get("world") == "v2" or "synthetic world v2" in self.description.lower():
            return "L2A"
        return None

    @property
    def trained_seasons(self) -> List[str]:
        """Seasons drawn for its training patches (``recipe.data.variation.season``), e.g. ``["snow", ...]``.

        Why: the snow check tells the analyst whether the networks ever saw snow; a network trained with
        simulated snow still gets the warning, worded for what it did see.
        """
        data = self.recipe.get("data") if isinstance(self.recipe.get("data"), Mapping) else {}
        variation = data.get("variation") if isinstance(data.get("variation"), Mapping) else {}
        season = variation.get("season") if isinstance(variation.get("season"), Mapping) else {}
        if not season or not float(season.get("prob") or 0.0) > 0.0:
            return []
        weights = list(season.get("weights") or [])
        return [name for name, w in zip(SEASON_NAMES, weights) if float(w) > 0.0]

    @property
    def is_sr(self) -> bool:
        return self.task == "sr"

    @property
    def is_segmentation(self) -> bool:
        return self.task == "segmentation"

    @property
    def input_frames(self) -> int:
        """LR frames per input (1 for single-image SR and segmentation)."""
        return int(self.frames or 1)

    @property
    def is_multi_image(self) -> bool:
        return self.is_sr and self.input_frames > 1

    @property
    def in_chans(self) -> int:
        """Bands per frame the network takes (and, for SR, returns)."""
        hp = self.hparams
        return int(hp.get(registry.spec(self.arch).channels_hparam, 1))

    @property
    def upsampler(self) -> Optional[str]:
        """How an SR network upsamples (see ``core.models.upsampling``); None for segmentation."""
        return self.hparams.get("upsampler") if self.is_sr else None

    # ------------------------------------------------------------------ making and writing

    @classmethod
    def for_model(cls, model: nn.Module, **fields_: Any) -> ModelCard:
        """A card whose architecture, hyper-parameters, task, scale and frames come from ``model``."""
        inner = registry.unwrap(model)
        arch = registry.arch_of(inner)
        task = registry.task_of(arch)
        base: Dict[str, Any] = dict(arch=arch, hparams=dict(inner.hparams), task=task,
                                    scale=int(getattr(inner, "scale", 1)),
                                    frames=int(inner.frames) if task == "sr" else None)
        base.update(fields_)
        return cls(**base)

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        extra = d.pop("extra") or {}
        d.update({k: v for k, v in extra.items() if k not in d})
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=False)

    # ------------------------------------------------------------------ reading (validated)

    @classmethod
    def from_dict(cls, data: Any, source: Optional[object] = None) -> ModelCard:
        """A card from its JSON form, every field checked; :class:`CheckpointError` otherwise.

        ``source`` (the checkpoint path) starts every message. Hyper-parameters
        an older card did not record get the values that card was built with
        (the architecture's ``LEGACY_HPARAMS``), so the card read back is complete.
        """
        where = f"{source}: " if source is not None else ""

        def refuse(name: str, problem: str, value: Any = dataclasses.MISSING) -> CheckpointError:
            got = "" if value is dataclasses.MISSING else f" (got {_shown(value)})"
            return CheckpointError(f"{where}model card field '{name}': {problem}{got}")

        if not isinstance(data, Mapping):
            raise CheckpointError(f"{where}the model card is not a JSON object (got {type(data).__name__})")
        if "arch" not in data:
            raise CheckpointError(f"{where}the model card has no 'arch' entry")
        arch = data["arch"]
        known_archs = registry.registered()
        if not isinstance(arch, str):
            raise refuse("arch", "must be an architecture name", arch)
        if arch.lower() not in known_archs:
            raise refuse("arch", f"unknown architecture {arch!r} (this plugin knows {', '.join(known_archs)}); "
                                 "it may need a newer plugin")
        spec = registry.spec(arch)
        arch = spec.name

        hparams = data.get("hparams", {})
        if not isinstance(hparams, Mapping):
            raise refuse("hparams", "must be a mapping of hyper-parameters", hparams)
        hparams = {**spec.legacy_hparams, **hparams}
        try:
            registry.check_hparams(arch, hparams)
        except ValueError as exc:
            name, _, problem = str(exc).partition(": ")
            raise CheckpointError(f"{where}model card field '{name}': {problem}") from None

        task = data.get("task", spec.task)
        if task not in registry.TASKS:
            raise refuse("task", f"must be one of {', '.join(registry.TASKS)}", task)
        if task != spec.task:
            raise refuse("task", f"a {arch!r} network does {spec.task!r}", task)
        target = data.get("target")
        if target is not None and not isinstance(target, str):
            raise refuse("target", "must be a class name such as 'buildings' or null", target)

        scale = data.get("scale", 3)
        if not _is_int(scale) or not 1 <= scale <= MAX_SCALE:
            raise refuse("scale", f"must be a whole number from 1 to {MAX_SCALE}", scale)
        if spec.fixed_scale is not None and scale != spec.fixed_scale:
            raise refuse("scale", f"a {arch!r} network works at scale {spec.fixed_scale}", scale)
        frames = data.get("frames")
        if frames is not None and (not _is_int(frames) or not 1 <= frames <= MAX_FRAMES):
            raise refuse("frames", f"must be a whole number from 1 to {MAX_FRAMES} (or null)", frames)
        bands = data.get("bands", [])
        if not isinstance(bands, list) or not all(isinstance(b, str) for b in bands):
            raise refuse("bands", "must be a list of band names such as [\"B8\"]", bands)

        norm = data.get("normalization", {"offset": 0.0, "scale": 1.0})
        if not isinstance(norm, Mapping) or not {"offset", "scale"} <= set(norm):
            raise refuse("normalization", "must be a mapping with 'offset' and 'scale'", norm)
        if not _is_number(norm["offset"]):
            raise refuse("normalization.offset", "must be a finite number", norm["offset"])
        if not _is_number(norm["scale"]) or norm["scale"] <= 0:
            raise refuse("normalization.scale", "must be a finite number > 0", norm["scale"])

        for name in ("recipe", "metrics"):
            if not isinstance(data.get(name, {}), Mapping):
                raise refuse(name, "must be a mapping", data[name])
        for name in ("name", "description", "version", "created"):
            if name in data and not isinstance(data[name], str):
                raise refuse(name, "must be text", data[name])

        level = data.get("level")
        if level is not None and level not in LEVELS:
            raise refuse("level", f"must be one of {', '.join(LEVELS)} or null", level)
        stats = data.get("input_stats", {})
        if not isinstance(stats, Mapping) or not all(
                isinstance(b, str) and isinstance(v, Mapping) and all(_is_number(x) for x in v.values())
                for b, v in stats.items()):
            raise refuse("input_stats", "must map band names to finite percentiles, e.g. {\"B02\": {\"p50\": 0.04}}",
                         stats)

        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs.update(arch=arch, hparams=dict(hparams), task=task, scale=scale, frames=frames, bands=list(bands),
                      normalization={**norm, "offset": float(norm["offset"]), "scale": float(norm["scale"])},
                      recipe=dict(data.get("recipe", {})), metrics=dict(data.get("metrics", {})), level=level,
                      input_stats={b: {k: float(x) for k, x in v.items()} for b, v in stats.items()})
        kwargs["extra"] = {k: v for k, v in data.items() if k not in known}
        return cls(**kwargs)
