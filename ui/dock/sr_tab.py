"""The dock's Super-resolve tab: input layers, a checkpoint with its card, options, and the run.

Everything the engine needs is read here on the main thread into plain values
(paths, and one ``SuperResolveOptions`` built from the widgets) and handed to
a QgsTask (``ui.tasks``); the result layer is added when the task reports
back. The output folder and the device chosen here serve every tab.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

from qgis.core import Qgis, QgsMapLayerProxyModel, QgsProcessingUtils, QgsProject, QgsRasterLayer
from qgis.gui import QgsCollapsibleGroupBox, QgsFileWidget, QgsMapLayerComboBox, QgsRasterBandComboBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ...core.io.sentinel2 import band_at_start
from ...core.jobs import unique_path
from ...core.options import SuperResolveOptions
from ..log import log, log_exception, notify
from ..sources import Refused, layer_file
from ..styles import layer_band_names, layer_stretch
from ..tasks import CoreTask, SuperResolveJob, sr_task
from .fit import narrow_form, wrapped_label
from .input_checks import check_lines, run_checks
from .layers import (
    InputSpec,
    add_sr_layer,
    add_trust_class_layer,
    add_trust_layer,
    describe_grid,
    group_for,
    is_sr_output_layer,
    map_extent_in_grid,
    trust_note,
)
from .model_store import ModelEntry, card_html
from .option_widgets import OptionWidgets, tick_box
from .product_dialog import EXPORT, STACK
from .sr_products import ProductJobs

__all__ = ["SuperResolveTab", "SINGLE", "REVISITS", "DATES", "ANY_ARCH", "arch_filters", "DEVICES"]

SINGLE, REVISITS, DATES = 0, 1, 2
ANY_ARCH = ("Any architecture", None)


def arch_filters(entries: Sequence[ModelEntry]) -> List[Tuple[str, Optional[str]]]:
    """The architecture filter's choices: one per SR architecture among the listed checkpoints, from their cards.

    Why from the cards: the UI must not import the networks' code (torch) to
    learn their names, and a checkpoint of a new architecture shows up here
    without a list to keep in step.
    """
    kinds = {e.arch: "multi-image" if e.card.is_multi_image else "single image" for e in entries if e.task == "sr"}
    return [ANY_ARCH] + [(f"{arch.upper()} ({kind})", arch) for arch, kind in sorted(kinds.items())]
DEVICES = (("CPU", "cpu"), ("GPU (CUDA)", "cuda"))
#: ``SuperResolveOptions`` fields shown as generated widgets (the others have hand-made ones above them)
MORE_OPTIONS = ("all_bands",)
ADVANCED_OPTIONS = ("tile", "overlap", "batch", "force")
#: Tool tips of the "trust map" and "match brightness" tick boxes
TRUST_TIP = (
    "After super-resolving, degrade the output back to Sentinel-2 and compare it with every revisit: "
    "red where the output disagrees with what S-2 saw (invented or missed detail). Added as a hidden "
    "layer above the output; its second band is the spread of the revisits among themselves.")
ANCHOR_TIP = (
    "Shift each tile of the output to the mean brightness of its revisits. Networks trained with cL1 "
    "are blind to a constant offset and may come out too dark or too bright; untick to see the "
    "network's raw output.")


class SuperResolveTab(ProductJobs, QWidget):
    """Input, Model and Options boxes and the run button; ``dock`` is the :class:`SRDockWidget` around it."""

    def __init__(self, dock: Any) -> None:
        super().__init__()
        self.setObjectName("superResolveTab")
        self.dock = dock
        self.store = dock.store
        self._build()
        self.refresh_revisits()
        self._mode_changed()

    # ------------------------------------------------------------------ widgets
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.addWidget(self._input_box())
        layout.addWidget(self._model_box())
        layout.addWidget(self._options_box())
        self.run_button = QPushButton("Super-resolve layer")
        self.run_button.setObjectName("superResolveButton")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.super_resolve)
        layout.addWidget(self.run_button)
        layout.addStretch(1)
        self.mode_combo.currentIndexChanged.connect(self._mode_changed)
        self.layer_combo.layerChanged.connect(self._input_changed)
        self.revisit_list.itemChanged.connect(self._input_changed)
        self.band_combo.bandChanged.connect(lambda _b: self.update_check())
        self.arch_combo.currentIndexChanged.connect(lambda _i: self.fill_checkpoints())
        self.checkpoint_combo.currentIndexChanged.connect(self._checkpoint_changed)
        self.extent_check.toggled.connect(lambda _c: self.update_check())
        self.trust_check.toggled.connect(lambda c: self.store.set_value("trust_map", "true" if c else "false"))
        self.anchor_check.toggled.connect(lambda c: self.store.set_value("anchor", "true" if c else "false"))
        self.device_combo.currentIndexChanged.connect(
            lambda _i: self.store.set_value("device", self.device_combo.currentData()))
        self.out_dir.fileChanged.connect(lambda p: self.store.set_value("output_dir", p))
        self.more["all_bands"].toggled.connect(self._input_changed)
        self.advanced["force"].toggled.connect(self._input_changed)
        self.stack_button.clicked.connect(lambda: self.open_product_dialog(STACK))
        self.product_button.clicked.connect(lambda: self.open_product_dialog(EXPORT))

    def _input_box(self) -> QGroupBox:
        box = QGroupBox("Input")
        form = narrow_form(QFormLayout(box))
        self.mode_combo = QComboBox()
        self.mode_combo.setObjectName("inputModeCombo")
        for text, tip in (("One image (SISR)", "single-image super-resolution, e.g. HAT"),
                          ("Several revisits (MISR)", "multi-image super-resolution from revisits, e.g. RAMS"),
                          ("Bands are dates (MISR)", "one layer whose bands are revisits of one band")):
            self.mode_combo.addItem(text)
            self.mode_combo.setItemData(self.mode_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        form.addRow("Input", self.mode_combo)
        self.product_button = QPushButton("Open Sentinel-2 product…")
        self.product_button.setObjectName("openProductButton")
        self.product_button.setToolTip("A .SAFE folder, .zip or MTD_MSI*.xml -> one 4-band GeoTIFF (B02, B03, B04, "
                                       "B08; clouds as nodata), added in true colour and chosen as the input")
        form.addRow(self.product_button)
        self.stack_button = QPushButton("Build revisit stack…")
        self.stack_button.setObjectName("buildStackButton")
        self.stack_button.setToolTip("Several products or dated rasters -> one raster whose bands are dates (the "
                                     "clearest first), chosen as the input of a multi-image model (RAMS)")
        form.addRow(self.stack_button)
        self.layer_combo = QgsMapLayerComboBox()
        self.layer_combo.setObjectName("inputLayerCombo")
        self.layer_combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.layer_label = QLabel("Raster layer")
        form.addRow(self.layer_label, self.layer_combo)
        self.revisit_list = QListWidget()
        self.revisit_list.setObjectName("revisitList")
        self.revisit_list.setMaximumHeight(100)
        self.revisit_list.setToolTip("Tick the revisits of one place (the first ticked one sets the grid)")
        self.revisit_label = QLabel("Revisits")
        form.addRow(self.revisit_label, self.revisit_list)
        self.band_combo = QgsRasterBandComboBox()
        self.band_combo.setObjectName("inputBandCombo")
        self.band_label = QLabel("Band")
        # with 'All 10 m bands' the box would still say one band (B08) while all four are used (issue 21)
        self.bands_note = QLabel("all four 10 m bands: B02, B03, B04, B08")
        self.bands_note.setObjectName("inputBandsNote")
        self.bands_note.setWordWrap(True)
        row = QWidget()
        row_layout = QHBoxLayout(row)
        row_layout.setContentsMargins(0, 0, 0, 0)
        row_layout.addWidget(self.band_combo, 1)
        row_layout.addWidget(self.bands_note, 1)
        self.bands_note.hide()
        form.addRow(self.band_label, row)
        self.check_label = wrapped_label(rich=True)
        self.check_label.setObjectName("inputCheckLabel")
        form.addRow(self.check_label)
        return box

    def _model_box(self) -> QGroupBox:
        box = QGroupBox("Model")
        form = narrow_form(QFormLayout(box))
        self.arch_combo = QComboBox()
        self.arch_combo.setObjectName("archCombo")
        self.arch_combo.addItem(*ANY_ARCH)
        form.addRow("Architecture", self.arch_combo)
        row = QHBoxLayout()
        self.checkpoint_combo = QComboBox()
        self.checkpoint_combo.setObjectName("checkpointCombo")
        self.add_button = QToolButton()
        self.add_button.setObjectName("addCheckpointButton")
        self.add_button.setText("...")
        self.add_button.setToolTip("Add a checkpoint file (.safetensors)")
        self.add_button.clicked.connect(self._browse_checkpoint)
        row.addWidget(self.checkpoint_combo, 1)
        row.addWidget(self.add_button)
        form.addRow("Checkpoint", row)
        self.card_label = wrapped_label(rich=True)
        self.card_label.setObjectName("modelCardLabel")
        self.card_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow(self.card_label)
        return box

    def _options_box(self) -> QGroupBox:
        box = QGroupBox("Options")
        form = narrow_form(QFormLayout(box))
        self.extent_check = tick_box("Current map extent only", "extentCheck",
                                     "A fast preview: super-resolve only the part of the input the map shows")
        form.addRow(self.extent_check)
        self.trust_check = tick_box("Also write a trust map", "trustCheck", TRUST_TIP, self.store.flag("trust_map", False))
        form.addRow(self.trust_check)
        self.anchor_check = tick_box("Match brightness to the revisits", "anchorCheck", ANCHOR_TIP,
                                     self.store.flag("anchor", True))
        form.addRow(self.anchor_check)
        self.more = OptionWidgets(SuperResolveOptions, MORE_OPTIONS)
        self.more.add_rows(form)
        self.device_combo = QComboBox()
        self.device_combo.setObjectName("deviceCombo")
        for text, key in DEVICES:
            self.device_combo.addItem(text, key)
        self.device_combo.setCurrentIndex(max(0, self.device_combo.findData(self.store.value("device", "cpu"))))
        form.addRow("Run on", self.device_combo)
        self.out_dir = QgsFileWidget()
        self.out_dir.setObjectName("outputFolderWidget")
        self.out_dir.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.out_dir.setFilePath(str(self.store.value("output_dir", "") or ""))
        self.out_dir.lineEdit().setPlaceholderText("next to the input")
        self.out_dir.setToolTip("Where outputs go (every tab); empty: next to the input, or a temporary folder")
        form.addRow("Output folder", self.out_dir)
        advanced = QgsCollapsibleGroupBox("Advanced")
        advanced.setObjectName("srAdvancedBox")
        advanced.setCollapsed(True)
        self.advanced = OptionWidgets(SuperResolveOptions, ADVANCED_OPTIONS)
        self.advanced.add_rows(narrow_form(QFormLayout(advanced)))
        form.addRow(advanced)
        return box

    # ------------------------------------------------------------------ models
    def fill_checkpoints(self) -> None:
        """List the SR checkpoints of the chosen architecture; the remembered choice wins."""
        self._fill_arch_filters()
        arch = self.arch_combo.currentData()
        # The remembered choice first: add_checkpoint() sets it to the file just added, which must win
        # over what the combo showed before; otherwise it is the combo's own selection anyway.
        wanted = self.store.choice("sr") or self.checkpoint_combo.currentData()
        self.checkpoint_combo.blockSignals(True)
        self.checkpoint_combo.clear()
        for e in self.dock.models:
            if e.task == "sr" and (arch is None or e.arch == arch):
                self.checkpoint_combo.addItem(e.label, e.path)
                self.checkpoint_combo.setItemData(self.checkpoint_combo.count() - 1, e.path,
                                                  Qt.ItemDataRole.ToolTipRole)
        idx = self.checkpoint_combo.findData(wanted) if wanted else -1
        self.checkpoint_combo.setCurrentIndex(idx if idx >= 0 else (0 if self.checkpoint_combo.count() else -1))
        self.checkpoint_combo.blockSignals(False)
        self._checkpoint_changed()

    def _fill_arch_filters(self) -> None:
        """Offer the architectures of the listed checkpoints, keeping the current choice when it is still there."""
        current = self.arch_combo.currentData()
        self.arch_combo.blockSignals(True)
        self.arch_combo.clear()
        for text, key in arch_filters(self.dock.models):
            self.arch_combo.addItem(text, key)
        self.arch_combo.setCurrentIndex(max(0, self.arch_combo.findData(current)))
        self.arch_combo.blockSignals(False)

    def current_entry(self) -> Optional[ModelEntry]:
        return self.dock.entry_for(self.checkpoint_combo.currentData())

    def _checkpoint_changed(self, *_args: Any) -> None:
        entry = self.current_entry()
        self.card_label.setText(card_html(entry))
        self.card_label.setToolTip(entry.path if entry is not None else "")
        if entry is not None:
            self.store.set_choice("sr", entry.path)
            # 'All 10 m bands' follows the network chosen (a 4-band one needs them all; a one-band one reads
            # its own band); the analyst can still change it afterwards
            self.more["all_bands"].setChecked(len(entry.card.bands) == 4)
        self.update_check()

    def _browse_checkpoint(self) -> None:
        start = str(Path(self.checkpoint_combo.currentData() or Path.home()).parent)
        path, _ = QFileDialog.getOpenFileName(self, "Add a checkpoint", start, "Checkpoints (*.safetensors)")
        if path:
            self.dock.add_checkpoint(path)

    def select(self, path: str) -> None:
        """Show every architecture and select the SR checkpoint ``path`` (already listed)."""
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

    def refresh_revisits(self) -> None:
        """List the project's raster layers as revisits to tick (not SR outputs: issue 21); keep what was ticked."""
        checked = {it.data(Qt.ItemDataRole.UserRole) for it in self._revisit_items()
                   if it.checkState() == Qt.CheckState.Checked}
        self.revisit_list.blockSignals(True)
        self.revisit_list.clear()
        for layer in QgsProject.instance().mapLayers().values():
            if isinstance(layer, QgsRasterLayer) and not is_sr_output_layer(layer):
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
        self.refresh_revisits()
        self.revisit_list.blockSignals(True)
        for it in self._revisit_items():
            it.setCheckState(Qt.CheckState.Checked if it.data(Qt.ItemDataRole.UserRole) in ids
                             else Qt.CheckState.Unchecked)
        for pos, lid in enumerate(ids):  # keep the grid-setting layer first
            for row in range(self.revisit_list.count()):
                if self.revisit_list.item(row).data(Qt.ItemDataRole.UserRole) == lid:
                    self.revisit_list.insertItem(pos, self.revisit_list.takeItem(row))
                    break
        self.revisit_list.blockSignals(False)
        self._input_changed()

    def selected_layers(self) -> List[QgsRasterLayer]:
        if self.mode_combo.currentIndex() == REVISITS:
            project = QgsProject.instance()
            layers = [project.mapLayer(it.data(Qt.ItemDataRole.UserRole)) for it in self._revisit_items()
                      if it.checkState() == Qt.CheckState.Checked]
            return [lyr for lyr in layers if isinstance(lyr, QgsRasterLayer)]
        layer = self.layer_combo.currentLayer()
        return [layer] if isinstance(layer, QgsRasterLayer) else []

    def _show_bands_used(self) -> None:
        """The Band row: the band box for one band, the four band names when all four are used."""
        more = getattr(self, "more", None)
        all_bands = bool(more is not None and more.values().get("all_bands"))
        dates = self.mode_combo.currentIndex() == DATES
        self.band_combo.setVisible(not all_bands and not dates)
        self.bands_note.setVisible(all_bands and not dates)
        self.band_label.setVisible(not dates)
        self.band_label.setText("Bands" if all_bands else "Band")

    def _input_changed(self, *_args: Any) -> None:
        self._show_bands_used()
        layers = self.selected_layers()
        first = layers[0] if layers else None
        if self.band_combo.layer() is not first:
            band = self.band_combo.currentBand()
            self.band_combo.setLayer(first)
            named = self.card_band_index(first) if first is not None else None
            if named is not None:  # a layer naming its bands: the one the model was trained on
                self.band_combo.setBand(named)
            elif first is not None and 1 <= band <= first.bandCount():
                self.band_combo.setBand(band)
        self.update_check()

    def card_bands(self) -> List[str]:
        """The bands the chosen SR checkpoint was trained on (B8 when its card names none)."""
        entry = self.current_entry()
        return [str(b) for b in entry.card.bands] if entry else ["B8"]

    def card_band_index(self, layer: QgsRasterLayer) -> Optional[int]:
        """The band of ``layer`` named like the one band of the chosen checkpoint, or None."""
        wanted = [band_at_start(b) for b in self.card_bands()]
        if len(wanted) != 1 or wanted[0] is None:
            return None
        names = [band_at_start(n) for n in layer_band_names(layer)]
        return names.index(wanted[0]) + 1 if wanted[0] in names else None

    def dates_count(self, layer: QgsRasterLayer, band: Any) -> int:
        """How many dates 'bands are dates' reads: every band, the bands named ``band`` in a stack, or with
        'all 10 m bands' the dates of a stack (each holds the four bands)."""
        names = [band_at_start(n) for n in layer_band_names(layer)]
        if band != "all":
            return sum(1 for n in names if n == band)
        named = [n for n in names if n]
        if self.more.values().get("all_bands") and named:
            return max(named.count(n) for n in set(named))
        return layer.bandCount()

    def dates_band(self, layer: QgsRasterLayer) -> Any:
        """What 'bands are dates' reads: ``all`` bands, or in a stack naming its bands the dates of one band.

        A revisit stack holds every band of every date (``B08_2023-05-12``); a
        one-band model takes the dates of its own band (the engine selects them
        by that name), a 4-band model (or 'all 10 m bands') takes them all.
        """
        if self.more.values().get("all_bands"):
            return "all"
        named = [b for b in (band_at_start(n) for n in layer_band_names(layer)) if b]
        wanted = [band_at_start(b) for b in self.card_bands()]
        if not named:
            return "all"
        if len(wanted) == 1 and wanted[0] in named:
            return wanted[0]
        return named[0] if len(set(named)) == 1 else "all"

    def input_spec(self) -> InputSpec:
        """The input as plain values, or :class:`Refused` with the reason."""
        mode = self.mode_combo.currentIndex()
        layers = self.selected_layers()
        if not layers:
            raise Refused("tick the revisits to use" if mode == REVISITS else "choose a raster layer")
        paths = [layer_file(lyr) for lyr in layers]
        if mode == DATES:
            band: Any = self.dates_band(layers[0])
            band_index = self.card_band_index(layers[0]) or 1
            if layers[0].bandCount() < 2:
                raise Refused(f"'{layers[0].name()}' has one band; 'bands are dates' needs one band per date")
        else:
            band_index = max(1, self.band_combo.currentBand())
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
        refused = False
        if entry is not None:
            frames = entry.card.frames or 1
            if spec.mode == DATES and spec.band != "all":
                lines.append(f"<span style='color:gray'>reads the dates of {spec.band}, the model's band</span>")
            forced = bool(self.advanced.values().get("force"))
            all_bands = bool(self.more.values().get("all_bands"))
            report = run_checks(spec.paths, "all" if all_bands else spec.band, self.card_bands(), frames > 1,
                                cards=[entry.card])
            lines += check_lines(report, forced)
            refused = report.refused and not forced
            n_in = len(spec.layers) if spec.mode == REVISITS else (
                self.dates_count(spec.layers[0], spec.band) if spec.mode == DATES else 1)
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
        self.run_button.setEnabled(entry is not None and not self.dock.runner.busy() and not refused)

    def extent_for(self, spec: InputSpec) -> Tuple[float, float, float, float]:
        """The map view's extent in the grid the engine reads (the layer's CRS, or UTM for degrees)."""
        return map_extent_in_grid(self.dock.iface, spec.layers[0])

    def output_folder(self, near: str) -> Path:
        """The chosen output folder (made when missing), else the input's folder, else a temporary one."""
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

    def options(self, spec: InputSpec, extent: Optional[Tuple[float, float, float, float]]) -> SuperResolveOptions:
        """The widgets as one ``SuperResolveOptions`` (its own checks refuse a bad value with a sentence)."""
        more = self.more.values()
        # all four bands: the band option is left to the trust map, which then judges B08 (NIR)
        band = None if more.get("all_bands") else spec.band
        try:
            return SuperResolveOptions(band=band, extent=extent, device=self.device(),
                                       anchor=self.anchor_check.isChecked(), trust=self.trust_check.isChecked(),
                                       **more, **self.advanced.values())
        except ValueError as exc:  # core.jobs.InputError
            raise Refused(str(exc)) from None

    def prepare_sr_job(self, checkpoint: str, tag: str = "sr") -> Tuple[SuperResolveJob, InputSpec]:
        """Build a super-resolution job for the current input and ``checkpoint`` (main thread)."""
        spec = self.input_spec()
        entry = self.dock.entry_for(checkpoint)
        if entry is not None and entry.task != "sr":
            raise Refused(f"{Path(checkpoint).name} is a {entry.target} segmentation network, "
                          "not a super-resolution model")
        extent = self.extent_for(spec) if self.extent_check.isChecked() else None
        options = self.options(spec, extent)
        model = re.sub(r"\W+", "_", (entry.name if entry else "") or Path(checkpoint).stem)
        stem = f"{Path(spec.paths[0]).stem}_{tag}_{model}" + ("_preview" if extent else "")
        out = unique_path(self.output_folder(spec.paths[0]), stem)
        return SuperResolveJob(spec.paths, str(out), checkpoint, options), spec

    # ------------------------------------------------------------------ run
    def super_resolve(self) -> Optional[CoreTask]:
        """Start a super-resolution of the chosen input with the chosen checkpoint."""
        checkpoint = self.checkpoint_combo.currentData()
        try:
            if not checkpoint:
                raise Refused("choose a checkpoint (or add one with '...')")
            job, spec = self.prepare_sr_job(checkpoint)
        except Refused as exc:
            notify(self.dock.iface, "Super-resolve", str(exc), Qgis.MessageLevel.Warning)
            return None
        for w in spec.warnings:
            log(w, Qgis.MessageLevel.Warning)
        entry = self.dock.entry_for(checkpoint)
        stretch = layer_stretch(spec.layers[0], spec.band_index)
        model_name = entry.name if entry else Path(checkpoint).stem
        scale = entry.card.scale if entry else 3
        task = sr_task(job, f"Super-resolve {spec.name} ({model_name})")
        iface = self.dock.iface
        task.succeeded.connect(lambda res: self._sr_done(res, spec, stretch, model_name, scale))
        task.failed.connect(lambda exc: notify(iface, "Super-resolve", log_exception(exc, f"super-resolving {spec.name}"),
                                               Qgis.MessageLevel.Critical, 0))
        task.canceledByUser.connect(lambda: notify(iface, "Super-resolve", "cancelled; no layer was added"))
        return self.dock.runner.start(task)

    def _sr_done(self, result: Any, spec: InputSpec, stretch: Any, model_name: str, scale: int) -> None:
        for m in result.messages:
            log(m)
        group = group_for(spec.name)
        layer = add_sr_layer(result.path, f"{spec.name} SR x{scale} ({model_name})", stretch, group)
        if layer is None:
            notify(self.dock.iface, "Super-resolve", f"the output {result.path} could not be opened as a layer",
                   Qgis.MessageLevel.Critical)
            return
        note = ""
        trust_path = getattr(result, "trust_path", None)
        if trust_path:
            summary = getattr(result, "trust", None)
            trust = add_trust_layer(trust_path, float(getattr(summary, "threshold", 0.02) or 0.02), group,
                                    f"{spec.name} trust map ({model_name})")
            if trust is not None:
                self.dock.last_trust = trust
                note = trust_note(summary)
            class_path = getattr(summary, "class_path", None)
            if class_path and Path(class_path).is_file():
                self.dock.last_trust_classes = add_trust_class_layer(
                    str(class_path), group, f"{spec.name} trust classes ({model_name})")
        self.dock.output_ready(layer)
        notify(self.dock.iface, "Super-resolve", f"added '{layer.name()}' ({result.seconds:.1f} s){note}",
               Qgis.MessageLevel.Success)

    def choose_input(self, layer: QgsRasterLayer, dates: bool) -> None:
        """Make ``layer`` the input: one raster whose bands are dates (a stack) or one raster of one date."""
        self.mode_combo.setCurrentIndex(DATES if dates else SINGLE)
        self.layer_combo.setLayer(layer)
