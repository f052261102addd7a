"""Training configuration: dataclasses, YAML loading and validation.

A run is described by one YAML file (``resources/configs/*.yaml``). Everything
that can be checked without touching the training data is checked here, so a
typo or an impossible recipe is refused *before* minutes of training are spent;
checks that need the data (an empty split, a batch bigger than the data) live in
:func:`preflight`, which ``core.training.train`` runs before its first step.

Every refusal is a :class:`ConfigError` whose message names the file and the
dotted key that is wrong, e.g. ``rams.yaml: loss.terms[1].name: unknown loss
'dice_building'; choose one of cl1, cmse, ...``.

YAML files may start from another file with ``base: other.yaml`` (a path
relative to the file); the child's keys are merged over the base's, recursively
for mappings, whole for lists. The experiment grid uses this to write each row
of the study's tables as a few lines over a common recipe.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import yaml

from .loss_terms import LOSS_TERMS, terms_for

__all__ = [
    "ConfigError",
    "SelectionConfig",
    "DataConfig",
    "ModelConfig",
    "LossTermConfig",
    "LossConfig",
    "SegNetsConfig",
    "SchedulerConfig",
    "ExperimentConfig",
    "TrainConfig",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "apply_overrides",
    "validate_config",
    "preflight",
    "SR_LOSSES",
    "SEG_LOSSES",
    "TASK_LOSS_TARGETS",
    "HR_LOSSES",
    "is_reference",
]

# Loss names, derived from the one table of loss terms (core.training.loss_terms).
SR_LOSSES = tuple(terms_for("sr"))
SEG_LOSSES = tuple(terms_for("segmentation"))
TASK_LOSS_TARGETS = {n: t.target for n, t in LOSS_TERMS.items() if t.target}
HR_LOSSES = tuple(n for n, t in LOSS_TERMS.items() if t.needs_hr)  # losses that need the HR image
SR_ARCHS = ("rams", "hat")
SEG_ARCHS = ("unetpp",)
TARGETS = ("buildings", "roads")
OPTIMIZERS = ("adam", "nadam", "adamw")
SCHEDULERS = ("none", "cosine", "step")
AMP_MODES = ("auto", "off", "bf16", "fp16")
DATA_VERSIONS = ("simulated", "real")
SR_METRICS = (
    "cpsnr", "cssim", "buildings_dice", "roads_dice", "task_dice", "loss",
)
SEG_METRICS = ("dice", "accuracy", "precision", "recall", "loss")
#: Sizes a recipe may ask for: below, the network and the loss border leave nothing to learn from (or
#: crash deep inside torch); above, one patch or tile alone exhausts a workstation's memory.
PATCH_LIMITS = {"lr_patch": (4, 1024), "seg_patch": (8, 3072)}
MAX_FRAMES = 64
MAX_VAL_TILE = 2048
#: Files a training run writes into out_dir (see core.training.trainer): never an input of the same run.
RUN_OUTPUTS = ("config.yaml", "last.pt", "last.safetensors", "best.safetensors", "history.json",
               "training_curves.png")
REFERENCE_PREFIX = "run:"  # "run:7" = best checkpoint of experiment 7 of the same grid run


class ConfigError(ValueError):
    """A configuration that cannot be trained; the message names the key."""


def is_reference(value: Optional[str]) -> bool:
    """True for ``run:<id>`` placeholders that the experiment runner fills in."""
    return isinstance(value, str) and value.startswith(REFERENCE_PREFIX)


# --------------------------------------------------------------------------- schema


@dataclass
class SelectionConfig:
    """Task-aware patch selection (see ``core.data.patches.PatchSelection``).

    ``share`` of the patches are drawn among those where buildings or roads cover
    at least ``min_coverage`` of the patch; 0 disables the rule.
    """

    share: float = 0.0
    min_coverage: float = 0.02
    classes: List[str] = field(default_factory=lambda: ["buildings", "roads"])


@dataclass
class DataConfig:
    """Where the scenes are and how training patches are drawn from them.

    ``version`` names the data version by key (``simulated`` / ``real``) so the
    experiment runner can point a row at the matching dataset. ``batch_size`` is
    per process: under torchrun the global batch is ``batch_size * world_size``.
    """

    root: Optional[str] = None
    version: str = "simulated"
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    band: int = 0
    bands: Optional[List[str]] = None  # band names taken jointly, e.g. [B02, B03, B04, B08]; None: ``band`` alone
    lr_patch: int = 32
    seg_patch: int = 96
    frames: int = 9
    samples_per_epoch: int = 1024
    batch_size: int = 16
    num_workers: int = 0
    augment: bool = True
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    val_scenes: Optional[int] = None
    normalization: Optional[Dict[str, float]] = None


@dataclass
class ModelConfig:
    """Network to train. ``init_from`` starts from a checkpoint (fine-tuning)."""

    arch: str = "rams"
    preset: Optional[str] = None
    hparams: Dict[str, Any] = field(default_factory=dict)
    init_from: Optional[str] = None
    scale: int = 3


@dataclass
class LossTermConfig:
    """One loss term: a static ``weight``; with dynamic weighting a ``proportion``, or a fixed ``weight``
    for a term whose optimum is zero (see :mod:`.weighting`)."""

    name: str = ""
    weight: Optional[float] = None
    proportion: Optional[float] = None


@dataclass
class LossConfig:
    """Which losses, and how they are combined (``static`` or ``dynamic``).

    With dynamic weighting the ``reference`` term keeps weight 1 and every other
    term i gets ``w_i = p_i * mean(L_ref) / mean(L_i)`` at each epoch end.
    """

    terms: List[LossTermConfig] = field(default_factory=list)
    weighting: str = "static"
    reference: Optional[str] = None
    border: int = 3
    psf_sigma: Optional[float] = None


@dataclass
class SegNetsConfig:
    """Frozen segmentation checkpoints used by the task-driven losses and metrics."""

    buildings: Optional[str] = None
    roads: Optional[str] = None


@dataclass
class SchedulerConfig:
    """Learning-rate schedule, stepped once per epoch."""

    name: str = "none"
    step_size: int = 30
    gamma: float = 0.5
    min_lr: float = 0.0


@dataclass
class ExperimentConfig:
    """Where a config sits in the study's tables (used by the experiment grid)."""

    id: Optional[str] = None
    table: Optional[str] = None
    title: str = ""
    notes: str = ""


