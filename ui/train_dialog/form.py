"""The training dialog's Settings tab: the knobs of a recipe that analysts change most, as widgets.

Why a form over a YAML file: the loss terms with their weights or dynamic
proportions, the patch selection and the frozen segmentation networks are
what task-driven training is about, and a typo in them should be caught
before a child process starts. :meth:`RecipeForm.fill` shows a recipe,
:meth:`RecipeForm.apply` writes the widgets back into a copy of it; anything
else stays as the recipe says (and can be edited in the YAML tab).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, Optional

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from .presets import Preset
from .recipe import default_out_dir, resolve

__all__ = ["RecipeForm", "FORM_WIDGETS", "DEVICES", "SR_LOSSES", "SEG_LOSSES"]

DEVICES = (("Automatic (GPU when there is one)", "auto"), ("CPU", "cpu"), ("GPU (CUDA)", "cuda"))
SR_LOSSES = ("cl1", "cmse", "consistency_l1", "dice_buildings", "dice_roads")
SEG_LOSSES = ("dice", "bce")
#: The form's widgets the dialog exposes as its own attributes (``dialog.epochs_spin`` ...).
FORM_WIDGETS = ("epochs_spin", "patch_spin", "patch_label", "batch_spin", "samples_spin", "lr_spin",
                "device_combo", "out_dir", "init_from", "weighting_combo", "loss_table", "selection_spin",
                "seg_buildings", "seg_roads")


def _number(item: Optional[QTableWidgetItem], what: str) -> Optional[float]:
    text = item.text().strip() if item is not None else ""
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{what}: '{text}' is not a number") from None


def _seg_default(value: Optional[str], target: str) -> str:
    """The recipe's network when it exists, else the one last used in the dock."""
    if value and not str(value).startswith("run:") and resolve(value).is_file():
        return str(resolve(value))
    try:
        from ..dock.model_store import ModelStore

        chosen = ModelStore().choice(f"seg_{target}")
        if chosen and Path(chosen).is_file():
            return chosen
    except Exception:  # noqa: BLE001 - a default is a convenience
        pass
    return ""


