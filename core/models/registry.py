"""Architecture registry: every network family declares itself with ``@register``.

One decorator on the class (in ``rams.py``, ``hat.py``, ``segmentation.py``)
states what the rest of the project needs to know about an architecture: its
name, its task, its presets and which one is the default. Lookups
(:func:`build`, :func:`task_of`, :func:`presets_of`, :func:`arch_of`,
:func:`registered`) read that one table, so adding a family is one file and
no list elsewhere to keep in step. The table is filled when the family
modules are imported; the lookups import them on first use.

What each network class may declare (class attributes the registry honours):

* ``FIXED_SCALE``: the network never changes resolution (segmentation). The
  shared ``scale`` keyword is then accepted only when equal to it and is not
  passed on, so one config can drive every architecture.
* ``LEGACY_HPARAMS``: values of hyper-parameters that older checkpoints do not
  record because they did not exist yet (e.g. ``upsampler``). A card missing
  such a key rebuilds the network it was saved from.
* ``HPARAM_RULES``: type and range of each hyper-parameter, checked when a
  checkpoint's card is read, before anything is built (a card claiming 200000
  filters is refused, not allocated).
* ``state_shapes(**hparams)`` (class method): the state-dict shapes without
  building, for families whose ``meta``-device build is slow; the others are
  built on ``meta`` to compare a checkpoint's shapes before allocating.
* ``MULTI_IMAGE``: the network takes a stack of revisits (``frames`` of them);
  ``FRAMES_HPARAM`` names the hyper-parameter that receives their number.
* ``CHANNELS_HPARAM``: the hyper-parameter that receives the number of bands
  the network takes jointly (``in_chans`` unless said otherwise).
* ``TILE_MULTIPLE``: tile sides the network runs best at are multiples of it
  (HAT's attention window); the tiler keeps shrunk tiles on it.
* ``tile_defaults(hparams, frames, cuda)`` (class method): a
  :class:`TileDefaults` with the tile, overlap and memory the tiler starts
  from. Like timm's pretrained configs, consumers read these facts
  generically from the :class:`ArchSpec`, so no code outside the family's own
  file branches on its name.

Families are the modules (or packages) of :mod:`core.models.archs`: each is
imported on first lookup, so a new architecture is one file there with one
``@register``. A family defined elsewhere (a test's toy network) registers
when its module is imported.
"""

from __future__ import annotations

import functools
import importlib
import math
import pkgutil
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Type, TypeVar

import torch.nn as nn

__all__ = [
    "ArchSpec",
    "Rule",
    "int_rule",
    "float_rule",
    "bool_rule",
    "choice_rule",
    "int_list_rule",
    "register",
    "spec",
    "build",
    "task_of",
    "presets_of",
    "default_preset",
    "arch_of",
    "registered",
    "legacy_hparams",
    "check_hparams",
    "config_from_preset",
    "unwrap",
    "TASKS",
    "TileDefaults",
    "archs_for",
]

TASKS = ("sr", "segmentation")
#: The package whose modules fill the registry (each family registers itself on import).
_FAMILIES_PACKAGE = __package__ + ".archs"

N = TypeVar("N", bound=Type[nn.Module])
C = TypeVar("C")


# --------------------------------------------------------------------------- hyper-parameter rules


@dataclass(frozen=True)
class Rule:
    """Type and range of one hyper-parameter.

    ``kind``: ``"int"``, ``"float"``, ``"bool"``, ``"str"``, ``"choice"`` or
    ``"int_list"`` (``lo``/``hi`` then bound each element, ``max_len`` the length).
    Bounds are inclusive unless ``open_lo``.
    """

    kind: str
    lo: Optional[float] = None
    hi: Optional[float] = None
    open_lo: bool = False
    choices: Tuple[Any, ...] = ()
    max_len: int = 64

    def problem(self, value: Any) -> Optional[str]:
        """What is wrong with ``value`` (None when it is acceptable)."""
        if self.kind == "bool":
            return None if isinstance(value, bool) else "must be true or false"
        if self.kind == "str":
            return None if isinstance(value, str) and value else "must be a non-empty string"
        if self.kind == "choice":
            return None if value in self.choices else "must be one of " + ", ".join(map(repr, self.choices))
        if self.kind == "int_list":
            if not isinstance(value, (list, tuple)) or not value:
                return "must be a non-empty list of integers"
            if len(value) > self.max_len:
                return f"must have at most {self.max_len} entries"
            for v in value:
                p = self._number(v, integer=True)
                if p:
                    return "every entry " + p
            return None
        return self._number(value, integer=self.kind == "int")

    def _number(self, value: Any, integer: bool) -> Optional[str]:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be an integer" if integer else "must be a number"
        if integer and not isinstance(value, int):
            return "must be an integer"
        if not math.isfinite(value):
            return "must be finite"
        if self.lo is not None and (value <= self.lo if self.open_lo else value < self.lo):
            return f"must be {'>' if self.open_lo else '>='} {self.lo:g}"
        if self.hi is not None and value > self.hi:
            return f"must be <= {self.hi:g}"
        return None


