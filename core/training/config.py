"""Training configuration: the public face of the recipe's schema, loader and checks.

A run is described by one YAML file (``resources/configs/*.yaml``). The pieces
live in three modules, one job each: :mod:`.config_schema` (the dataclasses and
the names they may take), :mod:`.config_loader` (YAML, ``base:`` inheritance,
``key=value`` overrides) and :mod:`.config_checks` (validation before training,
:func:`preflight` against the data). This module re-exports what the rest of
the plugin imports, so callers keep one import path.

Every refusal is a :class:`ConfigError` whose message names the file and the
dotted key that is wrong, e.g. ``rams.yaml: loss.terms[1].name: unknown loss
'dice_building'; choose one of cl1, cmse, ...``.
"""

from __future__ import annotations

from .config_checks import check_checkpoint_cards, preflight, validate_config
from .config_loader import apply_overrides, config_from_dict, config_to_dict, load_config, read_recipe_yaml
from .config_schema import (
    HR_LOSSES,
    REFERENCE_PREFIX,
    SEG_LOSSES,
    SR_LOSSES,
    TASK_LOSS_TARGETS,
    ConfigError,
    DataConfig,
    ExperimentConfig,
    LossConfig,
    LossTermConfig,
    ModelConfig,
    SchedulerConfig,
    SegNetsConfig,
    SelectionConfig,
    TrainConfig,
    is_reference,
)

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
    # also imported through this face (by core.training.experiments and tools)
    "read_recipe_yaml",
    "check_checkpoint_cards",
    "REFERENCE_PREFIX",
]
