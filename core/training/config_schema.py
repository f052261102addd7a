"""Training configuration schema: the recipe's dataclasses, the names they may take, and ConfigError.

Why a module of its own: the schema is what every other part reads (the
loader builds it, the checks refuse it, the trainer runs it), and it must
stay importable without YAML, torch or the data code. Loading lives in
:mod:`.config_loader`, validation and preflight in :mod:`.config_checks`;
:mod:`.config` is the public face that gathers them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ..data.radiometric import RadiometricJitter
from ..data.seasons import SeasonJitter
from ..data.sharpness import SharpnessJitter
from .loss_terms import LOSS_TERMS, terms_for

__all__ = [
    "ConfigError",
    "SelectionConfig",
    "WeakLabelConfig",
    "DataConfig",
    "ModelConfig",
    "LossTermConfig",
    "LossConfig",
    "SegNetsConfig",
    "SchedulerConfig",
    "ExperimentConfig",
    "TrainConfig",
    "SR_LOSSES",
    "SEG_LOSSES",
    "TASK_LOSS_TARGETS",
    "HR_LOSSES",
    "TARGETS",
    "OPTIMIZERS",
    "SCHEDULERS",
    "AMP_MODES",
    "DATA_VERSIONS",
    "SR_METRICS",
    "SEG_METRICS",
    "PATCH_LIMITS",
    "MAX_FRAMES",
    "MAX_VAL_TILE",
    "RUN_OUTPUTS",
    "REFERENCE_PREFIX",
    "is_reference",
]

# Loss names, derived from the one table of loss terms (core.training.loss_terms).
SR_LOSSES = tuple(terms_for("sr"))
SEG_LOSSES = tuple(terms_for("segmentation"))
TASK_LOSS_TARGETS = {n: t.target for n, t in LOSS_TERMS.items() if t.target}
HR_LOSSES = tuple(n for n, t in LOSS_TERMS.items() if t.needs_hr)  # losses that need the HR image
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
class WeakLabelConfig:
    """Real images labelled as a whole for segmentation training (see ``core.data.weak_labels``).

    ``root``: a weak-label folder (``labels.json`` + GeoTIFFs at the HR pixel size); ``None`` leaves them
    out. ``present_share``: the share of a "present" image's most object-like pixels pushed toward the
    object (keep it under the least the object covers: houses cover 15-30 % of a residential patch).
    ``absent_share``: the share of an "absent" image's most object-like pixels pushed toward nothing.
    The loss term ``weak_real`` weighs them against the Dice on the synthetic patches.
    """

    root: Optional[str] = None
    present_share: float = 0.08
    absent_share: float = 0.02

    def __post_init__(self) -> None:
        for name in ("present_share", "absent_share"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 < value <= 1.0):
                raise ValueError(f"{name}: must be above 0 and at most 1 (got {value})")


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
    #: how the delivered radiometry of training patches varies (L1C path radiance, light, haze; SR: revisits and HR
    #: alike); off by default
    radiometry: RadiometricJitter = field(default_factory=RadiometricJitter)
    #: how much HR detail segmentation patches keep (HR down to bicubic of 10 m, as SR delivers it); off by default
    sharpness: SharpnessJitter = field(default_factory=SharpnessJitter)
    #: seasons drawn for segmentation patches (snow, frost, dry, burnt, flooded land, leaf-off winter); off by default
    season: SeasonJitter = field(default_factory=SeasonJitter)
    #: real images labelled as a whole (segmentation only, with the loss term ``weak_real``); off by default
    weak: WeakLabelConfig = field(default_factory=WeakLabelConfig)
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
