"""The dock's small dialog for Sentinel-2 products: build a revisit stack, or open one product as 4 bands.

Why a dialog and not more rows in the tab: products are not layers (a
``.SAFE`` folder, its ``.zip``, an ``MTD_MSIL2A.xml``), so they are chosen with
file dialogs, and a stack needs a handful of choices (area, dates to keep,
cloud classes) that the Super-resolve tab does not need once the stack
exists. The dialog only gathers plain values: :meth:`ProductDialog.job`
returns a ``StackJob`` / ``ExportJob`` (``ui.tasks``) that the tab runs in a
QgsTask, or raises :class:`Refused` with the reason.

The area is the whole of the first input, the map view or a layer's extent,
converted into the first input's CRS (the grid the engine writes on). Dates
to keep default to the frames of the SR checkpoint chosen in the tab (RAMS
takes that many), the SCL classes to ``core.options.SCL_NODATA_DEFAULT``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

from qgis.core import QgsMapLayerProxyModel
from qgis.gui import QgsCheckableComboBox, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...core.jobs import unique_path
from ...core.options import SCL_NODATA_DEFAULT, ExportOptions, StackOptions, option_fields
from ..compat import layer_filters
from ..s2_products import FILE_FILTER, extent_in_crs, input_crs, product_label
from ..sources import Refused
from ..tasks import ExportJob, StackJob
from .fit import narrow_form, shrink_combos, wrapped_label
from .option_widgets import OptionWidgets

__all__ = ["ProductDialog", "STACK", "EXPORT", "WHOLE", "MAP_EXTENT", "LAYER_EXTENT"]

STACK, EXPORT = "stack", "export"
WHOLE, MAP_EXTENT, LAYER_EXTENT = 0, 1, 2
#: Scene classification classes, for the picker (names as ``core.io.s2_product.SCL_CLASSES`` words them).
SCL_NAMES = ("no data", "saturated or defective", "dark area or shadow", "cloud shadow", "vegetation",
             "not vegetated", "water", "unclassified", "cloud (medium probability)", "cloud (high probability)",
             "thin cirrus", "snow or ice")
#: ``StackOptions`` fields shown as generated widgets in the stack mode.
STACK_OPTIONS = ("min_clear", "baseline", "mix_levels")

Extent = Tuple[float, float, float, float]


class ProductDialog(QDialog):
    """Inputs, area, dates and cloud classes, output file; ``job()`` reads them into a job."""

    def __init__(self, mode: str, iface: Any, output_folder: Any, frames: Optional[int] = None,
                 parent: Optional[QWidget] = None) -> None:
        """``output_folder(near_path) -> Path``: where outputs go (the dock's choice); ``frames``: dates to keep."""
        super().__init__(parent)
        self.mode = mode
        self.iface = iface
        self.output_folder = output_folder
        self.setObjectName("productDialog")
        self.chosen_job: Optional[Union[StackJob, ExportJob]] = None  # set when OK is accepted
        self.setWindowTitle("Build a revisit stack" if mode == STACK else "Open a Sentinel-2 product")
        self._build(frames)
        self._inputs_changed()

    # ------------------------------------------------------------------ widgets
    def _build(self, frames: Optional[int]) -> None:
        layout = QVBoxLayout(self)
        layout.addWidget(wrapped_label(
            "Sentinel-2 products (.SAFE folder, .zip, MTD_MSI*.xml) or rasters of several dates; the first sets "
            "the 10 m grid. Clouds (SCL) become nodata, the clearest dates are kept." if self.mode == STACK else
            "A Sentinel-2 product (.SAFE folder, .zip or MTD_MSI*.xml): its 10 m bands B02, B03, B04, B08 "
            "become one GeoTIFF, clouds (SCL) as nodata, opened in true colour.", gray=True))
        self.input_list = QListWidget()
        self.input_list.setObjectName("productInputList")
        # tall enough for whole lines (it was 40 px: a scroll bar over a cut product name, issue 21); a long name is
        # shortened in its middle, where a product name repeats itself, and is whole in the tool tip
        lines = 5 if self.mode == STACK else 2
        self.input_list.setFixedHeight(lines * (self.fontMetrics().lineSpacing() + 6) + 2 * self.input_list.frameWidth()
                                       + 4)
        self.input_list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.input_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout.addWidget(self.input_list)
        buttons = QHBoxLayout()
        self.add_files_button = QPushButton("Add files…" if self.mode == STACK else "Choose file…")
        self.add_files_button.setObjectName("addProductFilesButton")
        self.add_files_button.setToolTip(".zip, MTD_MSIL2A.xml / MTD_MSIL1C.xml, or rasters (.tif, .jp2)")
        self.add_files_button.clicked.connect(self._browse_files)
        self.add_folder_button = QPushButton(".SAFE folder…")
        self.add_folder_button.setObjectName("addSafeFolderButton")
        self.add_folder_button.setToolTip("An unpacked product folder (name ending in .SAFE)")
        self.add_folder_button.clicked.connect(self._browse_folder)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setObjectName("removeProductButton")
        self.remove_button.clicked.connect(self._remove_selected)
        for b in (self.add_files_button, self.add_folder_button, self.remove_button):
            buttons.addWidget(b)
        layout.addLayout(buttons)

        form = narrow_form(QFormLayout())
        self.area_combo = QComboBox()
        self.area_combo.setObjectName("areaCombo")
        self.area_combo.addItems(["Whole first input", "Current map extent", "Extent of a layer"])
        form.addRow("Area", self.area_combo)
        self.area_layer = QgsMapLayerComboBox()
        self.area_layer.setObjectName("areaLayerCombo")
        self.area_layer.setFilters(layer_filters(QgsMapLayerProxyModel.Filter.HasGeometry,
                                                 QgsMapLayerProxyModel.Filter.RasterLayer))
        form.addRow("Layer", self.area_layer)
        self.frames_spin = QSpinBox()
        self.frames_spin.setObjectName("framesSpin")
        meta = {f.name: m for f, m in option_fields(StackOptions)}["frames"]
        self.frames_spin.setRange(int(meta.minimum or 1), int(meta.maximum or 64))
        self.frames_spin.setValue(int(frames or StackOptions().frames))
        self.frames_spin.setToolTip(meta.help[:1].upper() + meta.help[1:] + " (T, the frames a RAMS model takes)")
        if self.mode == STACK:
            form.addRow("Dates to keep (T)", self.frames_spin)
        self.scl_combo = QgsCheckableComboBox()
        self.scl_combo.setObjectName("sclCombo")
        for value, name in enumerate(SCL_NAMES):
            self.scl_combo.addItemWithCheckState(f"{value} {name}", Qt.CheckState.Checked if value in
                                                 SCL_NODATA_DEFAULT else Qt.CheckState.Unchecked, value)
        self.scl_combo.setToolTip("L2A scene classes that become nodata (clouds, shadows, snow...); L1C products "
                                  "have no scene classification")
        form.addRow("SCL classes masked", self.scl_combo)
        self.more = OptionWidgets(StackOptions, STACK_OPTIONS) if self.mode == STACK else None
        if self.more is not None:
            self.more.add_rows(form)
        self.out_file = QgsFileWidget()
        self.out_file.setObjectName("productOutputWidget")
        self.out_file.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.out_file.setFilter("GeoTIFF (*.tif *.TIF)")
        self.out_file.lineEdit().setPlaceholderText("in the output folder")
        form.addRow("Output", self.out_file)
        layout.addLayout(form)
        self.note_label = wrapped_label(gray=True)
        self.note_label.setObjectName("productNoteLabel")
        layout.addWidget(self.note_label)
        self.button_box = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.button_box.button(QDialogButtonBox.StandardButton.Ok).setText(
            "Build stack" if self.mode == STACK else "Open product")
        self.button_box.accepted.connect(self._accept)
        self.button_box.rejected.connect(self.reject)
        layout.addWidget(self.button_box)
        self.area_combo.currentIndexChanged.connect(self._area_changed)
        self.frames_spin.valueChanged.connect(lambda _v: self._inputs_changed())
        self._area_changed()
        shrink_combos(self)
        self.resize(420, self.sizeHint().height())

    def _area_changed(self, *_args: Any) -> None:
        self.area_layer.setEnabled(self.area_combo.currentIndex() == LAYER_EXTENT)

    # ------------------------------------------------------------------ inputs
    def inputs(self) -> List[str]:
        return [self.input_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.input_list.count())]

    def add_inputs(self, paths: Sequence[Union[str, Path]]) -> None:
        """Add products or rasters (each once); the export mode keeps only the last one."""
        for p in paths:
            path = str(p)
            if not path or path in self.inputs():
                continue
            if self.mode == EXPORT:
                self.input_list.clear()
            self.input_list.addItem(product_label(path))
            item = self.input_list.item(self.input_list.count() - 1)
            item.setData(Qt.ItemDataRole.UserRole, path)
            item.setToolTip(path)
        self._inputs_changed()

    def _browse_files(self) -> None:
        start = str(Path(self.inputs()[-1]).parent) if self.inputs() else str(Path.home())
        if self.mode == STACK:
            paths, _ = QFileDialog.getOpenFileNames(self, "Add Sentinel-2 products or rasters", start, FILE_FILTER)
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Choose a Sentinel-2 product", start, FILE_FILTER)
            paths = [path] if path else []
        self.add_inputs(paths)

    def _browse_folder(self) -> None:
        start = str(Path(self.inputs()[-1]).parent) if self.inputs() else str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Choose a .SAFE product folder", start)
        if folder:
            self.add_inputs([folder])

    def _remove_selected(self) -> None:
        for item in self.input_list.selectedItems():
            self.input_list.takeItem(self.input_list.row(item))
        self._inputs_changed()

    def _inputs_changed(self) -> None:
        n = self.input_list.count()
        if self.mode == STACK:
            self.note_label.setText(f"{n} input(s); the clearest {self.frames_spin.value()} date(s) are kept"
                                    if n else "add at least one product or raster")
        else:
            self.note_label.setText("" if n else "choose a product")
        self.button_box.button(QDialogButtonBox.StandardButton.Ok).setEnabled(n > 0)

    # ------------------------------------------------------------------ reading the choices
    def scl_classes(self) -> Tuple[int, ...]:
        return tuple(sorted(int(v) for v in self.scl_combo.checkedItemsData()))

    def extent(self, first: str) -> Optional[Extent]:
        """The chosen area in the first input's CRS (None: the whole input)."""
        choice = self.area_combo.currentIndex()
        if choice == WHOLE:
            return None
        crs = input_crs(first)
        if choice == MAP_EXTENT:
            canvas = self.iface.mapCanvas()
            rect_crs = canvas.mapSettings().destinationCrs()
            return extent_in_crs(canvas.extent(), rect_crs, crs)
        layer = self.area_layer.currentLayer()
        if layer is None:
            raise Refused("choose the layer whose extent is the area")
        return extent_in_crs(layer.extent(), layer.crs(), crs)

    def output_path(self, first: str) -> str:
        chosen = self.out_file.filePath().strip()
        if chosen:
            return chosen if chosen.lower().endswith((".tif", ".tiff")) else chosen + ".tif"
        stem = f"{product_label(first)}_stack" if self.mode == STACK else f"{product_label(first)}_10m"
        return str(unique_path(self.output_folder(first), stem))

    def job(self) -> Union[StackJob, ExportJob]:
        """The job for the choices made, or :class:`Refused` with the reason (main thread)."""
        inputs = self.inputs()
        if not inputs:
            raise Refused("add at least one Sentinel-2 product or raster" if self.mode == STACK else
                          "choose a Sentinel-2 product")
        extent = self.extent(inputs[0])
        out = self.output_path(inputs[0])
        if self.mode == EXPORT:
            return ExportJob(inputs[0], out, ExportOptions(scl_nodata=tuple(self.scl_classes()), extent=extent))
        try:
            options = StackOptions(frames=self.frames_spin.value(), scl_nodata=self.scl_classes(), extent=extent,
                                   **(self.more.values() if self.more is not None else {}))
        except ValueError as exc:  # core.jobs.InputError: one sentence naming the option
            raise Refused(str(exc)) from None
        return StackJob(inputs, out, options)

    def _accept(self) -> None:
        try:
            self.chosen_job = self.job()
        except Refused as exc:
            self.note_label.setText(f"✗ {exc}")
            self.note_label.setStyleSheet("color: #b42318")
            return
        self.accept()

