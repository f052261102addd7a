"""The training dialog's "Your area" tab: fine-tune on the analyst's own area from S-2 layers and OSM.

Why a separate module: the training dialog owns the child process, progress
bar, curves and log; this tab only turns layers into the headless command
``python -m core.cli area run ... --progress jsonl`` and hands it to
:meth:`TrainDialog.launch`, so the area run is followed, cancelled and resumed
exactly like any training run. Vector layers are exported into the output
folder first (temporary QuickOSM layers and filtered layers work).

The tab's values fill :class:`core.options.AreaOptions` (its defaults are the
widgets' starting values, nowhere else) and go to the command through
``to_cli_arguments``. It starts from the shipped 4-band task-driven RAMS and
UNet++ networks when the dock has remembered nothing else; a network taking
several bands reads them by name from the revisits, so the Band box is then
disabled and says which bands are read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from qgis.core import QgsMapLayerProxyModel, QgsProject, QgsRasterLayer
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...core.options import AreaOptions, parse_band, to_cli_arguments
from ..sources import Refused, export_vector, revisit_files

__all__ = ["AreaPanel", "cli_arguments", "DEFAULT_START"]

LAYER_ID = Qt.ItemDataRole.UserRole
#: The shipped network the tab starts from when the dock has remembered none (4 bands, task-driven).
DEFAULT_START = "rams_taskdriven.safetensors"


def cli_arguments(options: Any, keep: Tuple[str, ...] = ("epochs", "device", "tile_lr")) -> List[str]:
    """The flags that give ``options`` to the headless CLI (``core.options.to_cli_arguments``)."""
    return to_cli_arguments(options, keep)


class AreaPanel(QWidget):
    """Revisits, band, buildings/roads layers, checkpoints, epochs, the segmenter stage, output folder; Start
    launches the run."""

    def __init__(self, dialog: Any) -> None:
        super().__init__(dialog)
        self.dialog = dialog
        outer = QVBoxLayout(self)
        note = QLabel("Fine-tune a super-resolution network on <b>your own area</b> without any HR image: the "
                      "revisits are cut into tiles, the buildings and roads layers (e.g. from QuickOSM) are "
                      "rasterized onto the 3x grid, the eastern strip is held out, and the network learns with "
                      "consistency cL1 + building/road Dice. The log reports held-out Dice before and after.")
        note.setWordWrap(True)
        outer.addWidget(note)
        cols = QHBoxLayout()
        left, right = QFormLayout(), QFormLayout()
        self.revisits = QListWidget()
        self.revisits.setMinimumHeight(90)
        refresh = QPushButton("Refresh layers")
        refresh.clicked.connect(self.refresh_layers)
        left.addRow("Sentinel-2 revisits", self.revisits)
        left.addRow("", refresh)
        defaults = AreaOptions()
        self.band = QLineEdit(str(defaults.band))
        self.band.setToolTip("1-based band number or band name (e.g. B8) in every revisit")
        left.addRow("Band", self.band)
        self.buildings = QgsMapLayerComboBox()
        self.buildings.setFilters(QgsMapLayerProxyModel.Filter.PolygonLayer)
        self.roads = QgsMapLayerComboBox()
        self.roads.setFilters(QgsMapLayerProxyModel.Filter.LineLayer)
        left.addRow("Buildings (polygons)", self.buildings)
        left.addRow("Roads (lines)", self.roads)
        self.checkpoint = self._file("SR checkpoint to start from")
        self.seg_buildings = self._file("buildings segmentation network")
        self.seg_roads = self._file("roads segmentation network")
        right.addRow("Start from", self.checkpoint)
        right.addRow("Buildings network", self.seg_buildings)
        right.addRow("Roads network", self.seg_roads)
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 10000)
        self.epochs.setValue(defaults.epochs)
        right.addRow("Epochs", self.epochs)
        self.samples = QSpinBox()  # 0: the recipe's number (AreaOptions' None)
        self.samples.setRange(0, 10_000_000)
        self.samples.setSpecialValueText("the recipe's")
        self.samples.setValue(defaults.samples_per_epoch or 0)
        right.addRow("Patches per epoch", self.samples)
        self.tile = QSpinBox()
        self.tile.setRange(16, 1024)
        self.tile.setValue(defaults.tile_lr)
        right.addRow("Tile size (LR px)", self.tile)
        # the segmenter stage: the shipped building/road networks learn this area's OSM first
        self.finetune_segmenters = QCheckBox("Also fine-tune the building and road networks on these OSM layers")
        self.finetune_segmenters.setChecked(defaults.finetune_segmenters)
        self.finetune_segmenters.setToolTip(
            "First fine-tune the segmentation networks on the area (on the starting network's super-resolved "
            "revisits, against the OSM layers), then the SR network against them. The report gives each "
            "network's held-out Dice before and after; the new networks are saved in the output folder.")
        self.seg_epochs = QSpinBox()
        self.seg_epochs.setRange(1, 10000)
        self.seg_epochs.setValue(defaults.seg_epochs)
        self.seg_epochs.setEnabled(defaults.finetune_segmenters)
        self.finetune_segmenters.toggled.connect(self.seg_epochs.setEnabled)
        right.addRow("", self.finetune_segmenters)
        right.addRow("Segmenter epochs", self.seg_epochs)
        self.out_dir = QgsFileWidget()
        self.out_dir.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        right.addRow("Output folder", self.out_dir)
        cols.addLayout(left, 1)
        cols.addLayout(right, 1)
        outer.addLayout(cols)
        self.start_button = QPushButton("Fine-tune on this area")
        self.start_button.clicked.connect(self.start)
        outer.addWidget(self.start_button, 0, Qt.AlignmentFlag.AlignRight)
        self._fill_defaults()
        self.checkpoint.fileChanged.connect(lambda _p: self._checkpoint_changed())
        self._checkpoint_changed()
        self.refresh_layers()
        dialog.eventReceived.connect(self._event)

    @staticmethod
    def _file(what: str) -> QgsFileWidget:
        w = QgsFileWidget()
        w.setFilter("Checkpoints (*.safetensors)")
        w.lineEdit().setPlaceholderText(what)
        return w

    def _fill_defaults(self) -> None:
        """The checkpoints last chosen in the dock, else the shipped 4-band RAMS and UNet++ networks."""
        try:
            from ..dock.model_store import ModelStore

            store = ModelStore()
            for widget, role in ((self.checkpoint, "sr"), (self.seg_buildings, "seg_buildings"),
                                 (self.seg_roads, "seg_roads")):
                chosen = store.choice(role)
                if chosen and Path(chosen).is_file():
                    widget.setFilePath(chosen)
        except Exception:  # defaults are a convenience
            pass
        try:
            from ...core import api

            shipped = {self.checkpoint: api.shipped_models_dir() / DEFAULT_START,
                       self.seg_buildings: api.shipped_checkpoint("segmentation", "buildings"),
                       self.seg_roads: api.shipped_checkpoint("segmentation", "roads")}
            for widget, path in shipped.items():
                if not widget.filePath().strip() and path is not None and Path(path).is_file():
                    widget.setFilePath(str(path))
        except Exception:  # defaults are a convenience
            pass

    def network_bands(self) -> List[str]:
        """The bands the chosen SR network takes jointly (read by name), or [] for a one-band network."""
        path = self.checkpoint.filePath().strip()
        if not path or not Path(path).is_file():
            return []
        try:
            from ...core.models.card_peek import card_bands, peek_card

            card = peek_card(path)
            bands = card_bands(card) if card is not None else []
        except Exception:  # an unreadable file is refused by the run, with its reason
            return []
        return list(bands) if len(bands) > 1 else []

    def _checkpoint_changed(self) -> None:
        """A multi-band network reads its bands by name: the Band box does not apply, and says so."""
        bands = self.network_bands()
        self.band.setEnabled(not bands)
        self.band.setToolTip(f"the network takes {', '.join(bands)} jointly: read by name from the revisits' band "
                             "descriptions, in any order" if bands else
                             "1-based band number or band name (e.g. B8) in every revisit")

    def refresh_layers(self) -> None:
        """List the project's raster layers; keep what was ticked."""
        ticked = set(self.checked_ids())
        self.revisits.clear()
        for layer in QgsProject.instance().mapLayers().values():
            if isinstance(layer, QgsRasterLayer):
                item = QListWidgetItem(layer.name())
                item.setData(LAYER_ID, layer.id())
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if layer.id() in ticked else Qt.CheckState.Unchecked)
                self.revisits.addItem(item)

    def checked_ids(self) -> List[str]:
        return [self.revisits.item(i).data(LAYER_ID) for i in range(self.revisits.count())
                if self.revisits.item(i).checkState() == Qt.CheckState.Checked]

    def set_revisits(self, layers: List[Any]) -> None:
        """Tick exactly these raster layers (for scripts and tests)."""
        self.refresh_layers()
        wanted = {lyr.id() for lyr in layers}
        for i in range(self.revisits.count()):
            item = self.revisits.item(i)
            item.setCheckState(Qt.CheckState.Checked if item.data(LAYER_ID) in wanted else Qt.CheckState.Unchecked)

    def options(self) -> AreaOptions:
        """The tab's training knobs as ``AreaOptions`` (checked: a bad value is refused with a sentence)."""
        return AreaOptions(band=parse_band(self.band.text().strip() or "1"), tile_lr=self.tile.value(),
                           epochs=self.epochs.value(), samples_per_epoch=self.samples.value() or None,
                           device=self.dialog.device_combo.currentData() or "auto",
                           finetune_segmenters=self.finetune_segmenters.isChecked(),
                           seg_epochs=self.seg_epochs.value())

    def arguments(self) -> Tuple[List[str], Path]:
        """The headless command's arguments and the output folder; :class:`ValueError` says what is missing."""
        options = self.options()
        out = self.out_dir.filePath().strip()
        if not out:
            raise ValueError("choose an output folder for the area run")
        out_dir = Path(out)
        files: Dict[str, Optional[str]] = {"checkpoint": self.checkpoint.filePath().strip(),
                                           "buildings network": self.seg_buildings.filePath().strip(),
                                           "roads network": self.seg_roads.filePath().strip()}
        for what, path in files.items():
            if not path:
                raise ValueError(f"choose the {what} (.safetensors)")
            if not Path(path).is_file():
                raise ValueError(f"the {what} {path} does not exist")
        project = QgsProject.instance()
        try:
            revisits = revisit_files([project.mapLayer(i) for i in self.checked_ids()])
            buildings = export_vector(self.buildings.currentLayer(), "buildings", out_dir / "inputs" / "buildings.gpkg")
            roads = export_vector(self.roads.currentLayer(), "roads", out_dir / "inputs" / "roads.gpkg")
        except Refused as exc:
            raise ValueError(str(exc)) from None
        args = ["-m", "core.cli", "area", "run", "--revisits", *revisits,
                "--buildings", str(buildings), "--roads", str(roads), "--checkpoint", files["checkpoint"],
                "--seg-buildings", files["buildings network"], "--seg-roads", files["roads network"],
                "--out", str(out_dir), *cli_arguments(options), "--progress", "jsonl"]
        return args, out_dir

    def start(self) -> bool:
        if self.dialog.is_running():
            self.dialog.show_status("a run is already in progress; cancel it first", error=True)
            return False
        try:
            args, out_dir = self.arguments()
        except ValueError as exc:
            self.dialog.show_status(str(exc), error=True)
            return False
        return self.dialog.launch(args, out_dir / "train", fresh=False, what="area fine-tune")

    def _event(self, event: Dict[str, Any]) -> None:
        """The area run's final event: before/after on the held-out strip, in the log."""
        summary = event.get("summary") if event.get("event") == "done" else None
        if not summary:
            return
        for target, seg in (event.get("segmenters") or {}).items():  # the segmenter stage, when it ran
            b, a = (("n/a" if v is None else f"{v:.3f}") for v in (seg.get("before"), seg.get("after")))
            self.dialog.append_log(f"held-out segmenter {target} Dice: before {b}, after {a} ({seg.get('checkpoint')})")
        for key, values in summary.items():
            b, a = values.get("before"), values.get("after")
            fmt = "{:.2f}" if "cpsnr" in key else "{:.3f}"
            self.dialog.append_log(f"held-out {key}: before {fmt.format(b) if b is not None else 'n/a'}, "
                                    f"after {fmt.format(a) if a is not None else 'n/a'}")
        if event.get("report"):
            self.dialog.append_log(f"report: {event['report']}")