class RecipeForm(QWidget):
    """Epochs, patches, learning rate, device, folders (left); losses, selection, networks (right)."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.seg = False
        cols = QHBoxLayout(self)
        left = QFormLayout()
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 100000)
        left.addRow("Epochs", self.epochs_spin)
        self.patch_spin = QSpinBox()
        self.patch_spin.setRange(8, 4096)
        self.patch_label = QLabel("Patch size (px)")
        left.addRow(self.patch_label, self.patch_spin)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 4096)
        left.addRow("Batch size", self.batch_spin)
        self.samples_spin = QSpinBox()
        self.samples_spin.setRange(1, 10_000_000)
        left.addRow("Patches per epoch", self.samples_spin)
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(6)
        self.lr_spin.setRange(1e-6, 1.0)
        self.lr_spin.setSingleStep(1e-5)
        left.addRow("Learning rate", self.lr_spin)
        self.device_combo = QComboBox()
        for text, key in DEVICES:
            self.device_combo.addItem(text, key)
        left.addRow("Device", self.device_combo)
        self.out_dir = QgsFileWidget()
        self.out_dir.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        left.addRow("Output folder", self.out_dir)
        self.init_from = QgsFileWidget()
        self.init_from.setFilter("Checkpoints (*.safetensors)")
        self.init_from.lineEdit().setPlaceholderText("(train from scratch)")
        left.addRow("Fine-tune from", self.init_from)
        cols.addLayout(left, 1)

        right = QFormLayout()
        self.weighting_combo = QComboBox()
        self.weighting_combo.addItem("Static (fixed weights)", "static")
        self.weighting_combo.addItem("Dynamic (proportions of the reference loss)", "dynamic")
        right.addRow("Loss weighting", self.weighting_combo)
        self.loss_table = QTableWidget(0, 3)
        self.loss_table.setHorizontalHeaderLabels(["Loss", "Weight (static)", "Proportion (dynamic)"])
        self.loss_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.loss_table.verticalHeader().setVisible(False)
        self.loss_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.loss_table.setMinimumHeight(100)
        right.addRow(self.loss_table)
        self.selection_spin = QDoubleSpinBox()
        self.selection_spin.setRange(0.0, 1.0)
        self.selection_spin.setSingleStep(0.05)
        self.selection_spin.setToolTip("Share of training patches drawn where buildings or roads are present "
                                       "(0 = off)")
        right.addRow("Patch selection share", self.selection_spin)
        self.seg_buildings = QgsFileWidget()
        self.seg_buildings.setFilter("Checkpoints (*.safetensors)")
        self.seg_roads = QgsFileWidget()
        self.seg_roads.setFilter("Checkpoints (*.safetensors)")
        right.addRow("Buildings network", self.seg_buildings)
        right.addRow("Roads network", self.seg_roads)
        cols.addLayout(right, 1)

    def set_kind(self, kind: str) -> None:
        """Segmentation recipes count patches in HR pixels and have no task losses."""
        self.seg = str(kind).startswith("seg")
        self.patch_label.setText("HR patch size (px)" if self.seg else "LR patch size (px)")

    def fill(self, preset: Preset, data_dir: str) -> None:
        """Show ``preset``'s values (the run folder defaults to beside the dataset)."""
        d = preset.data
        data = d.get("data") or {}
        self.set_kind(preset.kind)
        self.epochs_spin.setValue(int(d.get("epochs") or 1))
        self.patch_spin.setValue(int(data.get("seg_patch" if self.seg else "lr_patch") or 32))
        self.batch_spin.setValue(int(data.get("batch_size") or 1))
        self.samples_spin.setValue(int(data.get("samples_per_epoch") or 1))
        self.lr_spin.setValue(float(d.get("lr") or 1e-4))
        self.device_combo.setCurrentIndex(max(0, self.device_combo.findData(d.get("device") or "auto")))
        self.out_dir.setFilePath(str(default_out_dir(preset, data_dir)))
        init = (d.get("model") or {}).get("init_from")
        self.init_from.setFilePath("" if not init or str(init).startswith("run:") else str(init))
        loss = d.get("loss") or {}
        self.weighting_combo.setCurrentIndex(max(0, self.weighting_combo.findData(loss.get("weighting"))))
        self.loss_table.setRowCount(0)
        for t in loss.get("terms") or []:
            self._add_loss_row(t.get("name", ""), t.get("weight"), t.get("proportion"))
        self.selection_spin.setValue(float(((data.get("selection") or {}).get("share")) or 0.0))
        nets = d.get("seg_nets") or {}
        for widget, target in ((self.seg_buildings, "buildings"), (self.seg_roads, "roads")):
            widget.setFilePath(_seg_default(nets.get(target), target))
        for w in (self.seg_buildings, self.seg_roads, self.selection_spin, self.weighting_combo, self.loss_table):
            w.setEnabled(not self.seg)

    def _add_loss_row(self, name: str, weight: Optional[float], proportion: Optional[float]) -> None:
        r = self.loss_table.rowCount()
        self.loss_table.insertRow(r)
        combo = QComboBox()
        combo.addItems(SEG_LOSSES if self.seg else SR_LOSSES)
        if combo.findText(name) < 0:
            combo.addItem(name)
        combo.setCurrentText(name)
        self.loss_table.setCellWidget(r, 0, combo)
        self.loss_table.setItem(r, 1, QTableWidgetItem("" if weight is None else f"{weight:g}"))
        self.loss_table.setItem(r, 2, QTableWidgetItem("" if proportion is None else f"{proportion:g}"))

    def apply(self, preset: Preset, data_dir: str) -> Dict[str, Any]:
        """A copy of ``preset``'s recipe with the form's values (``ValueError`` for a non-number)."""
        d = copy.deepcopy(preset.data)
        seg = preset.kind.startswith("seg")
        data = d.setdefault("data", {})
        d["epochs"] = self.epochs_spin.value()
        data["seg_patch" if seg else "lr_patch"] = self.patch_spin.value()
        data["batch_size"] = self.batch_spin.value()
        data["samples_per_epoch"] = self.samples_spin.value()
        d["lr"] = float(self.lr_spin.value())
        d["device"] = self.device_combo.currentData()
        d["out_dir"] = self.out_dir.filePath().strip()
        if data_dir.strip():
            data["root"] = data_dir.strip()
        d.setdefault("model", {})["init_from"] = self.init_from.filePath().strip() or None
        if not seg:
            terms = []
            for r in range(self.loss_table.rowCount()):
                name = self.loss_table.cellWidget(r, 0).currentText()
                terms.append({"name": name, "weight": _number(self.loss_table.item(r, 1), f"weight of {name}"),
                              "proportion": _number(self.loss_table.item(r, 2), f"proportion of {name}")})
            loss = d.setdefault("loss", {})
            loss["terms"] = terms
            loss["weighting"] = self.weighting_combo.currentData()
            data.setdefault("selection", {})["share"] = float(self.selection_spin.value())
            nets = d.setdefault("seg_nets", {})
            nets["buildings"] = self.seg_buildings.filePath().strip() or None
            nets["roads"] = self.seg_roads.filePath().strip() or None
        return d
