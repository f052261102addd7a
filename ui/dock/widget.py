"""The plugin's dock: the Super-resolve, Segment and Compare tabs, one progress bar with Cancel, one log.

It owns what the tabs share: the checkpoint list (``model_store``), the task
runner (one job at a time, Cancel for all), the progress line and the log. Each
tab is a page that scrolls vertically only, so the dock works at QGIS's
default width (about 360 px) without cutting anything off on the right.

The tabs' widgets stay reachable as attributes of the dock (``dock.run_button``,
``dock.mode_combo``, ...): scripts and tests written against the one-module
dock keep working.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from qgis.core import Qgis, QgsProject, QgsRasterLayer
from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ...core import api
from ..log import LogView, log, log_exception, notify
from ..tasks import SuperResolveJob, TaskRunner
from .compare_tab import ComparePanel
from .fit import scroll_page, shrink_combos, wrapped_label
from .layers import InputSpec
from .model_listing import CheckpointLister
from .model_store import ModelEntry, ModelStore
from .segment_tab import SegmentTab
from .sr_tab import SuperResolveTab

__all__ = ["SRDockWidget"]

#: Attributes of the tabs that the dock exposes as its own (names of the one-module dock).
SR_ATTRIBUTES = ("mode_combo", "layer_combo", "layer_label", "revisit_list", "revisit_label", "band_combo",
                 "band_label", "check_label", "arch_combo", "checkpoint_combo", "add_button", "card_label",
                 "extent_check", "trust_check", "anchor_check", "device_combo", "out_dir", "run_button",
                 "set_revisits", "selected_layers", "input_spec", "update_check", "extent_for", "super_resolve",
                 "current_entry", "stack_button", "product_button", "product_dialog", "run_product_job")
SEG_ATTRIBUTES = ("seg_layer_combo", "seg_band_combo", "buildings_check", "roads_check", "seg_buildings_combo",
                  "seg_roads_combo", "vectors_check", "segment_button", "segment", "seg_check_label")


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
        self.lister = CheckpointLister(self)
        self.lister.listed.connect(self._models_listed)
        self.runner = TaskRunner(self)
        self.models: List[ModelEntry] = []
        self.last_output: Optional[QgsRasterLayer] = None
        self.last_trust: Optional[QgsRasterLayer] = None
        self.last_trust_classes: Optional[QgsRasterLayer] = None
        self._closing = False
        self._build()
        self.refresh_models()
        project = QgsProject.instance()
        project.layersAdded.connect(self._layers_changed)
        project.layersRemoved.connect(self._layers_changed)
        self.runner.busyChanged.connect(self._busy)
        self.runner.progressChanged.connect(self._progress)

    def __getattr__(self, name: str) -> Any:
        """``dock.<widget>`` for the tabs' widgets (see ``SR_ATTRIBUTES`` / ``SEG_ATTRIBUTES``)."""
        tab = "sr" if name in SR_ATTRIBUTES else "seg" if name in SEG_ATTRIBUTES else None
        if tab is not None and tab in self.__dict__:
            return getattr(self.__dict__[tab], name)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    # ------------------------------------------------------------------ widgets
    def _build(self) -> None:
        body = QWidget()
        body.setObjectName("S2TaskDrivenSRDockBody")
        outer = QVBoxLayout(body)
        outer.setContentsMargins(4, 4, 4, 4)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("S2TaskDrivenSRTabs")
        self.tabs.setUsesScrollButtons(True)
        self.sr = SuperResolveTab(self)
        self.seg = SegmentTab(self)
        self.compare = ComparePanel(self.iface, self.runner, self)
        for page, title in ((self.sr, "Super-resolve"), (self.seg, "Segment"), (self.compare, "Compare")):
            self.tabs.addTab(scroll_page(page), title)
        for combo, role in ((self.compare.baseline_combo, "compare_baseline"),
                            (self.compare.taskdriven_combo, "compare_taskdriven")):
            combo.activated.connect(lambda _i, c=combo, r=role: self.store.set_choice(r, c.currentData()))
        outer.addWidget(self.tabs, 3)

        status = QHBoxLayout()
        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("progressBar")
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setToolTip("Stop the running job; nothing half-made is kept")
        self.cancel_button.clicked.connect(self.cancel_jobs)
        status.addWidget(self.progress_bar, 1)
        status.addWidget(self.cancel_button)
        outer.addLayout(status)
        self.progress_label = wrapped_label(gray=True)
        self.progress_label.setObjectName("progressLabel")
        outer.addWidget(self.progress_label)
        self._busy(False)

        log_box = QGroupBox("Log")
        lb = QVBoxLayout(log_box)
        lb.setContentsMargins(2, 2, 2, 2)
        self.log_view = LogView()
        self.log_view.setObjectName("logView")
        self.log_view.setMinimumHeight(70)
        lb.addWidget(self.log_view)
        outer.addWidget(log_box, 1)
        shrink_combos(body)
        self.setWidget(body)

    # ------------------------------------------------------------------ what the tabs share
    def entry_for(self, path: Optional[str]) -> Optional[ModelEntry]:
        for e in self.models:
            if path and e.path == path:
                return e
        return None

    def device(self) -> str:
        """The device chosen in the Super-resolve tab (every tab runs on it)."""
        return self.sr.device()

    def output_folder(self, near: str) -> Path:
        """The output folder chosen in the Super-resolve tab (every tab writes there)."""
        return self.sr.output_folder(near)

    def seg_checkpoints(self) -> Dict[str, str]:
        """Segmentation checkpoints ticked in the Segment tab (target -> path)."""
        return self.seg.seg_checkpoints()

    def prepare_sr_job(self, checkpoint: str, tag: str = "sr") -> Tuple[SuperResolveJob, InputSpec]:
        """A super-resolution job for the Super-resolve tab's input and ``checkpoint`` (the comparison's runs)."""
        return self.sr.prepare_sr_job(checkpoint, tag)

    def output_ready(self, layer: QgsRasterLayer) -> None:
        """A super-resolved layer was added: it is the one the Segment tab offers next."""
        self.last_output = layer
        self.seg.seg_layer_combo.setLayer(layer)
        self.outputAdded.emit(layer)

    # ------------------------------------------------------------------ models
    def refresh_models(self) -> None:
        """Re-read the shipped and added checkpoints (cards only; weights load when a job runs).

        The first listing of a QGIS session imports PyTorch, so it runs in a worker thread
        (:class:`.model_listing.CheckpointLister`) and the combos fill when it lands; until then they stay
        as they were, so no remembered choice is overwritten by an empty list."""
        try:
            entries = self.lister.list(self.store.extra_paths())
        except Exception as exc:
            entries = []
            notify(self.iface, "Models", log_exception(exc, "listing checkpoints"), Qgis.MessageLevel.Warning)
        if entries is None:
            self.progress_label.setText("Reading the checkpoints' model cards (the first time loads PyTorch)…")
            return
        self._show_models(entries)

    def _models_listed(self, entries: List[ModelEntry], error: Optional[str]) -> None:
        """The worker's listing landed (UI thread)."""
        if self._closing:
            return
        if error:
            notify(self.iface, "Models", f"listing checkpoints failed: {error}", Qgis.MessageLevel.Warning)
        if self.progress_label.text().startswith("Reading the checkpoints'"):
            self.progress_label.setText("")
        self._show_models(entries)
        if self.lister.take_again():
            self.refresh_models()

    def _show_models(self, entries: List[ModelEntry]) -> None:
        self.models = entries
        self.sr.fill_checkpoints()
        self.seg.fill_networks()
        sr = [e for e in self.models if e.task == "sr"]
        self.compare.set_models(sr, self.store.choice("compare_baseline"), self.store.choice("compare_taskdriven"),
                                focus=self.sr.current_entry())

    def add_checkpoint(self, path: str) -> Optional[ModelEntry]:
        """Offer ``path`` from now on (this session and the next ones) and select it."""
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
            if self.sr.arch_combo.currentData() not in (None, entry.arch):
                self.sr.arch_combo.setCurrentIndex(0)
        else:
            self.store.set_choice(f"seg_{entry.target}", path)
        self.refresh_models()
        if entry.task == "segmentation":
            self.seg.select(str(entry.target), path)
        log(f"checkpoint added: {path}")
        return self.entry_for(path)

    def select_checkpoint(self, path: str) -> None:
        """Select an SR checkpoint already listed (adds it when it is not)."""
        path = str(Path(path).resolve())
        if self.entry_for(path) is None:
            self.add_checkpoint(path)
        self.sr.select(path)

    # ------------------------------------------------------------------ jobs
    def cancel_jobs(self) -> None:
        self.runner.cancel_all()

    def _layers_changed(self, *_args: Any) -> None:
        if self._closing:
            return
        self.sr.refresh_revisits()
        self.sr.update_check()
        self.seg.update_check()

    def _busy(self, busy: bool) -> None:
        self.cancel_button.setEnabled(busy)
        self.progress_bar.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.progress_label.setVisible(busy)
        if not busy:
            self.progress_bar.setValue(0)
            self.progress_label.setText("")
        for w in (self.seg.segment_button, self.compare.compare_button):
            w.setEnabled(not busy)
        if not self._closing:
            self.sr.update_check()

    def _progress(self, value: float, message: str) -> None:
        self.progress_bar.setValue(int(value))
        self.progress_label.setText(message)

    def shutdown(self) -> None:
        """Cancel running jobs, wait for them, and let go of QGIS signals (plugin unload)."""
        self._closing = True
        self.lister.wait()
        self.runner.shutdown()
        self.compare.shutdown()
        self.log_view.detach()
        project = QgsProject.instance()
        for signal in (project.layersAdded, project.layersRemoved):
            try:
                signal.disconnect(self._layers_changed)
            except (TypeError, RuntimeError):
                pass
