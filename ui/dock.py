"""The plugin's dock: pick the input and a checkpoint, super-resolve, segment, compare.

Everything the engine needs (file paths, band, extent in the raster's CRS,
output paths) is read here on the main thread and handed to a QgsTask as plain
values (``ui.tasks``); result layers are added when the task reports back.
Before anything runs, the Input box says what will happen to the layers (same
grid? warped from degrees to UTM? refused because it is a web service?), so an
analyst is never surprised by what the engine did.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from qgis.core import (
    Qgis,
    QgsCoordinateTransform,
    QgsLayerTreeGroup,
    QgsLayerTreeLayer,
    QgsMapLayer,
    QgsMapLayerProxyModel,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsSettings,
    QgsVectorLayer,
)
from qgis.gui import QgsDockWidget, QgsFileWidget, QgsMapLayerComboBox, QgsRasterBandComboBox
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.jobs import unique_path
from .compare import ComparePanel
from .log import LogView, log, log_exception, notify
from .styles import (
    apply_gray_stretch,
    layer_stretch,
    style_mask,
    style_probability,
    style_trust,
    style_vectors,
)
from .tasks import (  # noqa: F401 - Refused and layer_file are part of this module's API
    CoreTask,
    Refused,
    SegmentJob,
    SuperResolveJob,
    TaskRunner,
    layer_file,
    seg_task,
    sr_task,
    utm_crs_for_layer,
)

SETTINGS = "s2_taskdriven_sr"
SINGLE, REVISITS, DATES = 0, 1, 2
ARCH_FILTERS = (("Any architecture", None), ("RAMS (multi-image)", "rams"), ("HAT (single image)", "hat"))
DEVICES = (("CPU", "cpu"), ("GPU (CUDA)", "cuda"))


def group_for(name: str) -> QgsLayerTreeGroup:
    """The top-level layer group called ``name`` (made at the top when missing)."""
    root = QgsProject.instance().layerTreeRoot()
    group = root.findGroup(name)
    return group if group is not None else root.insertGroup(0, name)


def add_to_group(layer: QgsMapLayer, group: QgsLayerTreeGroup, visible: bool = True) -> QgsLayerTreeLayer:
    QgsProject.instance().addMapLayer(layer, False)
    node = group.insertLayer(0, layer)
    node.setItemVisibilityChecked(visible)
    return node


# --------------------------------------------------------------------------- checkpoints


@dataclass
class ModelEntry:
    """One checkpoint the dock offers: its path and model card."""

    path: str
    card: Any
    shipped: bool = False

    @property
    def task(self) -> str:
        return str(getattr(self.card, "task", "sr") or "sr")

    @property
    def arch(self) -> str:
        return str(getattr(self.card, "arch", "") or "").lower()

    @property
    def target(self) -> Optional[str]:
        return getattr(self.card, "target", None)

    @property
    def label(self) -> str:
        name = getattr(self.card, "name", "") or Path(self.path).stem
        where = "shipped" if self.shipped else Path(self.path).parent.name
        return f"{name} ({self.arch.upper()}, {where})"


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

    def set_value(self, name: str, value: Any) -> None:
        QgsSettings().setValue(self._key(name), value)

    def entries(self) -> List[ModelEntry]:
        """Shipped checkpoints (``resources/models``) then the user's, each listed once."""
        from ..core import api

        out: List[ModelEntry] = []
        seen = set()
        for path, card in api.list_models():
            seen.add(str(Path(path).resolve()))
            out.append(ModelEntry(str(path), card, shipped=True))
        for path in self.extra_paths():
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


#: Metrics shown on a model card, in this order (the card may hold many more).
CARD_METRICS = (("cpsnr", "cPSNR"), ("cssim", "cSSIM"), ("buildings_dice", "building Dice"),
                ("roads_dice", "road Dice"), ("dice", "Dice"), ("lpips", "LPIPS"))


def _metric_text(key: str, value: float) -> str:
    return f"{value:.2f} dB" if key == "cpsnr" else f"{value:.3f}"