def int_rule(lo: int, hi: int) -> Rule:
    return Rule("int", lo, hi)


def float_rule(lo: Optional[float] = None, hi: Optional[float] = None, open_lo: bool = False) -> Rule:
    return Rule("float", lo, hi, open_lo)


def bool_rule() -> Rule:
    return Rule("bool")


def choice_rule(*choices: Any) -> Rule:
    return Rule("choice", choices=tuple(choices))


def int_list_rule(lo: int, hi: int, max_len: int = 64) -> Rule:
    return Rule("int_list", lo, hi, max_len=max_len)


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class TileDefaults:
    """Where the tiler starts for one network, before the device's memory is considered.

    ``tile``: input pixels per tile side; ``per_px``: rough activation bytes per
    input pixel (memory estimates); overlap is ``max(4, tile // overlap_divisor)``.
    """

    tile: int
    per_px: int
    overlap_divisor: int = 16


def _generic_tile_defaults(hparams: Mapping[str, Any], frames: int, cuda: bool) -> TileDefaults:
    """For a family that states nothing: a mid-sized tile and a generic activation count."""
    return TileDefaults(tile=128, per_px=4 * 64 * 8)


@dataclass(frozen=True)
class ArchSpec:
    """What the registry knows about one architecture: everything its consumers need to know.

    Read generically (by the tiler, the trainer, the config checks, the area
    workflows), never by branching on ``name``.
    """

    name: str
    cls: Type[nn.Module]
    task: str
    presets: Mapping[str, Mapping[str, Any]]
    default_preset: str
    fixed_scale: Optional[int] = None
    legacy_hparams: Mapping[str, Any] = field(default_factory=dict)
    rules: Mapping[str, Rule] = field(default_factory=dict)
    state_shapes: Optional[Callable[..., Dict[str, Tuple[int, ...]]]] = None
    multi_image: bool = False
    frames_hparam: Optional[str] = None
    channels_hparam: str = "in_chans"
    tile_multiple: int = 1
    tile_defaults: Callable[[Mapping[str, Any], int, bool], TileDefaults] = _generic_tile_defaults


_REGISTRY: Dict[str, ArchSpec] = {}


def register(name: str, task: str, presets: Mapping[str, Mapping[str, Any]],
             default_preset: str) -> Callable[[N], N]:
    """Class decorator adding a network family to the registry under ``name``.

    The class must take its hyper-parameters as keywords and expose
    ``hparams`` (a dict that rebuilds it). Registering a second, different
    class under a taken name is refused (a module re-import may re-register
    its own class).
    """
    key = name.lower()
    if task not in TASKS:
        raise ValueError(f"register({name!r}): task must be one of {TASKS} (got {task!r})")
    if default_preset not in presets:
        raise ValueError(f"register({name!r}): default preset {default_preset!r} is not among {list(presets)}")

    def decorate(cls: N) -> N:
        old = _REGISTRY.get(key)
        if old is not None and (old.cls.__module__, old.cls.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"architecture {key!r} is already registered by {old.cls.__qualname__}")
        cls.ARCH = key
        _REGISTRY[key] = ArchSpec(
            name=key, cls=cls, task=task, presets={k: dict(v) for k, v in presets.items()},
            default_preset=default_preset, fixed_scale=getattr(cls, "FIXED_SCALE", None),
            legacy_hparams=dict(getattr(cls, "LEGACY_HPARAMS", {}) or {}),
            rules=dict(getattr(cls, "HPARAM_RULES", {}) or {}),
            state_shapes=getattr(cls, "state_shapes", None),
            multi_image=bool(getattr(cls, "MULTI_IMAGE", False)),
            frames_hparam=getattr(cls, "FRAMES_HPARAM", None),
            channels_hparam=str(getattr(cls, "CHANNELS_HPARAM", "in_chans")),
            tile_multiple=int(getattr(cls, "TILE_MULTIPLE", 1)),
            tile_defaults=getattr(cls, "tile_defaults", _generic_tile_defaults),
        )
        return cls

    return decorate


