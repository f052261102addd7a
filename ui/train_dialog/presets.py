"""The training recipes the dialog offers: every YAML in ``resources/configs``, its experiments and the
recipes that made the shipped networks (``starter/``), resolved.

Why resolved: a recipe may name a ``base`` it extends; the dialog shows and
edits the result, so what the form shows is what the trainer will run. Why the
starter recipes too: the shipped networks take four bands (B02, B03, B04,
B08) and were made by those recipes, not by the study's one-band ones; an
analyst starting from a shipped network must get its own recipe
(``shipped.py`` picks it from the checkpoint).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Tuple

from qgis.core import Qgis

from ..log import log

__all__ = ["PLUGIN_ROOT", "CONFIG_DIRS", "STARTER_DIR", "Preset", "kind_of", "task_choices", "load_presets"]

PLUGIN_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIRS = (PLUGIN_ROOT / "resources" / "configs", PLUGIN_ROOT / "resources" / "configs" / "experiments",
               PLUGIN_ROOT / "resources" / "configs" / "starter")
#: Folder of the recipes that made the shipped networks; their titles say so.
STARTER_DIR = CONFIG_DIRS[2]


@dataclass
class Preset:
    """A training recipe shipped in resources/configs (resolved through its ``base`` chain)."""

    path: Path
    title: str
    kind: str  # "seg_<target>" or the SR architecture's name (see kind_of)
    data: Dict[str, Any]


def _first_comment(path: Path) -> str:
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("#"):
                return line.lstrip("# ").strip()
            if line.strip():
                break
    except OSError:
        pass
    return ""


def kind_of(data: Dict[str, Any]) -> str:
    """The dialog's task key of a resolved recipe: ``seg_<target>`` or the SR architecture's name."""
    if data.get("task") == "segmentation":
        return f"seg_{data.get('target') or 'buildings'}"
    return str((data.get("model") or {}).get("arch") or "rams").lower()


def _task_title(data: Dict[str, Any]) -> str:
    arch = str((data.get("model") or {}).get("arch") or "").upper()
    if data.get("task") == "segmentation":
        return f"Segmentation: {data.get('target') or 'buildings'} ({arch} on HR)"
    frames = int((data.get("data") or {}).get("frames") or 1)
    return f"Super-resolution: {arch} ({'multi-image' if frames > 1 else 'single image'})"


def task_choices(presets: List[Preset]) -> List[Tuple[str, str]]:
    """``(title, kind)`` of every task the recipes cover: segmentation, then multi-image SR, then single-image SR.

    Why from the recipes: a recipe for a new architecture brings its task to
    the dialog; nothing here lists architectures by name.
    """
    order: Dict[str, Tuple[int, str]] = {}
    for p in presets:
        if p.kind not in order:
            frames = int((p.data.get("data") or {}).get("frames") or 1)
            group = 0 if p.kind.startswith("seg_") else (1 if frames > 1 else 2)
            order[p.kind] = (group, _task_title(p.data))
    return [(title, kind) for kind, (_, title) in sorted(order.items(), key=lambda kv: (kv[1][0], kv[0]))]


def load_presets(dirs=CONFIG_DIRS) -> List[Preset]:
    """Every recipe YAML (not the shared ``_*.yaml`` bases) as a resolved mapping."""
    from ...core.training.config import config_to_dict, load_config

    out: List[Preset] = []
    for folder in dirs:
        for path in sorted(Path(folder).glob("*.yaml")):
            if path.name.startswith("_"):
                continue
            try:
                data = config_to_dict(load_config(path, check_files=False))
            except Exception as exc:  # one broken file must not hide the others
                log(f"recipe {path.name} skipped: {exc}", Qgis.MessageLevel.Warning)
                continue
            exp = data.get("experiment") or {}
            title = exp.get("title") or _first_comment(path) or path.stem
            prefix = f"exp {exp['id']}: " if exp.get("id") and folder.name == "experiments" else ""
            if Path(folder) == STARTER_DIR:  # same stems as the study's recipes: say which made a shipped network
                prefix = f"shipped {path.stem}: "
            out.append(Preset(path, f"{prefix}{title}" if prefix else f"{path.stem}: {title}", kind_of(data), data))
    return out