@dataclass
class TrainConfig:
    """A whole training run. ``task`` is ``sr`` or ``segmentation``."""

    name: str = "run"
    task: str = "sr"
    target: Optional[str] = None
    epochs: int = 10
    lr: float = 1e-4
    optimizer: str = "nadam"
    weight_decay: float = 0.0
    grad_clip: Optional[float] = None
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    seed: int = 0
    deterministic: bool = True
    device: str = "auto"
    amp: str = "auto"
    out_dir: str = "runs/run"
    validate_every: int = 1
    val_tile: int = 48
    val_overlap: int = 8
    best_metric: str = "auto"
    log_every: int = 1
    max_steps_per_epoch: Optional[int] = None
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    seg_nets: SegNetsConfig = field(default_factory=SegNetsConfig)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)

    # -- derived views, no state of their own
    @property
    def loss_names(self) -> List[str]:
        return [t.name for t in self.loss.terms]

    @property
    def uses_hr(self) -> bool:
        return any(n in HR_LOSSES for n in self.loss_names)

    @property
    def task_targets(self) -> List[str]:
        """The frozen networks the recipe's loss terms run through (each once, in order)."""
        return list(dict.fromkeys(TASK_LOSS_TARGETS[n] for n in self.loss_names if n in TASK_LOSS_TARGETS))

    def resolved_best_metric(self) -> Tuple[str, str]:
        """(metric, "max"|"min") used to pick ``best.safetensors``.

        Decision: the phantom-object shares (``<target>_fp_share``) and the grid
        score are logged every validation and reported, but never pick the
        checkpoint. On a few validation scenes they sit at 0.000-0.004 and move
        by noise, and a network that flags nothing at all (the failed starter
        run that erased every object) scores a perfect 0. They act through the
        training terms (``fp_*``) and the evaluation instead; selection stays on
        cPSNR (SR) or Dice (segmentation), or on one of ``SR_METRICS``.
        """
        metric = self.best_metric
        if metric == "auto":
            metric = "dice" if self.task == "segmentation" else "cpsnr"
        return metric, ("min" if metric == "loss" else "max")


