"""Reading a training recipe: YAML with ``base:`` inheritance, ``key=value`` overrides, typed conversion.

Why apart from the schema and the checks: this part knows nothing about
training, only how a mapping becomes the annotated dataclasses (with messages
naming the dotted key). :func:`config_from_dict` and :func:`load_config` end
by calling :func:`.config_checks.validate_config`, so a loaded recipe is
always a checked one.

YAML files may start from another file with ``base: other.yaml`` (a path
relative to the file); the child's keys are merged over the base's, recursively
for mappings, whole for lists. The experiment grid uses this to write each row
of the study's tables as a few lines over a common recipe.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import typing
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple, Union

import yaml

from .config_checks import validate_config
from .config_schema import ConfigError, TrainConfig

#: libyaml's parser where PyYAML has it (Debian's python3-yaml and the wheels do): the same safe constructor
#: and resolver as ``yaml.safe_load``, about ten times faster than the pure-Python parser.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

__all__ = [
    "read_recipe_yaml",
    "apply_overrides",
    "config_to_dict",
    "config_from_dict",
    "load_config",
]


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args) + " (or null)"
    if origin in (list, List):
        return "a list"
    if origin in (dict, Dict):
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML value to the annotated type or raise with the key's name."""
    origin = typing.get_origin(tp)
    if origin is Union:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:
            try:
                return _convert(value, a, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping of settings, got {value!r}")
        return _build(tp, value, key)
    if origin in (list, List):
        (item_tp,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Dict):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        _, val_tp = typing.get_args(tp) or (str, Any)
        return {str(k): _convert(v, val_tp, f"{key}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected a whole number, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads "1e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # ids like `id: 7`
        raise ConfigError(f"{key}: expected text, got {value!r}")
    return value


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> Dict[str, Any]:
    """A config class's resolved type hints, computed once per class (resolving them compiles every
    annotation: most of the time of reading a recipe, 46 of them when the training dialog opens)."""
    return typing.get_type_hints(cls)


def _build(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(
            f"unknown key {where}{unknown[0]!s}; valid keys{' under ' + prefix if prefix else ''}: "
            + ", ".join(names)
        )
    kwargs = {}
    for name in names:
        if name in data:
            key = f"{prefix}.{name}" if prefix else name
            kwargs[name] = _convert(data[name], hints[name], key)
    try:
        return cls(**kwargs)
    except ValueError as exc:  # a settings class that checks its own values (e.g. data.radiometry)
        raise ConfigError(f"{prefix}.{exc}" if prefix else str(exc)) from None


def _deep_merge(base: Dict[str, Any], child: Mapping[str, Any]) -> Dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in child.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _deep_merge(dict(out[k]), v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def read_recipe_yaml(path: Path, seen: Tuple[Path, ...] = ()) -> Dict[str, Any]:
    """A recipe YAML as a dict, its ``base:`` chain merged in (child keys win); cycles are refused."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: configuration file not found")
    if path.resolve() in seen:
        raise ConfigError(f"{path}: 'base' chain loops back to this file")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    data = dict(data)
    base = data.pop("base", None)
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{path}: base: expected a file name, got {base!r}")
        parent = read_recipe_yaml(path.parent / base, seen + (path.resolve(),))
        data = _deep_merge(parent, data)
    return data


def _parse_path(key: str) -> List[Union[str, int]]:
    """``loss.terms[0].weight`` or ``loss.terms.0.weight`` -> ["loss","terms",0,"weight"]."""
    parts: List[Union[str, int]] = []
    for raw in key.replace("]", "").replace("[", ".").split("."):
        if raw == "":
            continue
        parts.append(int(raw) if raw.isdigit() else raw)
    if not parts:
        raise ConfigError(f"override {key!r}: empty key")
    return parts


def apply_overrides(data: Dict[str, Any], overrides: Union[Sequence[str], Mapping[str, Any], None]) -> Dict[str, Any]:
    """Apply ``key=value`` overrides (values parsed as YAML) to a config mapping."""
    if not overrides:
        return data
    data = copy.deepcopy(data)
    items: List[Tuple[str, Any]]
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    else:
        items = []
        for text in overrides:
            if "=" not in text:
                raise ConfigError(f"override {text!r}: expected key=value, e.g. epochs=5")
            k, v = text.split("=", 1)
            try:
                items.append((k.strip(), yaml.safe_load(v)))
            except yaml.YAMLError:
                items.append((k.strip(), v))
    for key, value in items:
        parts = _parse_path(key)
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            nxt = parts[i + 1]
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    raise ConfigError(f"override {key}: no list item {part}")
                node = node[part]
            else:
                if not isinstance(node, dict):
                    raise ConfigError(f"override {key}: {part} is not a mapping")
                if part not in node or node[part] is None:
                    node[part] = [] if isinstance(nxt, int) else {}
                node = node[part]
        last = parts[-1]
        if isinstance(last, int):
            if not isinstance(node, list) or last > len(node):
                raise ConfigError(f"override {key}: no list item {last}")
            if last == len(node):
                node.append(value)
            else:
                node[last] = value
        else:
            if not isinstance(node, dict):
                raise ConfigError(f"override {key}: cannot set a key inside {node!r}")
            node[last] = value
    return data


def config_to_dict(config: TrainConfig) -> Dict[str, Any]:
    """Plain mapping (YAML/JSON-ready) of a config; inverse of :func:`config_from_dict`."""
    return dataclasses.asdict(config)


def config_from_dict(data: Mapping[str, Any], source: str = "config", check_files: bool = True) -> TrainConfig:
    """Build and validate a :class:`TrainConfig` from a mapping."""
    try:
        config = _build(TrainConfig, data)
        validate_config(config, check_files=check_files)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return config


def load_config(
    source: Union[str, os.PathLike, Mapping[str, Any]],
    overrides: Union[Sequence[str], Mapping[str, Any], None] = None,
    check_files: bool = True,
) -> TrainConfig:
    """Read a YAML file (or a mapping), apply overrides and validate.

    ``check_files`` reads the model cards of checkpoints named in the config
    when the files exist (a wrong scale, band or target is refused); missing
    files are left to :func:`preflight` so a grid can be checked before its
    checkpoints exist.
    """
    if isinstance(source, Mapping):
        data, name = dict(source), "config"
    else:
        data, name = read_recipe_yaml(Path(source)), Path(source).name
    data = apply_overrides(data, overrides)
    return config_from_dict(data, source=name, check_files=check_files)
