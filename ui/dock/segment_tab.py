"""The dock's Segment tab: buildings and/or roads on an HR raster (by default the latest SR output).

The networks are UNet++ checkpoints listed by target; the job's options are one
``SegmentOptions`` built from the widgets (band, threshold, supported objects,
extent, tiling) plus the device and output folder chosen in the
Super-resolve tab. Masks, probabilities and polygons are added, styled, in the
source layer's group when the task reports back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from qgis.core import Qgis, QgsMapLayerProxyModel
from qgis.gui import QgsCollapsibleGroupBox, QgsMapLayerComboBox, QgsRasterBandComboBox
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...core.io.sentinel2 import band_at_start
from ...core.jobs import unique_path
from ...core.options import SegmentOptions
from ..log import log, log_exception, notify
from ..sources import Refused, layer_file
from ..styles import layer_band_names
from ..tasks import CoreTask, SegmentJob, seg_task
from .fit import narrow_form, wrapped_label
from .input_checks import check_lines, run_checks
from .layers import add_segmentation_layers, map_extent_in_grid
from .option_widgets import OptionWidgets, tick_box

__all__ = ["SegmentTab", "TARGETS"]

TARGETS = ("buildings", "roads")
MORE_OPTIONS = ("threshold", "supported_only", "mask_snow")
ADVANCED_OPTIONS = ("tile", "overlap", "batch", "precision")


class SegmentTab(QWidget):
    """Raster, networks, options and the run button; ``dock`` is the :class:`SRDockWidget` around it."""

    def __init__(self, dock: Any) -> None:
        super().__init__()
        self.setObjectName("segmentTab")
        self.dock = dock
        self.store = dock.store
        layout = QVBoxLayout(self)
        layout.addWidget(self._raster_box())
        layout.addWidget(self._network_box())
        layout.addWidget(self._options_box())
        self.segment_button = QPushButton("Segment buildings / roads")
        self.segment_button.setObjectName("segmentButton")
        self.segment_button.clicked.connect(self.segment)
        layout.addWidget(self.segment_button)
        layout.addStretch(1)
        for combo, role in ((self.seg_buildings_combo, "seg_buildings"), (self.seg_roads_combo, "seg_roads")):
            combo.currentIndexChanged.connect(lambda _i, c=combo, r=role: self.store.set_choice(r, c.currentData()))
            combo.currentIndexChanged.connect(self._changed)
        for box in (self.buildings_check, self.roads_check):
            box.toggled.connect(self._changed)
        # bound methods, not lambdas: Qt drops these connections with the tab (a layer removed after the
        # dock closed must not call into a deleted tab)
        self.seg_layer_combo.layerChanged.connect(self._changed)
        self.seg_band_combo.bandChanged.connect(self._changed)
        self.update_check()

    def _changed(self, *_args: Any) -> None:
        self.update_check()

    def _raster_box(self) -> QGroupBox:
        box = QGroupBox("Raster to segment")
        form = narrow_form(QFormLayout(box))
        self.seg_layer_combo = QgsMapLayerComboBox()
        self.seg_layer_combo.setObjectName("segmentLayerCombo")
        self.seg_layer_combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        form.addRow("Layer", self.seg_layer_combo)
        self.seg_band_combo = QgsRasterBandComboBox()
        self.seg_band_combo.setObjectName("segmentBandCombo")
        self.seg_layer_combo.layerChanged.connect(self.seg_band_combo.setLayer)
        self.seg_band_combo.setLayer(self.seg_layer_combo.currentLayer())
        self.seg_band_label = QLabel("Band")
        form.addRow(self.seg_band_label, self.seg_band_combo)
        form.addRow(wrapped_label("Defaults to the latest super-resolved layer; any HR raster works.", gray=True))
        self.seg_check_label = wrapped_label(rich=True)
        self.seg_check_label.setObjectName("segmentCheckLabel")
        form.addRow(self.seg_check_label)
        return box

    def _network_box(self) -> QGroupBox:
        box = QGroupBox("Networks")
        form = narrow_form(QFormLayout(box))
        self.buildings_check = tick_box("Buildings", "buildingsCheck", checked=True)
        self.seg_buildings_combo = QComboBox()
        self.seg_buildings_combo.setObjectName("buildingsNetworkCombo")
        form.addRow(self.buildings_check, self.seg_buildings_combo)
        self.roads_check = tick_box("Roads", "roadsCheck", checked=True)
        self.seg_roads_combo = QComboBox()
        self.seg_roads_combo.setObjectName("roadsNetworkCombo")
        form.addRow(self.roads_check, self.seg_roads_combo)
        return box

    def _options_box(self) -> QGroupBox:
        box = QGroupBox("Options")
        form = narrow_form(QFormLayout(box))
        self.vectors_check = tick_box("Also make polygon layers", "vectorsCheck",
                                      "Write the masks' objects as polygons into a GeoPackage (one layer per target)")
        form.addRow(self.vectors_check)
        self.extent_check = tick_box("Current map extent only", "segmentExtentCheck")
        form.addRow(self.extent_check)
        self.more = OptionWidgets(SegmentOptions, MORE_OPTIONS)
        self.more.add_rows(form)
        advanced = QgsCollapsibleGroupBox("Advanced")
        advanced.setObjectName("segmentAdvancedBox")
        advanced.setCollapsed(True)
        self.advanced = OptionWidgets(SegmentOptions, ADVANCED_OPTIONS)
        self.advanced.add_rows(narrow_form(QFormLayout(advanced)))
        form.addRow(advanced)
        return box

    # ------------------------------------------------------------------ models
    def fill_networks(self) -> None:
        """List the segmentation checkpoints per target; keep the current or remembered choice."""
        for combo, target in ((self.seg_buildings_combo, "buildings"), (self.seg_roads_combo, "roads")):
            wanted = combo.currentData() or self.store.choice(f"seg_{target}")
            combo.blockSignals(True)
            combo.clear()
            for e in self.dock.models:
                if e.task == "segmentation" and (e.target or target) == target:
                    combo.addItem(e.label, e.path)
            if combo.count() == 0:
                combo.addItem(f"no {target} network: add one with '...' in the Super-resolve tab", None)
            idx = combo.findData(wanted) if wanted else -1
            combo.setCurrentIndex(max(0, idx))
            combo.blockSignals(False)

    def select(self, target: str, path: str) -> None:
        combo = self.seg_buildings_combo if target == "buildings" else self.seg_roads_combo
        combo.setCurrentIndex(max(0, combo.findData(path)))

    def seg_checkpoints(self) -> Dict[str, str]:
        """Segmentation checkpoints ticked in this tab (target -> path)."""
        out: Dict[str, str] = {}
        if self.buildings_check.isChecked() and self.seg_buildings_combo.currentData():
            out["buildings"] = self.seg_buildings_combo.currentData()
        if self.roads_check.isChecked() and self.seg_roads_combo.currentData():
            out["roads"] = self.seg_roads_combo.currentData()
        return out

    def network_bands(self) -> List[str]:
        """The bands the ticked networks' cards name (their first network's; the engine refuses a mixed pair)."""
        for path in self.seg_checkpoints().values():
            entry = self.dock.entry_for(path)
            if entry is not None:
                return [str(b) for b in entry.card.bands]
        return ["B8"]

    def network_cards(self) -> List[Any]:
        """The ticked networks' model cards (the check line compares the input with what they were trained on)."""
        entries = [self.dock.entry_for(path) for path in self.seg_checkpoints().values()]
        return [e.card for e in entries if e is not None]

    def bands_by_name(self, layer: Any) -> Optional[List[str]]:
        """The networks' bands when ``layer`` names them all (the engine then reads them by name), else None."""
        if layer is None or layer.bandCount() < 2:
            return None
        wanted = [band_at_start(b) for b in self.network_bands()]
        names = {band_at_start(n) for n in layer_band_names(layer)}
        return [str(b) for b in wanted] if wanted and all(b in names for b in wanted) else None

    def update_check(self) -> None:
        """Before running: which bands are read, and the engine's checks on the raster (10 m? clouds?)."""
        layer = self.seg_layer_combo.currentLayer()
        by_name = self.bands_by_name(layer)
        self.seg_band_combo.setEnabled(by_name is None)
        self.seg_band_combo.setToolTip("" if by_name is None else
                                       f"the networks read {', '.join(by_name)} by name; no band to choose")
        try:
            path = layer_file(layer)
        except Refused as exc:
            self.seg_check_label.setText(f"<span style='color:#b42318'>&#10007; {exc}</span>")
            return
        lines = []
        if by_name is not None:
            lines.append(f"<span style='color:gray'>reads {', '.join(by_name)} by name, as the networks' cards "
                         "ask</span>")
        band = "all" if len(self.network_bands()) > 1 else max(1, self.seg_band_combo.currentBand())
        lines += check_lines(run_checks([path], band, task="segment", cards=self.network_cards()), can_force=False)
        self.seg_check_label.setText("<br>".join(lines))

    def options(self, layer: Any) -> SegmentOptions:
        """The widgets (and the dock's device) as one ``SegmentOptions``."""
        extent = map_extent_in_grid(self.dock.iface, layer) if self.extent_check.isChecked() else None
        try:
            return SegmentOptions(band=max(1, self.seg_band_combo.currentBand()), extent=extent,
                                  device=self.dock.device(), **self.more.values(), **self.advanced.values())
        except ValueError as exc:  # core.jobs.InputError
            raise Refused(str(exc)) from None

    # ------------------------------------------------------------------ run
    def segment(self) -> Optional[CoreTask]:
        """Segment buildings and/or roads on the chosen raster."""
        layer = self.seg_layer_combo.currentLayer()
        iface = self.dock.iface
        try:
            path = layer_file(layer)
            checkpoints = self.seg_checkpoints()
            if not checkpoints:
                raise Refused("tick Buildings and/or Roads and choose their segmentation networks")
            options = self.options(layer)
            folder = self.dock.output_folder(path)
            stem = Path(path).stem + "_" + "_".join(checkpoints) + ("_preview" if options.extent else "")
            prob = unique_path(folder, f"{stem}_probability")
            mask = unique_path(folder, f"{stem}_mask")
            vectors = unique_path(folder, f"{stem}_polygons", ".gpkg") if self.vectors_check.isChecked() else None
        except Refused as exc:
            notify(iface, "Segment", str(exc), Qgis.MessageLevel.Warning)
            return None
        job = SegmentJob(path, list(checkpoints.values()), str(mask), str(prob), str(vectors) if vectors else None,
                         options)
        task = seg_task(job, f"Segment {' and '.join(checkpoints)} on {layer.name()}")
        source_id, name = layer.id(), layer.name()
        task.succeeded.connect(lambda res: self._seg_done(res, source_id, name))
        task.failed.connect(lambda exc: notify(iface, "Segment", log_exception(exc, f"segmenting {path}"),
                                               Qgis.MessageLevel.Critical, 0))
        task.canceledByUser.connect(lambda: notify(iface, "Segment", "cancelled; no layer was added"))
        return self.dock.runner.start(task)

    def _seg_done(self, result: Any, source_id: str, source_name: str) -> None:
        for m in result.messages:
            log(m)
        added = add_segmentation_layers(result, source_id, source_name)
        counts = ", ".join(f"{n} {t} polygons" for t, n in (result.polygons or {}).items())
        notify(self.dock.iface, "Segment", f"added {len(added)} layer(s)" + (f"; {counts}" if counts else ""),
               Qgis.MessageLevel.Success)
        self.dock.segmentationAdded.emit(added)