# --------------------------------------------------------------------------- parsing


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


def _build(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
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
    return cls(**kwargs)


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
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
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


# --------------------------------------------------------------------------- validation


def _choice(value: Optional[str], allowed: Sequence[str], key: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(allowed)}")


def _positive(value: Optional[float], key: str, allow_zero: bool = False) -> None:
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{key}: must be {'>= 0' if allow_zero else '> 0'}, got {value}")


def validate_config(config: TrainConfig, check_files: bool = True) -> None:
    """Refuse recipes that cannot be trained; the message names the bad key."""
    _choice(config.task, ("sr", "segmentation"), "task")
    _choice(config.optimizer, OPTIMIZERS, "optimizer")
    _choice(config.scheduler.name, SCHEDULERS, "scheduler.name")
    _choice(config.amp, AMP_MODES, "amp")
    _choice(config.data.version, DATA_VERSIONS, "data.version")
    if config.device != "auto" and not (config.device == "cpu" or config.device.startswith("cuda")):
        raise ConfigError(f"device: {config.device!r} is not auto, cpu, cuda or cuda:N")
    for key in ("epochs", "validate_every", "log_every"):
        if getattr(config, key) < 1:
            raise ConfigError(f"{key}: must be at least 1, got {getattr(config, key)}")
    _positive(config.lr, "lr")
    _positive(config.weight_decay, "weight_decay", allow_zero=True)
    _positive(config.grad_clip, "grad_clip")
    if config.max_steps_per_epoch is not None and config.max_steps_per_epoch < 1:
        raise ConfigError("max_steps_per_epoch: must be at least 1 (or null)")
    if not 8 <= config.val_tile <= MAX_VAL_TILE:
        raise ConfigError(f"val_tile: must be 8..{MAX_VAL_TILE} LR pixels, got {config.val_tile}")
    if not 0 <= config.val_overlap < config.val_tile // 2:
        raise ConfigError(f"val_overlap: must be in 0..{config.val_tile // 2 - 1} (below half of val_tile)")

    d = config.data
    for key in ("lr_patch", "seg_patch", "frames", "samples_per_epoch", "batch_size"):
        if getattr(d, key) < 1:
            raise ConfigError(f"data.{key}: must be at least 1, got {getattr(d, key)}")
    for key, (low, high) in PATCH_LIMITS.items():
        if not low <= getattr(d, key) <= high:
            raise ConfigError(f"data.{key}: must be {low}..{high} pixels, got {getattr(d, key)}")
    if d.frames > MAX_FRAMES:
        raise ConfigError(f"data.frames: at most {MAX_FRAMES} revisits per sample, got {d.frames}")
    if d.num_workers < 0:
        raise ConfigError("data.num_workers: must be >= 0")
    if d.band < 0:
        raise ConfigError("data.band: must be >= 0 (index of the band in the scene)")
    if d.batch_size > d.samples_per_epoch:
        raise ConfigError(
            f"data.batch_size: {d.batch_size} is bigger than data.samples_per_epoch "
            f"({d.samples_per_epoch}); an epoch would hold no full batch"
        )
    if d.val_scenes is not None and d.val_scenes < 1:
        raise ConfigError("data.val_scenes: must be at least 1 (or null for all)")
    if not 0.0 <= d.selection.share <= 1.0:
        raise ConfigError(f"data.selection.share: must be in 0..1, got {d.selection.share}")
    if not 0.0 <= d.selection.min_coverage < 1.0:
        raise ConfigError(f"data.selection.min_coverage: must be in 0..1, got {d.selection.min_coverage}")
    for i, c in enumerate(d.selection.classes):
        _choice(c, TARGETS, f"data.selection.classes[{i}]")
    if d.normalization is not None:
        if set(d.normalization) != {"offset", "scale"}:
            raise ConfigError("data.normalization: expected keys offset and scale (or null to derive from data)")
        if d.normalization["scale"] <= 0:
            raise ConfigError("data.normalization.scale: must be > 0")

    m = config.model
    if not 1 <= m.scale <= 8:
        raise ConfigError(f"model.scale: must be 1..8, got {m.scale}")
    if config.task == "sr" and d.lr_patch * m.scale <= 2 * config.loss.border:
        need = (2 * config.loss.border) // m.scale + 1
        raise ConfigError(
            f"data.lr_patch: {d.lr_patch} LR px is {d.lr_patch * m.scale} HR px, nothing left inside loss.border "
            f"({config.loss.border} px on each side); use data.lr_patch >= {max(need, PATCH_LIMITS['lr_patch'][0])}"
        )
    if config.task == "segmentation":
        _choice(config.target, TARGETS, "target")
        _choice(m.arch, SEG_ARCHS, "model.arch")
        allowed_losses = SEG_LOSSES
        if not config.loss.terms:
            config.loss.terms = [LossTermConfig(name="dice", weight=1.0)]
    else:
        if config.target is not None:
            raise ConfigError("target: only segmentation runs have a target; remove it for task 'sr'")
        _choice(m.arch, SR_ARCHS, "model.arch")
        allowed_losses = SR_LOSSES
        if not config.loss.terms:
            config.loss.terms = [LossTermConfig(name="cl1", weight=1.0)]
        if m.arch == "hat" and d.frames != 1:
            raise ConfigError("data.frames: HAT is single-image; set data.frames to 1 (its bands are in_chans, "
                              "set from data.bands)")

    _validate_losses(config, allowed_losses)
    metric, _ = config.resolved_best_metric()
    allowed_metrics = SEG_METRICS if config.task == "segmentation" else SR_METRICS
    if config.best_metric != "auto":
        _choice(metric, allowed_metrics, "best_metric")

    # Task losses need the frozen segmentation network they are measured with.
    for target in config.task_targets:
        if not getattr(config.seg_nets, target):
            raise ConfigError(
                f"seg_nets.{target}: loss dice_{target} needs a segmentation checkpoint for {target} "
                f"(train one with resources/configs/segmentation_{target}.yaml)"
            )
    if check_files:
        check_checkpoint_cards(config)


def _validate_losses(config: TrainConfig, allowed: Sequence[str]) -> None:
    loss = config.loss
    _choice(loss.weighting, ("static", "dynamic"), "loss.weighting")
    if loss.border < 0:
        raise ConfigError("loss.border: must be >= 0")
    _positive(loss.psf_sigma, "loss.psf_sigma")
    seen = set()
    for i, term in enumerate(loss.terms):
        key = f"loss.terms[{i}]"
        if term.name not in allowed:
            raise ConfigError(
                f"{key}.name: unknown loss {term.name!r} for task {config.task!r}; "
                f"choose one of {', '.join(allowed)}"
            )
        if term.name in seen:
            raise ConfigError(f"{key}.name: loss {term.name!r} is listed twice")
        seen.add(term.name)
        _positive(term.weight, f"{key}.weight", allow_zero=True)
        _positive(term.proportion, f"{key}.proportion")
    if loss.weighting == "static":
        if loss.reference is not None:
            raise ConfigError("loss.reference: only dynamic weighting has a reference loss")
        for i, term in enumerate(loss.terms):
            if term.proportion is not None:
                raise ConfigError(
                    f"loss.terms[{i}].proportion: proportions need loss.weighting: dynamic; "
                    "use weight with static weighting"
                )
            if term.weight is None:
                term.weight = 1.0
        if all(t.weight == 0 for t in loss.terms):
            raise ConfigError("loss.terms: every weight is 0; nothing would be trained")
    else:
        if len(loss.terms) < 2:
            raise ConfigError("loss.weighting: dynamic weighting needs a reference loss and at least one other")
        if loss.reference is None:
            raise ConfigError("loss.reference: dynamic weighting needs the name of the reference loss")
        if loss.reference not in seen:
            raise ConfigError(
                f"loss.reference: {loss.reference!r} is not one of the listed terms ({', '.join(seen)})"
            )
        for i, term in enumerate(loss.terms):
            if term.name == loss.reference:
                if term.weight is not None or term.proportion not in (None, 1.0):
                    what = "weight" if term.weight is not None else "proportion"
                    raise ConfigError(f"loss.terms[{i}].{what}: the reference loss always keeps weight 1")
                continue
            if term.weight is not None and term.proportion is not None:
                raise ConfigError(
                    f"loss.terms[{i}]: give {term.name!r} a proportion (re-weighted each epoch) or a fixed "
                    "weight, not both")
            if term.weight is None and term.proportion is None:
                raise ConfigError(f"loss.terms[{i}].proportion: needed for {term.name!r} with dynamic weighting "
                                  "(or a fixed weight)")
        if not any(t.proportion is not None for t in loss.terms if t.name != loss.reference):
            raise ConfigError("loss.weighting: dynamic weighting needs at least one term with a proportion")


def check_checkpoint_cards(config: TrainConfig) -> None:
    """Read the cards of checkpoints that exist and refuse mismatches."""

    def card_of(path: str, key: str):
        from ..models.zoo import read_card  # lazy: only when there is a card to read

        try:
            return read_card(path)
        except Exception as exc:  # CheckpointError or a corrupted file
            raise ConfigError(f"{key}: {path} is not a readable checkpoint ({exc})") from None

    init = config.model.init_from
    if init and not is_reference(init) and Path(init).is_file():
        card = card_of(init, "model.init_from")
        if card.arch != config.model.arch:
            raise ConfigError(
                f"model.init_from: {init} holds a {card.arch!r} network but model.arch is {config.model.arch!r}"
            )
        if config.task == "sr":
            if card.task != "sr":
                raise ConfigError(f"model.init_from: {init} is a {card.task} checkpoint, not super-resolution")
            if int(card.scale) != config.model.scale:
                raise ConfigError(
                    f"model.init_from: {init} is a x{card.scale} network but model.scale is {config.model.scale}"
                )
            if card.frames is not None and int(card.frames) != config.data.frames:
                raise ConfigError(
                    f"model.init_from: {init} takes {card.frames} frames but data.frames is {config.data.frames}"
                )
        elif card.task != "segmentation" or card.target != config.target:
            raise ConfigError(
                f"model.init_from: {init} is a {card.task}/{card.target} checkpoint, "
                f"not segmentation of {config.target}"
            )
    for target in TARGETS:
        path = getattr(config.seg_nets, target)
        if path and not is_reference(path) and Path(path).is_file():
            card = card_of(path, f"seg_nets.{target}")
            if card.task != "segmentation":
                raise ConfigError(f"seg_nets.{target}: {path} is a {card.task} checkpoint, not a segmentation network")
            if card.target != target:
                raise ConfigError(f"seg_nets.{target}: {path} segments {card.target!r}, not {target!r}")


def _scene_bands(path: Path) -> Optional[List[str]]:
    import json

    meta = path / "scene.json"
    try:
        return list(json.loads(meta.read_text()).get("bands") or []) or None
    except (OSError, ValueError):
        return None


def _check_out_dir(out: Path) -> None:
    """Refuse a run folder that cannot be written (a file, a read-only disk) before any data is read."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out_dir: {out} is a file, not a folder for the run")
    parent = out
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent  # the folder the run folder will be created in
    import secrets

    probe = parent / f".write-probe-{secrets.token_hex(4)}"
    try:
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"out_dir: cannot write in {parent} ({exc.strerror or exc}); choose another run folder") \
            from None


def preflight(config: TrainConfig, world_size: int = 1) -> Dict[str, List[Path]]:
    """Checks that need the data and the checkpoint files; returns the scene folders per split.

    Run before any training step so that no minutes are spent on a run that is
    bound to fail.
    """
    from ..data.scene import list_scenes  # lazy: keep config importable alone

    _check_out_dir(Path(config.out_dir))
    d = config.data
    if not d.root:
        raise ConfigError("data.root: no dataset folder given (set data.root or --set data.root=PATH)")
    root = Path(d.root)
    if not root.is_dir():
        raise ConfigError(f"data.root: {root} is not a folder")
    splits: Dict[str, List[Path]] = {}
    for key in ("train_split", "val_split"):
        name = getattr(d, key)
        try:
            scenes = list(list_scenes(root, split=name))
        except (ValueError, OSError) as exc:
            raise ConfigError(f"data.{key}: cannot list the {name!r} scenes of {root} ({exc})") from None
        splits[name] = scenes
    train_scenes = splits[d.train_split]
    if not train_scenes:
        raise ConfigError(
            f"data.train_split: the {d.train_split!r} split of {root} holds no scenes "
            "(check split.json or the folder)"
        )
    if not splits[d.val_split]:
        raise ConfigError(f"data.val_split: the {d.val_split!r} split of {root} holds no scenes")
    global_batch = d.batch_size * world_size
    if global_batch > d.samples_per_epoch:
        raise ConfigError(
            f"data.batch_size: the global batch ({d.batch_size} x {world_size} processes = {global_batch}) "
            f"is bigger than data.samples_per_epoch ({d.samples_per_epoch})"
        )
    bands = _scene_bands(train_scenes[0])
    if bands is not None and d.band >= len(bands):
        raise ConfigError(f"data.band: index {d.band} but the scenes hold {len(bands)} band(s): {', '.join(bands)}")

    # Checkpoints must exist now, and their cards must fit the data.
    outputs = {(Path(config.out_dir) / name).resolve() for name in RUN_OUTPUTS}
    for key, path in (("model.init_from", config.model.init_from),
                      ("seg_nets.buildings", config.seg_nets.buildings),
                      ("seg_nets.roads", config.seg_nets.roads)):
        if not path:
            continue
        if is_reference(path):
            raise ConfigError(f"{key}: {path!r} refers to an experiment run; run it through `experiments run`")
        if not Path(path).is_file():
            raise ConfigError(f"{key}: checkpoint file {path} does not exist")
        if Path(path).resolve() in outputs:
            raise ConfigError(f"{key}: {path} is a file this run writes into out_dir ({config.out_dir}) and would be "
                              "overwritten after the first epoch; copy it elsewhere or choose another out_dir")
    check_checkpoint_cards(config)
    if bands is not None:
        from ..models.zoo import read_card

        band = bands[d.band]
        for key, path in (("model.init_from", config.model.init_from),
                          ("seg_nets.buildings", config.seg_nets.buildings),
                          ("seg_nets.roads", config.seg_nets.roads)):
            if path:
                card_bands = list(read_card(path).bands or [])
                if card_bands and band not in card_bands:
                    raise ConfigError(
                        f"{key}: {path} was trained on band(s) {', '.join(card_bands)} but data.band selects {band}"
                    )
    return splits
