"""The checkpoints the dock offers: shipped and added ones, the analyst's last choices, and model cards.

Why QgsSettings: a checkpoint added with '...' or made by a training run must
still be listed in the next QGIS session, and the last choice per role (SR,
buildings, roads, compare pair) must come back; QgsSettings is the profile's
own store. Only model cards are read here (``core.api.model_card``): weights
load when a job runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional

from qgis.core import Qgis, QgsSettings

from ...core import api
from ..log import log

if TYPE_CHECKING:  # the card type, without importing core's model code at load
    from ...core.models.card import ModelCard

__all__ = ["SETTINGS", "ModelEntry", "ModelStore", "read_entries", "remember_checkpoint", "card_html", "CARD_METRICS",
           "breakable"]

SETTINGS = "s2_taskdriven_sr"
#: Metrics shown on a model card, in this order (the card may hold many more).
CARD_METRICS = (("cpsnr", "cPSNR"), ("cssim", "cSSIM"), ("buildings_dice", "building Dice"),
                ("roads_dice", "road Dice"), ("dice", "Dice"), ("lpips", "LPIPS"))


@dataclass
class ModelEntry:
    """One checkpoint the dock offers: its path and model card."""

    path: str
    card: ModelCard
    shipped: bool = False

    @property
    def task(self) -> str:
        return self.card.task

    @property
    def arch(self) -> str:
        return self.card.arch.lower()

    @property
    def target(self) -> Optional[str]:
        return self.card.target

    @property
    def name(self) -> str:
        return self.card.name or Path(self.path).stem

    @property
    def label(self) -> str:
        where = "shipped" if self.shipped else Path(self.path).parent.name
        return f"{self.name} ({self.arch.upper()}, {where})"


class ModelStore:
    """Checkpoints added by the user and the last choices, kept in QgsSettings across sessions."""

    def __init__(self, prefix: str = SETTINGS) -> None:
        self.prefix = prefix

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def extra_paths(self) -> List[str]:
        value = QgsSettings().value(self._key("models/extra"), [])
        if isinstance(value, str):
            value = [value] if value else []
        return [str(v) for v in (value or [])]

    def add(self, path: str) -> None:
        path = str(Path(path).resolve())
        paths = [p for p in self.extra_paths() if p != path] + [path]
        QgsSettings().setValue(self._key("models/extra"), paths)

    def forget_missing(self) -> None:
        QgsSettings().setValue(self._key("models/extra"), [p for p in self.extra_paths() if Path(p).is_file()])

    def choice(self, role: str) -> Optional[str]:
        value = QgsSettings().value(self._key(f"choice/{role}"), "")
        return str(value) if value else None

    def set_choice(self, role: str, path: Optional[str]) -> None:
        QgsSettings().setValue(self._key(f"choice/{role}"), path or "")

    def value(self, name: str, default: Any = "") -> Any:
        return QgsSettings().value(self._key(name), default)

    def flag(self, name: str, default: bool) -> bool:
        """A remembered tick box (QgsSettings stores booleans as text on some platforms)."""
        return str(self.value(name, "true" if default else "false")).lower() == "true"

    def set_value(self, name: str, value: Any) -> None:
        QgsSettings().setValue(self._key(name), value)

    def entries(self) -> List[ModelEntry]:
        """Shipped checkpoints (``resources/models``) then the user's, each listed once."""
        return read_entries(self.extra_paths())


def read_entries(extra_paths: List[str]) -> List[ModelEntry]:
    """Shipped checkpoints then ``extra_paths``, each listed once; safe off the UI thread (no QgsSettings)."""
    out: List[ModelEntry] = []
    seen = set()
    for path, card in api.list_models():
        seen.add(str(Path(path).resolve()))
        out.append(ModelEntry(str(path), card, shipped=True))
    for path in extra_paths:
        key = str(Path(path).resolve())
        if key in seen or not Path(path).is_file():
            continue
        try:
            card = api.model_card(path)
        except Exception as exc:  # a file that went bad since: say so once, list the rest
            log(f"checkpoint {path} is no longer readable: {exc}", Qgis.MessageLevel.Warning)
            continue
        seen.add(key)
        out.append(ModelEntry(path, card))
    return out


def remember_checkpoint(path: str) -> None:
    """Record a checkpoint (e.g. one a training run just made) for every dock to list."""
    ModelStore().add(path)


def breakable(text: str) -> str:
    """Rich text that may wrap inside long names (after ``_ . / -``): a file name must not widen the dock."""
    return re.sub(r"([_./\\-])", "\\1&#8203;", text)


def _metric_text(key: str, value: float) -> str:
    return f"{value:.2f} dB" if key == "cpsnr" else f"{value:.3f}"


def _recipe_line(recipe: dict) -> str:
    terms = []
    for t in recipe.get("losses") or []:
        if not isinstance(t, dict):
            continue
        w = t.get("proportion") if t.get("proportion") is not None else t.get("weight")
        terms.append(f"{w:g} {t.get('name')}" if isinstance(w, (int, float)) and w != 1 else str(t.get("name")))
    extra = []
    if recipe.get("weighting"):
        extra.append(str(recipe["weighting"]))
    sel = ((recipe.get("data") or {}).get("selection") or {}).get("share")
    if sel:
        extra.append(f"patch selection {sel:g}")
    if recipe.get("epochs"):
        extra.append(f"{recipe['epochs']} epochs")
    if recipe.get("init_from"):
        extra.append("fine-tuned")
    return f"recipe: {' + '.join(terms) or '?'}" + (f" ({', '.join(extra)})" if extra else "")


def card_html(entry: Optional[ModelEntry]) -> str:
    """The model card as a few lines of rich text: what the network is and how it was trained."""
    if entry is None:
        return "<i>No checkpoint chosen. Add one with the '...' button or train one (Plugins menu).</i>"
    c = entry.card
    hp = dict(c.hparams)
    arch = entry.arch.upper() + (f" ({hp['preset']})" if hp.get("preset") else "")
    bands = ", ".join(map(str, c.bands))
    lines = [f"<b>{breakable(entry.name)}</b>: {arch}"]
    if entry.task == "sr":
        lines.append(f"scale x{c.scale}, bands {bands}, T = {c.frames or 1} frame(s)")
    else:
        lines.append(f"segments <b>{entry.target}</b>, bands {bands}")
    recipe = dict(c.recipe)
    if recipe:
        lines.append(_recipe_line(recipe))
    metrics = dict(c.metrics)
    for group in ("test", "val"):
        vals = metrics.get(group)
        if isinstance(vals, dict) and vals:
            shown = [f"{title} {_metric_text(k, vals[k])}" for k, title in CARD_METRICS
                     if isinstance(vals.get(k), (int, float))]
            if shown:
                lines.append(f"{group} metrics: {', '.join(shown)}")
                break
    desc = c.description
    if desc:
        lines.append(f"<span style='color:gray'>{breakable(str(desc))}</span>")
    lines.append(f"<span style='color:gray'>{breakable(Path(entry.path).name)}</span>")
    return "<br>".join(lines)
