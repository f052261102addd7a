"""Dock widgets made from ``core.options`` fields: a tick box, a number box or a list per option.

Why: the dock fills the same options dataclass the CLI and Processing fill,
and an option added to ``core/options.py`` should need at most one line here
(its name in a tab's list) to appear in the dock, with the label, help text,
limits and "automatic" value the field already carries. Options that need a
QGIS-aware widget (the band of a layer, the map extent, the output folder)
keep their own hand-made widgets in the tabs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Sequence

from qgis.PyQt.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QSpinBox, QWidget

from ...core.options import OptionMeta, option_fields

__all__ = ["OptionWidgets", "AUTOMATIC", "tick_box"]

AUTOMATIC = "automatic"


def tick_box(text: str, name: str, tip: str = "", checked: Optional[bool] = None) -> QCheckBox:
    """A hand-made tick box named ``name`` (for the tests), with a tool tip and a first state when given."""
    box = QCheckBox(text)
    box.setObjectName(name)
    if tip:
        box.setToolTip(tip)
    if checked is not None:
        box.setChecked(checked)
    return box


def _widget(f: dataclasses.Field, meta: OptionMeta) -> QWidget:
    default = f.default
    auto = meta.auto or default is None
    if meta.kind == "bool":
        box = QCheckBox(meta.label)
        box.setChecked(bool(default))
        return box
    if meta.kind == "choice":
        combo = QComboBox()
        for choice in meta.choices:
            combo.addItem(str(choice), choice)
        combo.setCurrentIndex(list(meta.choices).index(default))
        return combo
    if meta.kind in ("int", "float"):
        spin = QSpinBox() if meta.kind == "int" else QDoubleSpinBox()
        if meta.kind == "float":
            spin.setDecimals(4)
            spin.setSingleStep(0.01 if (meta.maximum or 0) <= 1 else 1.0)
        low = meta.minimum if meta.minimum is not None else (-1e9 if meta.kind == "float" else -(2 ** 31 - 1))
        high = meta.maximum if meta.maximum is not None else (1e9 if meta.kind == "float" else 2 ** 31 - 1)
        if auto:  # one below the minimum means "choose for me"
            low = min(0, low - 1) if meta.kind == "int" else low - 1
            spin.setSpecialValueText(AUTOMATIC)
        spin.setRange(int(low) if meta.kind == "int" else low, int(high) if meta.kind == "int" else high)
        spin.setValue(spin.minimum() if default is None else default)
        return spin
    raise TypeError(f"option '{f.name}' ({meta.kind}) needs a hand-made widget in the dock")


class OptionWidgets:
    """Widgets for the named fields of an options dataclass, and their values back as keyword arguments."""

    def __init__(self, cls: type, names: Sequence[str]) -> None:
        fields = {f.name: (f, meta) for f, meta in option_fields(cls)}
        missing = [n for n in names if n not in fields]
        if missing:
            raise KeyError(f"{cls.__name__} has no option {', '.join(missing)}")
        self.cls = cls
        self.meta: Dict[str, OptionMeta] = {n: fields[n][1] for n in names}
        self.widgets: Dict[str, QWidget] = {}
        for name in names:
            f, meta = fields[name]
            widget = _widget(f, meta)
            widget.setObjectName(f"option_{name}")
            widget.setToolTip(meta.help[:1].upper() + meta.help[1:])
            self.widgets[name] = widget

    def __getitem__(self, name: str) -> QWidget:
        return self.widgets[name]

    def add_rows(self, form: QFormLayout) -> None:
        """One form row per option: a tick box on its own, a number or list box beside its label."""
        for name, widget in self.widgets.items():
            if isinstance(widget, QCheckBox):
                form.addRow(widget)
            else:
                form.addRow(self.meta[name].label, widget)

    def values(self) -> Dict[str, Any]:
        """The widgets' values as the dataclass's keyword arguments (``None`` where "automatic")."""
        out: Dict[str, Any] = {}
        for name, widget in self.widgets.items():
            if isinstance(widget, QCheckBox):
                out[name] = widget.isChecked()
            elif isinstance(widget, QComboBox):
                out[name] = widget.currentData()
            elif isinstance(widget, (QSpinBox, QDoubleSpinBox)):
                value = widget.value()
                auto = widget.specialValueText() == AUTOMATIC and value == widget.minimum()
                out[name] = None if auto else value
        return out
