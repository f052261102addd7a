"""Checking a training recipe: validation of the schema's values, and preflight against data and checkpoints.

Why here: everything that can be checked without the training data is checked
by :func:`validate_config` (called by the loader), so a typo or an impossible
recipe is refused *before* minutes of training are spent; checks that need the
data (an empty split, a batch bigger than the data) live in :func:`preflight`,
which ``core.training.train`` runs before its first step.

Every refusal is a :class:`ConfigError` whose message names the file and the
dotted key that is wrong, e.g. ``rams.yaml: loss.terms[1].name: unknown loss
'dice_building'; choose one of cl1, cmse, ...``.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..data.scene import list_scenes
from ..models.registry import archs_for, spec
from ..models.zoo import read_card
from .config_schema import (
    AMP_MODES,
    DATA_VERSIONS,
    MAX_FRAMES,
    MAX_VAL_TILE,
    OPTIMIZERS,
    PATCH_LIMITS,
    RUN_OUTPUTS,
    SCHEDULERS,
    SEG_LOSSES,
    SEG_METRICS,
    SR_LOSSES,
    SR_METRICS,
    TARGETS,
    ConfigError,
    LossTermConfig,
    TrainConfig,
    is_reference,
)

__all__ = ["validate_config", "check_checkpoint_cards", "preflight"]


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
        _choice(m.arch, archs_for("segmentation"), "model.arch")
        allowed_losses = SEG_LOSSES
        if not config.loss.terms:
            config.loss.terms = [LossTermConfig(name="dice", weight=1.0)]
    else:
        if config.target is not None:
            raise ConfigError("target: only segmentation runs have a target; remove it for task 'sr'")
        _choice(m.arch, archs_for("sr"), "model.arch")
        allowed_losses = SR_LOSSES
        if not config.loss.terms:
            config.loss.terms = [LossTermConfig(name="cl1", weight=1.0)]
        if not spec(m.arch).multi_image and d.frames != 1:
            raise ConfigError(f"data.frames: {m.arch.upper()} is single-image; set data.frames to 1 (its bands "
                              "are in_chans, set from data.bands)")

    _validate_losses(config, allowed_losses)
    uses_weak = "weak_real" in config.loss_names
    if uses_weak and not d.weak.root:
        raise ConfigError("loss weak_real: needs data.weak.root, a folder of real images labelled as a whole "
                          "(labels.json, see core.data.weak_labels)")
    if d.weak.root and not uses_weak:
        raise ConfigError("data.weak.root: add the loss term weak_real, which is what learns from those images")
    if check_files and d.weak.root and not (Path(d.weak.root) / "labels.json").is_file():
        raise ConfigError(f"data.weak.root: {d.weak.root} has no labels.json")
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
