"""The training form's rules, without Qt: notes on a recipe, where its run goes, what would fail to start.

Why apart from the dialog: these are decisions about a recipe (a plain
mapping), testable without widgets, and they must say *before* a child
process starts why it could not run (no dataset, a task-driven recipe without
its segmentation networks, a fine-tune without its starting checkpoint).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

from .presets import PLUGIN_ROOT, Preset

__all__ = ["recipe_notes", "default_out_dir", "check_config", "resolve"]


def resolve(path: str) -> Path:
    """A path of a recipe: absolute, or relative to the plugin folder (where the trainer runs)."""
    return Path(path) if Path(path).is_absolute() else PLUGIN_ROOT / path


def _dice_targets(data: Dict[str, Any]) -> List[str]:
    terms = (data.get("loss") or {}).get("terms") or []
    return [t for t in ("buildings", "roads") if any(x.get("name") == f"dice_{t}" for x in terms)]


def recipe_notes(preset: Preset) -> List[str]:
    """What the analyst should know about a recipe before running it (shown under the recipe picker)."""
    notes = [preset.path.relative_to(PLUGIN_ROOT).as_posix()]
    init = (preset.data.get("model") or {}).get("init_from")
    if init and str(init).startswith("run:"):
        notes.append("this recipe fine-tunes another run's network: choose its checkpoint in 'Fine-tune from'")
    elif init and not resolve(str(init)).is_file():
        notes.append(f"this recipe fine-tunes {init}, which is not here: choose a checkpoint in 'Fine-tune from' "
                     "(e.g. the shipped network it made, through 'Start from')")
    bands = (preset.data.get("data") or {}).get("bands") or []
    if len(bands) > 1:
        notes.append(f"takes bands {', '.join(bands)} jointly: the dataset's scenes must hold them (e.g. "
                     "python -m core.cli synth --world v2)")
    needs = _dice_targets(preset.data)
    if needs:
        notes.append("task-driven: needs the " + " and ".join(needs) + " segmentation network(s)")
    return notes


def default_out_dir(preset: Preset, data_dir: str) -> Path:
    """``<dataset's parent>/runs/<recipe name>``, or ``~/s2sr_runs/<recipe name>`` without a dataset."""
    name = str(preset.data.get("name") or preset.path.stem)
    data = data_dir.strip()
    return (Path(data).parent / "runs" / name) if data else (Path.home() / "s2sr_runs" / name)


def check_config(data: Dict[str, Any]) -> None:
    """Refuse, in plain words (``ValueError``), what would only fail after the trainer started."""
    from ...core.training.config import config_from_dict

    root = (data.get("data") or {}).get("root")
    if not root:
        raise ValueError("choose a dataset folder (or make a synthetic one)")
    if not Path(root).is_dir():
        raise ValueError(f"the dataset folder {root} does not exist")
    if not data.get("out_dir"):
        raise ValueError("choose an output folder for the run")
    init = (data.get("model") or {}).get("init_from")
    if init and str(init).startswith("run:"):
        raise ValueError("this recipe fine-tunes another network: choose its checkpoint in 'Fine-tune from'")
    if init and not Path(init).is_file():
        raise ValueError(f"the checkpoint to fine-tune from does not exist: {init}")
    for target in _dice_targets(data):
        net = (data.get("seg_nets") or {}).get(target)
        if not net or str(net).startswith("run:"):
            raise ValueError(f"the {target} Dice loss needs a trained {target} segmentation network: "
                             f"choose it in '{target.capitalize()} network' (train one with the "
                             f"'Segmentation: {target}' task first)")
        if not resolve(net).is_file():
            raise ValueError(f"the {target} segmentation network {net} does not exist")
    config_from_dict(data, source="the training settings")