def card_html(entry: Optional[ModelEntry]) -> str:
    """The model card as a few lines of rich text: what the network is and how it was trained."""
    if entry is None:
        return "<i>No checkpoint chosen. Add one with the '...' button or train one (Plugins menu).</i>"
    c = entry.card
    hp = dict(getattr(c, "hparams", None) or {})
    arch = entry.arch.upper() + (f" ({hp['preset']})" if hp.get("preset") else "")
    lines = [f"<b>{getattr(c, 'name', '') or Path(entry.path).stem}</b>: {arch}"]
    if entry.task == "sr":
        lines.append(f"scale x{getattr(c, 'scale', 3)}, bands {', '.join(map(str, getattr(c, 'bands', []) or []))}, "
                     f"T = {getattr(c, 'frames', None) or 1} frame(s)")
    else:
        lines.append(f"segments <b>{entry.target}</b>, bands {', '.join(map(str, getattr(c, 'bands', []) or []))}")
    recipe = dict(getattr(c, "recipe", None) or {})
    if recipe:
        terms = []
        for t in recipe.get("losses") or []:
            if not isinstance(t, dict):
                continue
            w = t.get("proportion") if t.get("proportion") is not None else t.get("weight")
            terms.append(f"{w:g} {t.get('name')}" if isinstance(w, (int, float)) and w != 1 else str(t.get("name")))
        text = " + ".join(terms) or "?"
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
        lines.append(f"recipe: {text}" + (f" ({', '.join(extra)})" if extra else ""))
    metrics = dict(getattr(c, "metrics", None) or {})
    for group in ("test", "val"):
        vals = metrics.get(group)
        if isinstance(vals, dict) and vals:
            shown = [f"{title} {_metric_text(k, vals[k])}" for k, title in CARD_METRICS
                     if isinstance(vals.get(k), (int, float))]
            if shown:
                lines.append(f"{group} metrics: {', '.join(shown)}")
                break
    desc = getattr(c, "description", "")
    if desc:
        lines.append(f"<span style='color:gray'>{desc}</span>")
    lines.append(f"<span style='color:gray'>{Path(entry.path).name}</span>")
    return "<br>".join(lines)


# --------------------------------------------------------------------------- input checks


@dataclass
class InputSpec:
    """What the Input box describes, read on the main thread."""

    mode: int
    layers: List[QgsRasterLayer]
    paths: List[str]
    band: Any  # 1-based index, or "all" (bands are dates)
    band_index: int  # the band whose stretch the output takes
    name: str
    notes: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


def _pixel(layer: QgsRasterLayer) -> Tuple[float, float]:
    return layer.rasterUnitsPerPixelX(), layer.rasterUnitsPerPixelY()


def describe_grid(layers: Sequence[QgsRasterLayer]) -> Tuple[List[str], List[str]]:
    """(notes, warnings) about the layers' CRS and grids, in the words the Input box shows."""
    notes: List[str] = []
    warnings: List[str] = []
    first = layers[0]
    crs = first.crs()
    if not crs.isValid():
        raise Refused(f"'{first.name()}' has no coordinate reference system; assign one "
                      "(Layer Properties > Source) before super-resolving")
    px, py = _pixel(first)
    unit = "deg" if crs.isGeographic() else "m"
    notes.append(f"{crs.authid() or 'custom CRS'}, pixel {px:.6g} x {py:.6g} {unit}, "
                 f"{first.width()} x {first.height()} px")
    if crs.isGeographic():
        utm = utm_crs_for_layer(first)
        warnings.append(f"'{first.name()}' is in degrees ({crs.authid()}): it will be warped to "
                        f"{utm.authid()} (UTM) first, so buildings keep their shape")
    different = []
    for lyr in layers[1:]:
        if not lyr.crs().isValid():
            raise Refused(f"'{lyr.name()}' has no coordinate reference system; assign one first")
        same = (lyr.crs() == crs and lyr.width() == first.width() and lyr.height() == first.height()
                and _close(lyr.extent(), first.extent(), px) and _close_px(_pixel(lyr), (px, py)))
        if not same:
            different.append(lyr.name())
    if len(layers) > 1:
        if different:
            warnings.append(f"{len(different)} revisit(s) on another grid ({', '.join(different)}): "
                            f"they will be resampled onto the grid of '{first.name()}'")
        else:
            notes.append(f"all {len(layers)} revisits share one grid")
    return notes, warnings


def _close(a: QgsRectangle, b: QgsRectangle, px: float) -> bool:
    tol = abs(px) * 1e-3
    return (abs(a.xMinimum() - b.xMinimum()) <= tol and abs(a.yMinimum() - b.yMinimum()) <= tol
            and abs(a.xMaximum() - b.xMaximum()) <= tol and abs(a.yMaximum() - b.yMaximum()) <= tol)


def _close_px(a: Tuple[float, float], b: Tuple[float, float]) -> bool:
    return abs(a[0] - b[0]) <= abs(b[0]) * 1e-6 and abs(a[1] - b[1]) <= abs(b[1]) * 1e-6


# --------------------------------------------------------------------------- the dock