@functools.lru_cache(maxsize=1)
def _load_families() -> None:
    """Import every family of :mod:`core.models.archs` (their decorators fill the table); cheap after the first."""
    package = importlib.import_module(_FAMILIES_PACKAGE)
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{_FAMILIES_PACKAGE}.{info.name}")


def registered() -> List[str]:
    """Names of every registered architecture, sorted (registration order depends on imports)."""
    _load_families()
    return sorted(_REGISTRY)


def archs_for(task: str) -> List[str]:
    """Names of the registered architectures that do ``task`` (``"sr"`` or ``"segmentation"``), sorted."""
    _load_families()
    return sorted(name for name, s in _REGISTRY.items() if s.task == task)


def spec(arch: str) -> ArchSpec:
    """The :class:`ArchSpec` of ``arch`` (case-insensitive); ValueError naming the known ones."""
    _load_families()
    key = str(arch).lower() if isinstance(arch, str) else None
    if key not in _REGISTRY:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[key]


def task_of(arch: str) -> str:
    """``"sr"`` or ``"segmentation"``."""
    return spec(arch).task


def presets_of(arch: str) -> Dict[str, Dict[str, Any]]:
    """Preset name -> hyper-parameters (copies: changing them changes nothing here)."""
    return {k: dict(v) for k, v in spec(arch).presets.items()}


def default_preset(arch: str) -> str:
    return spec(arch).default_preset


def legacy_hparams(arch: str) -> Dict[str, Any]:
    """Hyper-parameters a card without them was built with (see the module docstring)."""
    return dict(spec(arch).legacy_hparams)


def check_hparams(arch: str, hparams: Mapping[str, Any]) -> None:
    """ValueError ``"hparams.<key>: <problem> (got <value>)"`` for the first value out of its rule.

    Keys without a rule are left to the network's constructor (which refuses
    unknown ones).
    """
    rules = spec(arch).rules
    for key in sorted(hparams):
        rule = rules.get(key)
        problem = rule.problem(hparams[key]) if rule is not None else None
        if problem:
            shown = repr(hparams[key])
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise ValueError(f"hparams.{key}: {problem} (got {shown})")


def config_from_preset(config_cls: Type[C], presets: Mapping[str, Mapping[str, Any]], family: str,
                       preset: Optional[str], overrides: Mapping[str, Any], fold_case: bool = False) -> C:
    """The dataclass ``config_cls`` from the preset ``preset`` (None: none) with keyword ``overrides``.

    An unknown preset or hyper-parameter is refused with a message naming ``family``;
    ``fold_case``: preset names are looked up lower-cased.
    """
    values: Dict[str, Any] = {}
    if preset is not None:
        key = preset.lower() if fold_case else preset
        if key not in presets:
            raise ValueError(f"unknown {family} preset {preset!r}; choose one of {', '.join(presets)}")
        values.update(presets[key])
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown {family} hyper-parameter(s): {', '.join(unknown)}")
    values.update(overrides)
    return config_cls(**values)


def build(arch: str, preset: Optional[str] = None, **hparams: Any) -> nn.Module:
    """Build a network: ``build("hat", preset="hat-s", in_chans=1)``, ``build("rams", filters=8)``.

    Keyword hyper-parameters override the preset's. ``scale`` is accepted for
    every architecture so one config can drive all; a network with a
    ``FIXED_SCALE`` refuses any other value.
    """
    s = spec(arch)
    if preset is not None and preset not in s.presets:
        raise ValueError(f"unknown {s.name} preset {preset!r}; choose one of {', '.join(s.presets)}")
    values = dict(s.presets[preset or s.default_preset])
    values.update(hparams)
    if s.fixed_scale is not None:
        scale = values.pop("scale", None)
        if scale not in (None, s.fixed_scale):
            raise ValueError(
                f"{s.cls.__name__} works at its input resolution; scale must be {s.fixed_scale} (got {scale})")
    return s.cls(**values)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare network inside DDP / DataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def arch_of(model: nn.Module) -> str:
    """Registry name of a network (wrappers are looked through)."""
    _load_families()
    inner = unwrap(model)
    for name, s in _REGISTRY.items():
        if isinstance(inner, s.cls):
            return name
    raise ValueError(f"{type(inner).__name__} is not a registered network ({', '.join(sorted(_REGISTRY))})")

