"""The training recipes the dialog offers: every YAML in ``resources/configs`` (and its experiments), resolved.

Why resolved: a recipe may name a ``base`` it extends; the dialog shows and
edits the result, so what the form shows is what the trainer will run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

from qgis.core import Qgis

from ..log import log

__all__ = ["PLUGIN_ROOT", "CONFIG_DIRS", "TASKS", "Preset", "kind_of", "load_presets"]

PLUGIN_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIRS = (PLUGIN_ROOT / "resources" / "configs", PLUGIN_ROOT / "resources" / "configs" / "experiments")
TASKS = (
    ("Segmentation: buildings (UNet++ on HR)", "seg_buildings"),
    ("Segmentation: roads (UNet++ on HR)", "seg_roads"),
    ("Super-resolution: RAMS (multi-image)", "rams"),
    ("Super-resolution: HAT (single image)", "hat"),
)


@dataclass
class Preset:
    """A training recipe shipped in resources/configs (resolved through its ``base`` chain)."""

    path: Path
    title: str
    kind: str  # one of the TASKS keys
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
    if data.get("task") == "segmentation":
        return f"seg_{data.get('target') or 'buildings'}"
    return str((data.get("model") or {}).get("arch") or "rams")


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
            out.append(Preset(path, f"{prefix}{title}" if prefix else f"{path.stem}: {title}", kind_of(data), data))
    return out