class SRDockWidget(QgsDockWidget):
    """Dock of the plugin. Signals: ``outputAdded(layer)`` after a super-resolution,
    ``segmentationAdded(list)`` after a segmentation."""

    outputAdded = pyqtSignal(object)
    segmentationAdded = pyqtSignal(object)

    def __init__(self, iface: Any, parent: Optional[QWidget] = None) -> None:
        super().__init__("Sentinel-2 super-resolution", parent)
        self.setObjectName("S2TaskDrivenSRDock")
        self.iface = iface
        self.store = ModelStore()
        self.runner = TaskRunner(self)
        self.models: List[ModelEntry] = []
        self.last_output: Optional[QgsRasterLayer] = None
        self.last_trust: Optional[QgsRasterLayer] = None
        self._closing = False
        self._build()
        self.refresh_models()
        self._refresh_revisits()
        self.update_check()
        project = QgsProject.instance()
        project.layersAdded.connect(self._layers_changed)
        project.layersRemoved.connect(self._layers_changed)
        self.runner.busyChanged.connect(self._busy)
        self.runner.progressChanged.connect(self._progress)

    # ------------------------------------------------------------------ widgets
    def _build(self) -> None:
        body = QWidget()
        outer = QVBoxLayout(body)
        outer.setContentsMargins(4, 4, 4, 4)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_sr_tab(), "Super-resolve")
        self.tabs.addTab(self._build_seg_tab(), "Segment")
        self.compare = ComparePanel(self.iface, self.runner, self)
        self.tabs.addTab(self.compare, "Compare")
        for combo, role in ((self.compare.baseline_combo, "compare_baseline"),
                            (self.compare.taskdriven_combo, "compare_taskdriven")):
            combo.activated.connect(lambda _i, c=combo, r=role: self.store.set_choice(r, c.currentData()))
        outer.addWidget(self.tabs, 3)

        status = QHBoxLayout()
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running job; nothing half-made is kept")
        self.cancel_button.clicked.connect(self.cancel_jobs)
        status.addWidget(self.progress_bar, 1)
        status.addWidget(self.cancel_button)
        outer.addLayout(status)
        self.progress_label = QLabel("")
        self.progress_label.setStyleSheet("color: gray")
        outer.addWidget(self.progress_label)
        self._busy(False)

        log_box = QGroupBox("Log")
        lb = QVBoxLayout(log_box)
        lb.setContentsMargins(2, 2, 2, 2)
        self.log_view = LogView()
        self.log_view.setMinimumHeight(70)
        lb.addWidget(self.log_view)
        outer.addWidget(log_box, 1)

        for combo in body.findChildren(QComboBox):  # long layer or file names must not widen the dock
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(12)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(body)
        self.setWidget(scroll)

    def _build_sr_tab(self) -> QWidget:
        tab = QWidget()
        layout = QVBoxLayout(tab)
        box = QGroupBox("Input")
        form = QFormLayout(box)
        self.mode_combo = QComboBox()
        self.mode_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        for text, tip in (("One image (SISR)", "single-image super-resolution, e.g. HAT"),
                          ("Several revisits (MISR)", "multi-image super-resolution from revisits, e.g. RAMS"),
                          ("Bands are dates (MISR)", "one layer whose bands are revisits of one band")):
            self.mode_combo.addItem(text)
            self.mode_combo.setItemData(self.mode_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        form.addRow("Input", self.mode_combo)
        self.layer_combo = QgsMapLayerComboBox()
        self.layer_combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.layer_label = QLabel("Raster layer")
        form.addRow(self.layer_label, self.layer_combo)
        self.revisit_list = QListWidget()
        self.revisit_list.setMaximumHeight(100)
        self.revisit_list.setToolTip("Tick the revisits of one place (the first ticked one sets the grid)")
        self.revisit_label = QLabel("Revisits")
        form.addRow(self.revisit_label, self.revisit_list)
        self.band_combo = QgsRasterBandComboBox()
        self.band_label = QLabel("Band")
        form.addRow(self.band_label, self.band_combo)
        self.check_label = QLabel("")
        self.check_label.setWordWrap(True)
        self.check_label.setTextFormat(Qt.TextFormat.RichText)
        form.addRow(self.check_label)
        layout.addWidget(box)

        mbox = QGroupBox("Model")
        mform = QFormLayout(mbox)
        self.arch_combo = QComboBox()
        for text, key in ARCH_FILTERS:
            self.arch_combo.addItem(text, key)
        mform.addRow("Architecture", self.arch_combo)
        row = QHBoxLayout()
        self.checkpoint_combo = QComboBox()
        self.checkpoint_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.checkpoint_combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.add_button = QToolButton()
        self.add_button.setText("...")
        self.add_button.setToolTip("Add a checkpoint file (.safetensors)")
        self.add_button.clicked.connect(self._browse_checkpoint)
        row.addWidget(self.checkpoint_combo, 1)
        row.addWidget(self.add_button)
        mform.addRow("Checkpoint", row)
        self.card_label = QLabel("")
        self.card_label.setWordWrap(True)
        self.card_label.setTextFormat(Qt.TextFormat.RichText)
        self.card_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        mform.addRow(self.card_label)
        layout.addWidget(mbox)

        obox = QGroupBox("Options")
        oform = QFormLayout(obox)
        self.extent_check = QCheckBox("Current map extent only (fast preview)")
        oform.addRow(self.extent_check)
        self.trust_check = QCheckBox("Also write a trust map")
        self.trust_check.setToolTip(
            "After super-resolving, degrade the output back to Sentinel-2 and compare it with every revisit: "
            "red where the output disagrees with what S-2 saw (invented or missed detail). Added as a hidden "
            "layer above the output; its second band is the spread of the revisits among themselves.")
        self.trust_check.setChecked(str(self.store.value("trust_map", "false")).lower() == "true")
        oform.addRow(self.trust_check)
        self.anchor_check = QCheckBox("Match brightness to the revisits")
        self.anchor_check.setToolTip(
            "Shift each tile of the output to the mean brightness of its revisits. Networks trained with cL1 "
            "are blind to a constant offset and may come out too dark or too bright; untick to see the "
            "network's raw output.")
        self.anchor_check.setChecked(str(self.store.value("anchor", "true")).lower() == "true")
        oform.addRow(self.anchor_check)
        self.device_combo = QComboBox()
        for text, key in DEVICES:
            self.device_combo.addItem(text, key)
        idx = self.device_combo.findData(self.store.value("device", "cpu"))
        self.device_combo.setCurrentIndex(max(0, idx))
        oform.addRow("Run on", self.device_combo)
        self.out_dir = QgsFileWidget()
        self.out_dir.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.out_dir.setFilePath(str(self.store.value("output_dir", "") or ""))
        self.out_dir.lineEdit().setPlaceholderText("next to the input (or a temporary folder)")
        oform.addRow("Output folder", self.out_dir)
        layout.addWidget(obox)

        self.run_button = QPushButton("Super-resolve layer")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.super_resolve)
        layout.addWidget(self.run_button)
        layout.addStretch(1)

        self.mode_combo.currentIndexChanged.connect(self._mode_changed)
        self.layer_combo.layerChanged.connect(self._input_changed)
        self.revisit_list.itemChanged.connect(self._input_changed)
        self.band_combo.bandChanged.connect(lambda _b: self.update_check())
        self.arch_combo.currentIndexChanged.connect(lambda _i: self._fill_sr_combo())
        self.checkpoint_combo.currentIndexChanged.connect(self._checkpoint_changed)
        self.extent_check.toggled.connect(lambda _c: self.update_check())
        self.trust_check.toggled.connect(lambda c: self.store.set_value("trust_map", "true" if c else "false"))
        self.anchor_check.toggled.connect(lambda c: self.store.set_value("anchor", "true" if c else "false"))
        self.device_combo.currentIndexChanged.connect(
            lambda _i: self.store.set_value("device", self.device_combo.currentData()))
        self.out_dir.fileChanged.connect(lambda p: self.store.set_value("output_dir", p))
        self._mode_changed()
        return tab

    def _build_seg_tab(self) -> QWidget:
        tab = QWidget()
        layout = QVBoxLayout(tab)
        box = QGroupBox("Raster to segment")
        form = QFormLayout(box)
        self.seg_layer_combo = QgsMapLayerComboBox()
        self.seg_layer_combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        form.addRow("Layer", self.seg_layer_combo)
        self.seg_band_combo = QgsRasterBandComboBox()
        self.seg_layer_combo.layerChanged.connect(self.seg_band_combo.setLayer)
        self.seg_band_combo.setLayer(self.seg_layer_combo.currentLayer())
        form.addRow("Band", self.seg_band_combo)
        hint = QLabel("Defaults to the latest super-resolved layer; any HR raster works.")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: gray")
        form.addRow(hint)
        layout.addWidget(box)

        nbox = QGroupBox("Networks")
        nform = QFormLayout(nbox)
        self.buildings_check = QCheckBox("Buildings")
        self.buildings_check.setChecked(True)
        self.seg_buildings_combo = QComboBox()
        nform.addRow(self.buildings_check, self.seg_buildings_combo)
        self.roads_check = QCheckBox("Roads")
        self.roads_check.setChecked(True)
        self.seg_roads_combo = QComboBox()
        nform.addRow(self.roads_check, self.seg_roads_combo)
        self.vectors_check = QCheckBox("Also make polygon layers (GeoPackage)")
        nform.addRow(self.vectors_check)
        layout.addWidget(nbox)

        self.segment_button = QPushButton("Segment buildings / roads")
        self.segment_button.clicked.connect(self.segment)
        layout.addWidget(self.segment_button)
        layout.addStretch(1)
        for combo, role in ((self.seg_buildings_combo, "seg_buildings"), (self.seg_roads_combo, "seg_roads")):
            combo.currentIndexChanged.connect(lambda _i, c=combo, r=role: self.store.set_choice(r, c.currentData()))
        return tab

    # ------------------------------------------------------------------ models
    def refresh_models(self) -> None:
        """Re-read the shipped and added checkpoints (cards only; weights load when a job runs)."""
        try:
            self.models = self.store.entries()
        except Exception as exc:
            self.models = []
            notify(self.iface, "Models", log_exception(exc, "listing checkpoints"), Qgis.MessageLevel.Warning)
        self._fill_sr_combo()
        for combo, target, role in ((self.seg_buildings_combo, "buildings", "seg_buildings"),
                                    (self.seg_roads_combo, "roads", "seg_roads")):
            wanted = combo.currentData() or self.store.choice(role)
            combo.blockSignals(True)
            combo.clear()
            for e in self.models:
                if e.task == "segmentation" and (e.target or target) == target:
                    combo.addItem(e.label, e.path)
            if combo.count() == 0:
                combo.addItem(f"no {target} network: add one with '...' in the Super-resolve tab", None)
            idx = combo.findData(wanted) if wanted else -1
            combo.setCurrentIndex(max(0, idx))
            combo.blockSignals(False)
        sr = [e for e in self.models if e.task == "sr"]
        self.compare.set_models(sr, self.store.choice("compare_baseline"), self.store.choice("compare_taskdriven"),
                                focus=self.current_entry())

    def _fill_sr_combo(self) -> None:
        arch = self.arch_combo.currentData()
        # The remembered choice first: add_checkpoint() sets it to the file just added, which must win
        # over what the combo showed before; otherwise it is the combo's own selection anyway.
        wanted = self.store.choice("sr") or self.checkpoint_combo.currentData()
        self.checkpoint_combo.blockSignals(True)
        self.checkpoint_combo.clear()
        for e in self.models:
            if e.task == "sr" and (arch is None or e.arch == arch):
                self.checkpoint_combo.addItem(e.label, e.path)
                self.checkpoint_combo.setItemData(self.checkpoint_combo.count() - 1, e.path,
                                                  Qt.ItemDataRole.ToolTipRole)
        idx = self.checkpoint_combo.findData(wanted) if wanted else -1
        self.checkpoint_combo.setCurrentIndex(idx if idx >= 0 else (0 if self.checkpoint_combo.count() else -1))
        self.checkpoint_combo.blockSignals(False)
        self._checkpoint_changed()

    def entry_for(self, path: Optional[str]) -> Optional[ModelEntry]:
        for e in self.models:
            if path and e.path == path:
                return e
        return None

    def current_entry(self) -> Optional[ModelEntry]:
        return self.entry_for(self.checkpoint_combo.currentData())

    def _checkpoint_changed(self, *_args: Any) -> None:
        entry = self.current_entry()
        self.card_label.setText(card_html(entry))
        self.card_label.setToolTip(entry.path if entry is not None else "")
        if entry is not None:
            self.store.set_choice("sr", entry.path)
        self.update_check()

    def _browse_checkpoint(self) -> None:
        start = str(Path(self.checkpoint_combo.currentData() or Path.home()).parent)
        path, _ = QFileDialog.getOpenFileName(self, "Add a checkpoint", start, "Checkpoints (*.safetensors)")
        if path:
            self.add_checkpoint(path)

    def add_checkpoint(self, path: str) -> Optional[ModelEntry]:
        """Offer ``path`` from now on (this session and the next ones) and select it."""
        from ..core import api

        path = str(Path(path).resolve())
        try:
            card = api.model_card(path)
        except Exception as exc:
            notify(self.iface, "Checkpoint", log_exception(exc, "adding a checkpoint"), Qgis.MessageLevel.Warning)
            return None
        self.store.add(path)
        entry = ModelEntry(path, card)
        if entry.task == "sr":
            self.store.set_choice("sr", path)
            if self.arch_combo.currentData() not in (None, entry.arch):
                self.arch_combo.setCurrentIndex(0)
        else:
            self.store.set_choice(f"seg_{entry.target}", path)
        self.refresh_models()
        if entry.task == "segmentation":
            combo = self.seg_buildings_combo if entry.target == "buildings" else self.seg_roads_combo
            combo.setCurrentIndex(max(0, combo.findData(path)))
        log(f"checkpoint added: {path}")
        return self.entry_for(path)

    def select_checkpoint(self, path: str) -> None:
        """Select an SR checkpoint already listed (adds it when it is not)."""
        path = str(Path(path).resolve())
        if self.entry_for(path) is None:
            self.add_checkpoint(path)
        self.arch_combo.setCurrentIndex(0)
        self.checkpoint_combo.setCurrentIndex(self.checkpoint_combo.findData(path))

    # ------------------------------------------------------------------ input
    def _mode_changed(self, *_args: Any) -> None:
        mode = self.mode_combo.currentIndex()
        for w in (self.layer_combo, self.layer_label):
            w.setVisible(mode != REVISITS)
        for w in (self.revisit_list, self.revisit_label):
            w.setVisible(mode == REVISITS)
        for w in (self.band_combo, self.band_label):
            w.setVisible(mode != DATES)
        self._input_changed()

    def _layers_changed(self, *_args: Any) -> None:
        if self._closing:
            return
        self._refresh_revisits()
        self.update_check()

    def _refresh_revisits(self) -> None:
        checked = {it.data(Qt.ItemDataRole.UserRole) for it in self._revisit_items()
                   if it.checkState() == Qt.CheckState.Checked}
        self.revisit_list.blockSignals(True)
        self.revisit_list.clear()
        for layer in QgsProject.instance().mapLayers().values():
            if isinstance(layer, QgsRasterLayer):
                item = QListWidgetItem(layer.name())
                item.setData(Qt.ItemDataRole.UserRole, layer.id())
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if layer.id() in checked else Qt.CheckState.Unchecked)
                self.revisit_list.addItem(item)
        self.revisit_list.blockSignals(False)

    def _revisit_items(self) -> List[QListWidgetItem]:
        return [self.revisit_list.item(i) for i in range(self.revisit_list.count())]

    def set_revisits(self, layers: Sequence[QgsRasterLayer]) -> None:
        """Tick exactly these layers as revisits (the first one sets the grid)."""
        ids = [lyr.id() for lyr in layers]
        self._refresh_revisits()
        self.revisit_list.blockSignals(True)
        for it in self._revisit_items():
            it.setCheckState(Qt.CheckState.Checked if it.data(Qt.ItemDataRole.UserRole) in ids
                             else Qt.CheckState.Unchecked)
        # keep the grid-setting layer first
        for pos, lid in enumerate(ids):
            for row in range(self.revisit_list.count()):
                if self.revisit_list.item(row).data(Qt.ItemDataRole.UserRole) == lid:
                    self.revisit_list.insertItem(pos, self.revisit_list.takeItem(row))
                    break
        self.revisit_list.blockSignals(False)
        self._input_changed()

    def selected_layers(self) -> List[QgsRasterLayer]:
        if self.mode_combo.currentIndex() == REVISITS:
            project = QgsProject.instance()
            out = []
            for it in self._revisit_items():
                if it.checkState() == Qt.CheckState.Checked:
                    layer = project.mapLayer(it.data(Qt.ItemDataRole.UserRole))
                    if isinstance(layer, QgsRasterLayer):
                        out.append(layer)
            return out
        layer = self.layer_combo.currentLayer()
        return [layer] if isinstance(layer, QgsRasterLayer) else []

    def _input_changed(self, *_args: Any) -> None:
        layers = self.selected_layers()
        first = layers[0] if layers else None
        if self.band_combo.layer() is not first:
            band = self.band_combo.currentBand()
            self.band_combo.setLayer(first)
            if first is not None and 1 <= band <= first.bandCount():
                self.band_combo.setBand(band)
        self.update_check()

    def input_spec(self) -> InputSpec:
        """The input as plain values, or :class:`Refused` with the reason."""
        mode = self.mode_combo.currentIndex()
        layers = self.selected_layers()
        if not layers:
            raise Refused("tick the revisits to use" if mode == REVISITS else "choose a raster layer")
        paths = [layer_file(lyr) for lyr in layers]
        if mode == DATES:
            band: Any = "all"
            band_index = 1
            if layers[0].bandCount() < 2:
                raise Refused(f"'{layers[0].name()}' has one band; 'bands are dates' needs one band per date")
        else:
            band_index = self.band_combo.currentBand()
            if band_index < 1:
                band_index = 1
            for lyr in layers:
                if band_index > lyr.bandCount():
                    raise Refused(f"'{lyr.name()}' has {lyr.bandCount()} band(s); band {band_index} does not exist")
            band = band_index
        notes, warnings = describe_grid(layers)
        return InputSpec(mode, layers, paths, band, band_index, layers[0].name(), notes, warnings)

    def update_check(self) -> None:
        """Show, before anything runs, what will happen to the input (or why it is refused)."""
        try:
            spec = self.input_spec()
        except Refused as exc:
            self.check_label.setText(f"<span style='color:#b42318'>&#10007; {exc}</span>")
            self.run_button.setEnabled(False)
            return
        lines = [f"<span style='color:#1a7f37'>&#10003;</span> {n}" for n in spec.notes]
        lines += [f"<span style='color:#b54708'>&#9888; {w}</span>" for w in spec.warnings]
        entry = self.current_entry()
        if entry is not None:
            frames = int(getattr(entry.card, "frames", None) or 1)
            n_in = len(spec.layers) if spec.mode == REVISITS else (
                spec.layers[0].bandCount() if spec.mode == DATES else 1)
            if frames > 1 and n_in < frames:
                lines.append(f"<span style='color:#b54708'>&#9888; the model takes {frames} frames and gets "
                             f"{n_in}: frames will be repeated (use more revisits for its best output)</span>")
            elif frames == 1 and n_in > 1:
                lines.append(f"<span style='color:gray'>the model takes one image: the clearest of the {n_in} "
                             "is used</span>")
        if self.extent_check.isChecked():
            try:
                ext = self.extent_for(spec)
                lines.append(f"<span style='color:gray'>preview of the map extent only "
                             f"({ext[2] - ext[0]:.0f} x {ext[3] - ext[1]:.0f} map units)</span>")
            except Refused as exc:
                lines.append(f"<span style='color:#b42318'>&#10007; {exc}</span>")
        self.check_label.setText("<br>".join(lines))
        self.run_button.setEnabled(entry is not None and not self.runner.busy())

    def extent_for(self, spec: InputSpec) -> Tuple[float, float, float, float]:
        """The map view's extent in the grid the engine reads (the layer's CRS, or UTM for degrees)."""
        layer = spec.layers[0]
        canvas = self.iface.mapCanvas()
        crs = utm_crs_for_layer(layer) if layer.crs().isGeographic() else layer.crs()
        src = canvas.mapSettings().destinationCrs()
        view = canvas.extent()
        if not src.isValid():
            src = layer.crs()
        to_grid = QgsCoordinateTransform(src, crs, QgsProject.instance())
        rect = to_grid.transformBoundingBox(view)
        full = QgsCoordinateTransform(layer.crs(), crs, QgsProject.instance()).transformBoundingBox(layer.extent())
        inter = rect.intersect(full)
        if inter.isEmpty() or inter.width() <= 0 or inter.height() <= 0:
            raise Refused(f"the map view does not overlap '{layer.name()}'; zoom to the layer first")
        return (inter.xMinimum(), inter.yMinimum(), inter.xMaximum(), inter.yMaximum())

    def output_folder(self, near: str) -> Path:
        chosen = self.out_dir.filePath().strip()
        if chosen:
            folder = Path(chosen)
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise Refused(f"cannot use the output folder {folder}: {exc.strerror or exc}") from None
            if not os.access(folder, os.W_OK):
                raise Refused(f"cannot write to the output folder {folder}; choose another one")
            return folder
        folder = Path(near).parent
        if os.access(folder, os.W_OK):
            return folder
        return Path(QgsProcessingUtils.tempFolder())

    def device(self) -> str:
        return str(self.device_combo.currentData() or "cpu")

    def seg_checkpoints(self) -> Dict[str, str]:
        """Segmentation checkpoints ticked in the Segment tab (target -> path)."""
        out: Dict[str, str] = {}
        if self.buildings_check.isChecked() and self.seg_buildings_combo.currentData():
            out["buildings"] = self.seg_buildings_combo.currentData()
        if self.roads_check.isChecked() and self.seg_roads_combo.currentData():
            out["roads"] = self.seg_roads_combo.currentData()
        return out

    def prepare_sr_job(self, checkpoint: str, tag: str = "sr") -> Tuple[SuperResolveJob, InputSpec]:
        """Build a super-resolution job for the current input and ``checkpoint`` (main thread)."""
        spec = self.input_spec()
        entry = self.entry_for(checkpoint)
        if entry is not None and entry.task != "sr":
            raise Refused(f"{Path(checkpoint).name} is a {entry.target} segmentation network, "
                          "not a super-resolution model")
        extent = self.extent_for(spec) if self.extent_check.isChecked() else None
        model = re.sub(r"\W+", "_", (getattr(entry.card, "name", "") if entry else "") or Path(checkpoint).stem)
        stem = f"{Path(spec.paths[0]).stem}_{tag}_{model}" + ("_preview" if extent else "")
        out = unique_path(self.output_folder(spec.paths[0]), stem)
        job = SuperResolveJob(spec.paths, str(out), checkpoint, band=spec.band, extent=extent,
                              device=self.device(), trust=self.trust_check.isChecked(),
                              anchor=self.anchor_check.isChecked())
        return job, spec

    # ------------------------------------------------------------------ actions
    def super_resolve(self) -> Optional[CoreTask]:
        """Start a super-resolution of the chosen input with the chosen checkpoint."""
        checkpoint = self.checkpoint_combo.currentData()
        try:
            if not checkpoint:
                raise Refused("choose a checkpoint (or add one with '...')")
            job, spec = self.prepare_sr_job(checkpoint)
        except Refused as exc:
            notify(self.iface, "Super-resolve", str(exc), Qgis.MessageLevel.Warning)
            return None
        for w in spec.warnings:
            log(w, Qgis.MessageLevel.Warning)
        entry = self.entry_for(checkpoint)
        stretch = layer_stretch(spec.layers[0], spec.band_index)
        model_name = getattr(entry.card, "name", "") if entry else Path(checkpoint).stem
        scale = int(getattr(entry.card, "scale", 3) or 3) if entry else 3
        task = sr_task(job, f"Super-resolve {spec.name} ({model_name})")
        task.succeeded.connect(lambda res, s=spec, st=stretch, m=model_name, k=scale: self._sr_done(res, s, st, m, k))
        task.failed.connect(lambda exc: notify(self.iface, "Super-resolve",
                                               log_exception(exc, f"super-resolving {spec.name}"),
                                               Qgis.MessageLevel.Critical, 0))
        task.canceledByUser.connect(lambda: notify(self.iface, "Super-resolve", "cancelled; no layer was added"))
        return self.runner.start(task)

    def _sr_done(self, result: Any, spec: InputSpec, stretch: Any, model_name: str, scale: int) -> None:
        for m in result.messages:
            log(m)
        path = str(result.path)
        layer = QgsRasterLayer(path, f"{spec.name} SR x{scale} ({model_name})")
        if not layer.isValid():
            notify(self.iface, "Super-resolve", f"the output {path} could not be opened as a layer",
                   Qgis.MessageLevel.Critical)
            return
        apply_gray_stretch(layer, stretch, 1)
        group = group_for(spec.name)
        add_to_group(layer, group)
        self.last_output = layer
        self.seg_layer_combo.setLayer(layer)
        trust_note = self._add_trust_layer(result, group, f"{spec.name} trust map ({model_name})")
        notify(self.iface, "Super-resolve", f"added '{layer.name()}' ({result.seconds:.1f} s){trust_note}",
               Qgis.MessageLevel.Success)
        self.outputAdded.emit(layer)

    def _add_trust_layer(self, result: Any, group: QgsLayerTreeGroup, name: str) -> str:
        """The trust map as a hidden layer above the output (red = disagrees with S-2); a note for the message."""
        path = getattr(result, "trust_path", None)
        if not path:
            return ""
        summary = getattr(result, "trust", None)
        layer = QgsRasterLayer(str(path), name)
        if not layer.isValid():
            log(f"the trust map {path} could not be opened as a layer", Qgis.MessageLevel.Warning)
            return ""
        style_trust(layer, float(getattr(summary, "threshold", 0.02) or 0.02))
        add_to_group(layer, group, visible=False)  # optional: the analyst switches it on to check the output
        self.last_trust = layer
        if summary is None:
            return ""
        return (f"; trust map: mean disagreement {summary.mean_disagreement:.4f}, "
                f"{100 * summary.flagged_share:.1f} % of pixels above {summary.threshold:g}")

    def segment(self) -> Optional[CoreTask]:
        """Segment buildings and/or roads on the chosen raster."""
        layer = self.seg_layer_combo.currentLayer()
        try:
            path = layer_file(layer)
            checkpoints = self.seg_checkpoints()
            if not checkpoints:
                raise Refused("tick Buildings and/or Roads and choose their segmentation networks")
            folder = self.output_folder(path)
            stem = Path(path).stem + "_" + "_".join(checkpoints)
            prob = unique_path(folder, f"{stem}_probability")
            mask = unique_path(folder, f"{stem}_mask")
            vectors = unique_path(folder, f"{stem}_polygons", ".gpkg") if self.vectors_check.isChecked() else None
        except Refused as exc:
            notify(self.iface, "Segment", str(exc), Qgis.MessageLevel.Warning)
            return None
        job = SegmentJob(path, list(checkpoints.values()), str(prob), str(mask),
                         str(vectors) if vectors else None, band=max(1, self.seg_band_combo.currentBand()),
                         device=self.device())
        task = seg_task(job, f"Segment {' and '.join(checkpoints)} on {layer.name()}")
        source_id = layer.id()
        task.succeeded.connect(lambda res, lid=source_id, name=layer.name(): self._seg_done(res, lid, name))
        task.failed.connect(lambda exc: notify(self.iface, "Segment", log_exception(exc, f"segmenting {path}"),
                                               Qgis.MessageLevel.Critical, 0))
        task.canceledByUser.connect(lambda: notify(self.iface, "Segment", "cancelled; no layer was added"))
        return self.runner.start(task)

    def _seg_done(self, result: Any, source_id: str, source_name: str) -> None:
        for m in result.messages:
            log(m)
        root = QgsProject.instance().layerTreeRoot()
        node = root.findLayer(source_id)
        parent = node.parent() if node is not None else None
        group = parent if isinstance(parent, QgsLayerTreeGroup) and parent is not root else group_for(source_name)
        added: List[QgsMapLayer] = []
        for band, target in enumerate(result.targets, start=1):
            if result.mask_path:
                mask = QgsRasterLayer(str(result.mask_path), f"{target} mask ({source_name})")
                style_mask(mask, target, band)
                add_to_group(mask, group)
                added.append(mask)
            if result.prob_path:
                prob = QgsRasterLayer(str(result.prob_path), f"{target} probability ({source_name})")
                style_probability(prob, target, band)
                add_to_group(prob, group, visible=False)  # the mask is the answer; this is for a closer look
                added.append(prob)
            if result.vectors_path:
                vec = QgsVectorLayer(f"{result.vectors_path}|layername={target}", f"{target} polygons", "ogr")
                if vec.isValid():
                    style_vectors(vec, target)
                    add_to_group(vec, group)
                    added.append(vec)
        counts = ", ".join(f"{n} {t} polygons" for t, n in (result.polygons or {}).items())
        notify(self.iface, "Segment", f"added {len(added)} layer(s)" + (f"; {counts}" if counts else ""),
               Qgis.MessageLevel.Success)
        self.segmentationAdded.emit(added)

    def cancel_jobs(self) -> None:
        self.runner.cancel_all()

    # ------------------------------------------------------------------ state
    def _busy(self, busy: bool) -> None:
        self.cancel_button.setEnabled(busy)
        self.progress_bar.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.progress_label.setVisible(busy)
        if not busy:
            self.progress_bar.setValue(0)
            self.progress_label.setText("")
        for w in (self.segment_button, self.compare.compare_button):
            w.setEnabled(not busy)
        if not self._closing:
            self.update_check()

    def _progress(self, value: float, message: str) -> None:
        self.progress_bar.setValue(int(value))
        self.progress_label.setText(message)

    def shutdown(self) -> None:
        """Cancel running jobs, wait for them, and let go of QGIS signals (plugin unload)."""
        self._closing = True
        self.runner.shutdown()
        self.compare.shutdown()
        self.log_view.detach()
        project = QgsProject.instance()
        for signal in (project.layersAdded, project.layersRemoved):
            try:
                signal.disconnect(self._layers_changed)
            except (TypeError, RuntimeError):
                pass
