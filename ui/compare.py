"""Baseline vs task-driven: both outputs side by side, one stretch, synced views, a metric table.

Two ways in: run two checkpoints on the dock's input (both super-resolutions and
the metrics run in one QgsTask), or pick two SR layers that already exist. The
outputs land in one layer group with the *same* stretch (the input's), the
baseline in the main map and the task-driven output in a second map view that
follows the main one. When a reference HR raster and/or building and road masks
(rasters, or vector layers such as OSM buildings / roads) are given, a table
shows cPSNR, cSSIM and building / road Dice for both.

:func:`compare_outputs` is the Qt-free part (it reads rasters and calls core's
metrics and segmentation); the rest is the panel shown in the dock's Compare tab.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from qgis.core import (
    QgsLayerTreeLayer,
    QgsMapLayerProxyModel,
    QgsMapThemeCollection,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.gui import QgsDockWidget, QgsMapCanvas, QgsMapLayerComboBox
from qgis.PyQt.QtCore import QObject, Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .log import log, log_exception, notify
from .styles import apply_gray_stretch, layer_stretch
from .tasks import (
    CancelToken,
    CoreTask,
    Progress,
    Refused,
    SuperResolveJob,
    TaskRunner,
    layer_file,
    sub_progress,
)

BASELINE = "Baseline"
TASK_DRIVEN = "Task-driven"
THEME = "S2 SR: task-driven"
METRIC_ROWS = (
    ("cpsnr", "cPSNR (dB)", True),
    ("cssim", "cSSIM", True),
    ("buildings_dice", "Building Dice", True),
    ("roads_dice", "Road Dice", True),
    ("trust_mean", "Trust: mean disagreement", False),
    ("trust_flagged", "Trust: % pixels flagged", False),
)


# --------------------------------------------------------------------------- Qt-free computation


@dataclass
class MaskSource:
    """A building or road mask: a raster (1 = target) or a vector layer rasterized on the SR grid."""

    path: str
    kind: str = "raster"  # "raster" | "vector"
    layer: Optional[str] = None  # layer name inside a multi-layer vector file
    band: int = 1


@dataclass
class CompareResult:
    outputs: Dict[str, str]
    metrics: Dict[str, Dict[str, Optional[float]]]
    messages: List[str] = field(default_factory=list)
    notes: Dict[str, str] = field(default_factory=dict)  # metric -> why it is missing
    trust_paths: Dict[str, str] = field(default_factory=dict)  # label -> trust map kept beside the output


def _read_sr(path: str):
    """SR band 1 as reflectance [H, W] float32, its valid mask and grid."""
    import numpy as np

    from ..core.io.radiometry import detect_radiometry
    from ..core.io.rasters import open_raster

    with open_raster(path) as ds:
        data = ds.read(1, masked=True)
        valid = ~np.ma.getmaskarray(data) & np.isfinite(data.filled(0))
        values = data.filled(0).astype("float32")
        sample = values[valid][:: max(1, int(valid.sum()) // 100000 or 1)]
        rad = detect_radiometry(ds, 1, sample, ds.dtypes[0])
        grid = (ds.crs, ds.transform, ds.height, ds.width)
    return np.where(valid, rad.to_reflectance(values), 0.0).astype("float32"), valid, grid, rad.source


def _read_on_grid(path: str, band: int, grid, resampling: str):
    """Band ``band`` of ``path`` on ``grid`` (warped when the grids differ) and its valid mask."""
    import numpy as np
    from rasterio.warp import Resampling, reproject

    from ..core.io.radiometry import detect_radiometry
    from ..core.io.rasters import open_raster
    from ..core.jobs import InputError

    crs, transform, height, width = grid
    with open_raster(path) as ds:
        if band < 1 or band > ds.count:
            raise InputError(f"{Path(path).name}: band {band} does not exist; the raster has {ds.count} band(s)")
        same = (ds.crs == crs and ds.width == width and ds.height == height
                and ds.transform.almost_equals(transform, precision=1e-6 * max(1.0, abs(transform.a))))
        warped = not same
        if same:
            data = ds.read(band, masked=True)
            valid = ~np.ma.getmaskarray(data) & np.isfinite(data.filled(0))
            values = data.filled(0).astype("float32")
        else:
            nodata = ds.nodatavals[band - 1]
            src = ds.read(band).astype("float32")
            src_valid = np.isfinite(src) if nodata is None or (isinstance(nodata, float) and math.isnan(nodata)) \
                else (src != nodata) & np.isfinite(src)
            src = np.where(src_valid, src, np.nan).astype("float32")
            values = np.full((height, width), np.nan, dtype="float32")
            reproject(src, values, src_transform=ds.transform, src_crs=ds.crs, dst_transform=transform, dst_crs=crs,
                      src_nodata=np.nan, dst_nodata=np.nan,
                      resampling=Resampling.bilinear if resampling == "bilinear" else Resampling.nearest)
            valid = np.isfinite(values)
            values = np.where(valid, values, 0.0).astype("float32")
        sample = values[valid][:: max(1, int(valid.sum()) // 100000 or 1)]
        rad = detect_radiometry(ds, band, sample, ds.dtypes[band - 1])
    return values, valid, rad, warped


def _mask_on_grid(source: MaskSource, target: str, grid):
    """(mask bool, valid bool) of a building / road mask on the SR grid."""
    import numpy as np

    if source.kind == "vector":
        from ..core.data.vectors import rasterize_vectors

        crs, transform, height, width = grid
        mask = rasterize_vectors(source.path, transform, (height, width), crs.to_wkt(), kind=target,
                                 layer=source.layer)
        return mask.astype(bool), np.ones((height, width), dtype=bool)
    values, valid, _rad, _warped = _read_on_grid(source.path, source.band, grid, "nearest")
    return (values > 0.5) & valid, valid


def _trust_row(path: str, inputs: Optional[Tuple[List[str], Any]], work: Path, index: int,
               progress: Progress, cancel: Optional[CancelToken]) -> Tuple[Any, bool]:
    """The trust summary of one SR output: (summary, whether its map was written beside the output).

    An up-to-date ``<sr>_trust.tif`` (e.g. from the dock's "Also write a trust
    map") is read, not recomputed. With ``inputs`` (this comparison just made
    the output from them) the map is written beside the output, where the dock
    puts it; without them the inputs recorded in the output's metadata are
    used and the map goes to a temporary folder (an existing layer's folder is
    not written to).
    """
    from ..core import api
    from ..core.jobs import trust_path_for

    beside = trust_path_for(path)
    if beside.is_file() and beside.stat().st_mtime >= Path(path).stat().st_mtime:
        summary = api.trust_summary(beside)
        if summary is not None and Path(summary.sr_path).resolve() == Path(path).resolve():
            return summary, False
    if inputs is not None:
        summary = api.trust_map(path, inputs[0], band=inputs[1], out_path=beside, progress=progress, cancel=cancel)
        return summary, True
    return api.trust_map(path, None, out_path=work / f"trust_{index}.tif", progress=progress, cancel=cancel), False


def compare_outputs(
    outputs: Dict[str, str],
    reference: Optional[str] = None,
    reference_band: int = 1,
    masks: Optional[Dict[str, MaskSource]] = None,
    seg_checkpoints: Optional[Dict[str, str]] = None,
    device: str = "cpu",
    border: int = 3,
    progress: Optional[Progress] = None,
    cancel: Optional[CancelToken] = None,
    trust_inputs: Optional[Dict[str, Tuple[List[str], Any]]] = None,
) -> CompareResult:
    """Metrics of several SR rasters of the same area against a reference and masks, and their trust maps.

    ``outputs``: label -> SR GeoTIFF (band 1). ``reference``: the HR raster
    (warped onto each output's grid when the grids differ, bilinear). ``masks``:
    target ("buildings" / "roads") -> mask raster or vector layer.
    ``seg_checkpoints``: target -> segmentation checkpoint that segments each SR
    output; Dice compares its mask (prob > 0.5) with the given mask, counted
    over the whole raster. Rasters are read whole: compare a preview extent,
    not a full Sentinel-2 tile. Values are None where they could not be
    computed, with the reason in ``notes``. The trust rows (``core.trust``:
    mean disagreement with the LR revisits and the share of pixels above its
    threshold) need no reference: ``trust_inputs`` (label -> (LR inputs, band))
    names the revisits, else those recorded in each output's metadata are used.
    """
    import numpy as np

    from ..core import api
    from ..core.evaluation.metrics import SegCounts, cpsnr_cssim

    masks = dict(masks or {})
    seg_checkpoints = {k: v for k, v in (seg_checkpoints or {}).items() if v}
    say = progress or (lambda f, m: None)
    result = CompareResult(outputs=dict(outputs), metrics={label: {} for label in outputs})
    for target in ("buildings", "roads"):
        key = f"{target}_dice"
        if target in masks and target not in seg_checkpoints:
            result.notes[key] = f"no {target} segmentation network chosen"
        elif target in seg_checkpoints and target not in masks:
            result.notes[key] = f"no {target} mask or vector layer given"
    if reference is None:
        result.notes["cpsnr"] = result.notes["cssim"] = "no reference HR layer given"
    dice_targets = [t for t in ("buildings", "roads") if t in masks and t in seg_checkpoints]
    work = Path(tempfile.mkdtemp(prefix="s2sr_compare_"))
    try:
        n = max(1, len(outputs))
        for i, (label, path) in enumerate(outputs.items()):
            if cancel is not None and cancel.cancelled:
                from ..core.jobs import Cancelled

                raise Cancelled("comparison cancelled")
            step = sub_progress(say, i / n, (i + 1) / n, f"{label}: ")
            sr, sr_valid, grid, sr_units = _read_sr(path)
            row = result.metrics[label]
            if reference is not None:
                step(0.05, "reading the reference")
                hr, hr_valid, rad, warped = _read_on_grid(reference, reference_band, grid, "bilinear")
                if warped:
                    result.messages.append(f"{Path(reference).name} was warped onto the grid of {Path(path).name}")
                hr = rad.to_reflectance(hr)
                valid = sr_valid & hr_valid
                if valid.sum() < 16:
                    result.notes["cpsnr"] = result.notes["cssim"] = (
                        f"the reference {Path(reference).name} does not overlap {Path(path).name}")
                    row["cpsnr"] = row["cssim"] = None
                else:
                    scores = cpsnr_cssim(sr, hr, valid, border=border)
                    row["cpsnr"], row["cssim"] = float(scores.cpsnr), float(scores.cssim)
            if dice_targets:
                step(0.3, "segmenting")
                prob_path = work / f"prob_{i}.tif"
                seg = api.segment(path, [seg_checkpoints[t] for t in dice_targets], out_prob=str(prob_path),
                                  device=device, cancel=cancel,
                                  progress=sub_progress(step, 0.3, 0.9))
                import rasterio

                with rasterio.open(prob_path) as ds:
                    probs = ds.read().astype("float32")
                for b, target in enumerate(seg.targets):
                    mask, mask_valid = _mask_on_grid(masks[target], target, grid)
                    prob = probs[b]
                    valid = sr_valid & mask_valid & np.isfinite(prob)
                    counts = SegCounts()
                    counts.update(np.nan_to_num(prob), mask, valid)
                    row[f"{target}_dice"] = float(counts.dice)
            step(0.92, "trust map")
            try:
                summary, kept = _trust_row(path, (trust_inputs or {}).get(label), work, i,
                                           sub_progress(step, 0.92, 1.0, "trust map: "), cancel)
            except (ValueError, OSError) as exc:  # InputError / OutputError: worded for the analyst
                result.notes["trust_mean"] = result.notes["trust_flagged"] = f"no trust map: {exc}"
                row["trust_mean"] = row["trust_flagged"] = None
            else:
                row["trust_mean"], row["trust_flagged"] = summary.mean_disagreement, summary.flagged_share
                if kept:
                    result.trust_paths[label] = str(summary.path)
            step(1.0, "done")
            log(f"{label}: {Path(path).name} ({sr_units})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


@dataclass
class CompareJob:
    """Optionally super-resolve with both checkpoints, then compute the metrics (one task)."""

    runs: Dict[str, SuperResolveJob]  # label -> SR run to do first (empty: outputs exist)
    outputs: Dict[str, str]  # label -> SR raster (existing, or the runs' out_path)
    reference: Optional[str] = None
    reference_band: int = 1
    masks: Dict[str, MaskSource] = field(default_factory=dict)
    seg_checkpoints: Dict[str, str] = field(default_factory=dict)
    device: str = "cpu"
    created: List[Path] = field(default_factory=list)

    def __call__(self, progress: Progress, cancel: CancelToken) -> CompareResult:
        n_runs = len(self.runs)
        span = 0.7 if n_runs else 0.0
        messages: List[str] = []
        for i, (label, run) in enumerate(self.runs.items()):
            step = sub_progress(progress, span * i / n_runs, span * (i + 1) / n_runs, f"{label}: ")
            res = run(step, cancel)
            self.created.append(Path(run.out_path))
            messages.extend(f"{label}: {m}" for m in res.messages)
        # always: the trust rows need no reference
        trust_inputs = {label: (list(run.inputs), run.band) for label, run in self.runs.items()}
        result = compare_outputs(self.outputs, self.reference, self.reference_band, self.masks,
                                 self.seg_checkpoints, self.device,
                                 progress=sub_progress(progress, span, 1.0), cancel=cancel,
                                 trust_inputs=trust_inputs)
        self.created.extend(Path(p) for p in result.trust_paths.values())
        result.messages[:0] = messages
        return result


# --------------------------------------------------------------------------- the second, synced map view


class SyncedView(QObject):
    """A second map view whose extent follows the main canvas (and the other way round).

    In QGIS it is a real map view (``iface.createNewMapCanvas``); where the
    interface cannot make one (tests, other hosts) a QgsMapCanvas in a dock widget.
    """

    def __init__(self, iface: Any, name: str, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.iface = iface
        self.name = name
        self.main: QgsMapCanvas = iface.mapCanvas()
        self.dock: Optional[QgsDockWidget] = None
        canvas = None
        try:
            canvas = iface.createNewMapCanvas(name)
        except Exception as exc:  # an interface without map views
            log(f"no new map view from QGIS ({exc}); using a docked canvas")
        if not isinstance(canvas, QgsMapCanvas):
            canvas = QgsMapCanvas()
            canvas.setObjectName(f"{name} canvas")
            self.dock = QgsDockWidget(name, iface.mainWindow())
            self.dock.setObjectName(name)
            self.dock.setWidget(canvas)
            try:
                iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
            except Exception:
                self.dock.show()
        self.canvas: QgsMapCanvas = canvas
        self._syncing = False
        self.canvas.setDestinationCrs(self.main.mapSettings().destinationCrs())
        self.main.extentsChanged.connect(self._from_main)
        self.canvas.extentsChanged.connect(self._from_view)
        self.main.destinationCrsChanged.connect(self._crs_from_main)

    def show_layers(self, layers: Sequence[Any], theme: Optional[str] = None) -> None:
        if theme:
            self.canvas.setTheme(theme)
        self.canvas.setLayers(list(layers))
        self._from_main()

    def _crs_from_main(self) -> None:
        self.canvas.setDestinationCrs(self.main.mapSettings().destinationCrs())

    @staticmethod
    def _follow(source: QgsMapCanvas, target: QgsMapCanvas) -> None:
        """Same centre and scale (not extent: the two views differ in size and shape)."""
        if target.extent().isEmpty() or source.width() < 2 or target.width() < 2:
            target.setExtent(source.extent())
        if source.width() >= 2 and target.width() >= 2:
            target.setCenter(source.center())
            target.zoomScale(source.scale())
        target.refresh()

    def _from_main(self) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            self._follow(self.main, self.canvas)
        finally:
            self._syncing = False

    def _from_view(self) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            self._follow(self.canvas, self.main)
        finally:
            self._syncing = False

    def close(self) -> None:
        for signal, slot in ((self.main.extentsChanged, self._from_main),
                             (self.canvas.extentsChanged, self._from_view),
                             (self.main.destinationCrsChanged, self._crs_from_main)):
            try:
                signal.disconnect(slot)
            except (TypeError, RuntimeError):
                pass
        if self.dock is not None:
            try:
                self.iface.removeDockWidget(self.dock)
            except Exception:
                pass
            self.dock.close()
            self.dock.deleteLater()
            self.dock = None
        else:
            try:
                self.iface.closeMapCanvas(self.name)
            except Exception:
                pass


# --------------------------------------------------------------------------- the panel


def _fmt(key: str, value: Optional[float]) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if key == "trust_mean":
        return f"{value:.4f}"  # reflectance: S-2 noise is ~0.002
    if key == "trust_flagged":
        return f"{100 * value:.1f} %"
    return f"{value:.2f}" if key == "cpsnr" else f"{value:.3f}"


class ComparePanel(QWidget):
    """The Compare tab. ``context`` is the dock: it knows the input, the output folder and the
    segmentation networks (see ``SRDockWidget.prepare_sr_job`` and friends)."""

    compared = pyqtSignal(object)  # CompareResult

    def __init__(self, iface: Any, runner: TaskRunner, context: Any, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.iface = iface
        self.runner = runner
        self.context = context
        self.view: Optional[SyncedView] = None
        self.last_result: Optional[CompareResult] = None
        self.group_name = ""
        self._build()

    # -- widgets
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        how = QGroupBox("What to compare")
        form = QFormLayout(how)
        self.run_mode = QRadioButton("Run two checkpoints on the input")
        self.layer_mode = QRadioButton("Use two existing SR layers")
        self.run_mode.setChecked(True)
        form.addRow(self.run_mode)
        self.baseline_combo = QComboBox()
        self.taskdriven_combo = QComboBox()
        form.addRow("Baseline checkpoint", self.baseline_combo)
        form.addRow("Task-driven checkpoint", self.taskdriven_combo)
        form.addRow(self.layer_mode)
        self.layer_a = QgsMapLayerComboBox()
        self.layer_a.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.layer_b = QgsMapLayerComboBox()
        self.layer_b.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        form.addRow("Baseline layer", self.layer_a)
        form.addRow("Task-driven layer", self.layer_b)
        layout.addWidget(how)

        refs = QGroupBox("Reference (optional: fills the metric table)")
        rform = QFormLayout(refs)
        self.reference_combo = QgsMapLayerComboBox()
        self.reference_combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.reference_combo.setAllowEmptyLayer(True)
        self.reference_combo.setLayer(None)
        self.buildings_combo = QgsMapLayerComboBox()
        self.roads_combo = QgsMapLayerComboBox()
        for combo in (self.buildings_combo, self.roads_combo):
            combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer | QgsMapLayerProxyModel.Filter.VectorLayer)
            combo.setAllowEmptyLayer(True)
            combo.setLayer(None)
        rform.addRow("HR reference raster", self.reference_combo)
        rform.addRow("Buildings mask / OSM layer", self.buildings_combo)
        rform.addRow("Roads mask / OSM layer", self.roads_combo)
        hint = QLabel("Dice uses the segmentation networks chosen in the Segment tab.")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: gray")
        rform.addRow(hint)
        layout.addWidget(refs)

        self.compare_button = QPushButton("Compare baseline vs task-driven")
        self.compare_button.clicked.connect(self.start)
        layout.addWidget(self.compare_button)

        self.table = QTableWidget(len(METRIC_ROWS), 3)
        self.table.setHorizontalHeaderLabels([BASELINE, TASK_DRIVEN, "Difference"])
        self.table.setVerticalHeaderLabels([title for _k, title, _h in METRIC_ROWS])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.resizeRowsToContents()
        rows_h = sum(self.table.rowHeight(r) for r in range(self.table.rowCount()))
        self.table.setFixedHeight(rows_h + self.table.horizontalHeader().sizeHint().height() + 6)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout.addWidget(self.table)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        layout.addStretch(1)
        for w in (self.run_mode, self.layer_mode):
            w.toggled.connect(self._mode_changed)
        self._mode_changed()

    def _mode_changed(self) -> None:
        runs = self.run_mode.isChecked()
        for w in (self.baseline_combo, self.taskdriven_combo):
            w.setEnabled(runs)
        for w in (self.layer_a, self.layer_b):
            w.setEnabled(not runs)

    def set_models(self, entries: Sequence[Any], baseline: Optional[str] = None,
                   taskdriven: Optional[str] = None, focus: Optional[Any] = None) -> None:
        """Fill the two checkpoint pickers with SR checkpoints (``ModelEntry`` objects).

        ``baseline`` / ``taskdriven`` are the analyst's own picks and are kept. Without them the pair is
        guessed around ``focus`` (the dock's current SR checkpoint), and guessed again each time the list
        changes, so a checkpoint the analyst just added is compared with its own kind.
        """
        for combo, wanted in ((self.baseline_combo, baseline), (self.taskdriven_combo, taskdriven)):
            keep = wanted or combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            for e in entries:
                combo.addItem(e.label, e.path)
                combo.setItemData(combo.count() - 1, e.path, Qt.ItemDataRole.ToolTipRole)
            idx = combo.findData(keep) if keep else -1
            if idx >= 0:
                combo.setCurrentIndex(idx)
            combo.blockSignals(False)
        if not baseline and not taskdriven:
            self._guess_pair(entries, focus)

    def _guess_pair(self, entries: Sequence[Any], focus: Optional[Any] = None) -> None:
        """Pick a baseline (no task loss) and a task-driven checkpoint (with one) of the same network.

        Why the same network: the comparison is meant to show what the *recipe* changes, so the pair is
        looked for first among checkpoints with the focus's architecture, frames and hyper-parameters,
        then with its architecture, then among all; the focus itself fills its own role.
        """
        def is_task(e: Any) -> bool:
            losses = [str(t.get("name", "")) for t in (e.card.recipe or {}).get("losses", []) if isinstance(t, dict)]
            return any(n.startswith("dice") for n in losses) or "task" in e.label.lower()

        def family(e: Any) -> Tuple[Any, ...]:
            return e.card.arch, e.card.frames, json.dumps(e.card.hparams or {}, sort_keys=True, default=str)

        pools: List[List[Any]] = []
        if focus is not None:
            pools.append([e for e in entries if family(e) == family(focus)])
            pools.append([e for e in entries if e.card.arch == focus.card.arch])
        pools.append(list(entries))
        for pool in pools:
            task = [e for e in pool if is_task(e)]
            base = [e for e in pool if not is_task(e)]
            if not (task and base):
                continue
            own = focus.path if focus is not None else None
            pick_base = own if own in [e.path for e in base] else base[0].path
            pick_task = own if own in [e.path for e in task] else task[0].path
            self.baseline_combo.setCurrentIndex(self.baseline_combo.findData(pick_base))
            self.taskdriven_combo.setCurrentIndex(self.taskdriven_combo.findData(pick_task))
            return

    # -- running
    def _mask_source(self, layer: Any, target: str) -> Optional[MaskSource]:
        if layer is None:
            return None
        if isinstance(layer, QgsVectorLayer):
            if layer.providerType() != "ogr":
                raise Refused(f"'{layer.name()}' ({target}) is a {layer.providerType()} layer, not a file: "
                              "save it to a GeoPackage first")
            from qgis.core import QgsProviderRegistry

            parts = QgsProviderRegistry.instance().decodeUri("ogr", layer.source())
            return MaskSource(str(parts.get("path") or layer.source()), "vector", parts.get("layerName") or None)
        return MaskSource(layer_file(layer), "raster")

    def build_job(self) -> Tuple[CompareJob, str, Optional[QgsRasterLayer], int]:
        """Read everything the job needs on the main thread; raises ``Refused`` with the reason."""
        reference = self.reference_combo.currentLayer()
        masks: Dict[str, MaskSource] = {}
        for target, combo in (("buildings", self.buildings_combo), ("roads", self.roads_combo)):
            src = self._mask_source(combo.currentLayer(), target)
            if src is not None:
                masks[target] = src
        seg = self.context.seg_checkpoints() if masks else {}
        runs: Dict[str, SuperResolveJob] = {}
        if self.run_mode.isChecked():
            base, task = self.baseline_combo.currentData(), self.taskdriven_combo.currentData()
            if not base or not task:
                raise Refused("choose a baseline and a task-driven checkpoint (add one with 'Add…' in the "
                              "Super-resolve tab)")
            if base == task:
                raise Refused("the baseline and task-driven checkpoints are the same file; choose two")
            runs[BASELINE], spec = self.context.prepare_sr_job(base, "baseline")
            runs[TASK_DRIVEN], _ = self.context.prepare_sr_job(task, "taskdriven")
            outputs = {k: r.out_path for k, r in runs.items()}
            label, stretch_layer, stretch_band = spec.name, spec.layers[0], spec.band_index
        else:
            a, b = self.layer_a.currentLayer(), self.layer_b.currentLayer()
            if a is None or b is None:
                raise Refused("choose the baseline and the task-driven layers")
            if a.id() == b.id():
                raise Refused("the baseline and task-driven layers are the same layer; choose two")
            outputs = {BASELINE: layer_file(a), TASK_DRIVEN: layer_file(b)}
            label, stretch_layer, stretch_band = f"{a.name()} vs {b.name()}", a, 1
        job = CompareJob(runs=runs, outputs=outputs, reference=layer_file(reference) if reference else None,
                         masks=masks, seg_checkpoints=seg, device=self.context.device())
        return job, label, stretch_layer, stretch_band

    def start(self) -> Optional[CoreTask]:
        try:
            job, label, stretch_layer, stretch_band = self.build_job()
        except Refused as exc:
            notify(self.iface, "Compare", str(exc), level=_warning())
            return None
        stretch = layer_stretch(stretch_layer, stretch_band) if stretch_layer is not None else None
        task = CoreTask(f"Compare baseline vs task-driven: {label}", job)
        task.created = job.created  # SR outputs made so far go if the comparison fails
        task.succeeded.connect(lambda res, lbl=label, st=stretch, made=bool(job.runs): self._done(res, lbl, st, made))
        task.failed.connect(lambda exc: notify(self.iface, "Compare", log_exception(exc, "compare"),
                                               level=_critical()))
        task.canceledByUser.connect(lambda: notify(self.iface, "Compare", "cancelled; nothing was added"))
        self.runner.start(task)
        return task

    def _done(self, result: CompareResult, label: str, stretch, made_outputs: bool) -> None:
        for m in result.messages:
            log(m)
        project = QgsProject.instance()
        root = project.layerTreeRoot()
        name = f"Compare: {label}"
        group = root.findGroup(name) or root.insertGroup(0, name)
        layers: Dict[str, QgsRasterLayer] = {}
        for key in (TASK_DRIVEN, BASELINE):
            path = result.outputs[key]
            layer = QgsRasterLayer(path, f"{key}: {Path(path).stem}")
            if not layer.isValid():
                notify(self.iface, "Compare", f"could not open {path} as a layer", level=_critical())
                return
            apply_gray_stretch(layer, stretch, 1)
            project.addMapLayer(layer, False)
            group.insertChildNode(0 if key == BASELINE else 1, QgsLayerTreeLayer(layer))
            layers[key] = layer
        self.group_name = name
        node = root.findLayer(layers[TASK_DRIVEN].id())
        if node is not None:
            node.setItemVisibilityChecked(False)  # the main map shows the baseline
        self._add_trust_layers(result, group)
        self._show_in_view(layers[TASK_DRIVEN], layers[BASELINE])
        self._fill_table(result)
        self.last_result = result
        notify(self.iface, "Compare", "baseline in the main map, task-driven in the synced view"
               + (" (both super-resolved now)" if made_outputs else ""))
        self.compared.emit(result)

    def _add_trust_layers(self, result: CompareResult, group: Any) -> None:
        """Trust maps written beside the outputs, as hidden layers at the bottom of the group."""
        from .styles import style_trust

        for key, path in result.trust_paths.items():
            layer = QgsRasterLayer(path, f"Trust map ({key}): {Path(path).stem}")
            if not layer.isValid():
                continue
            style_trust(layer)
            QgsProject.instance().addMapLayer(layer, False)
            node = group.addLayer(layer)
            node.setItemVisibilityChecked(False)

    def _show_in_view(self, shown: QgsRasterLayer, hidden: QgsRasterLayer) -> None:
        """Task-driven in the second view, with the same other layers as the main map."""
        others = [lyr for lyr in self.iface.mapCanvas().layers() if lyr.id() not in (shown.id(), hidden.id())]
        view_layers = [shown] + others
        themes = QgsProject.instance().mapThemeCollection()
        record = QgsMapThemeCollection.MapThemeRecord()
        record.setLayerRecords([QgsMapThemeCollection.MapThemeLayerRecord(lyr) for lyr in view_layers])
        if themes.hasMapTheme(THEME):
            themes.update(THEME, record)
        else:
            themes.insert(THEME, record)
        if self.view is None:
            self.view = SyncedView(self.iface, "Task-driven SR (synced)", self)
        self.view.show_layers(view_layers, THEME)

    def _fill_table(self, result: CompareResult) -> None:
        for row, (key, _title, higher_better) in enumerate(METRIC_ROWS):
            a = result.metrics.get(BASELINE, {}).get(key)
            b = result.metrics.get(TASK_DRIVEN, {}).get(key)
            cells = [_fmt(key, a), _fmt(key, b)]
            diff = "n/a"
            if a is not None and b is not None:
                d = b - a
                diff = ("+" if d >= 0 else "") + _fmt(key, d)
            cells.append(diff)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if text == "n/a" and key in result.notes:
                    item.setToolTip(result.notes[key])
                if col == 2 and diff != "n/a" and a != b:
                    better = (b > a) == higher_better
                    item.setForeground(_colour("#1a7f37" if better else "#b42318"))
                self.table.setItem(row, col, item)
        missing = sorted(set(result.notes.values()))
        self.summary.setText("n/a: " + "; ".join(missing) if missing else "")

    def table_values(self) -> Dict[str, Dict[str, str]]:
        """The table as text, ``{metric title: {column: text}}`` (for tests and reports)."""
        out: Dict[str, Dict[str, str]] = {}
        for row, (_key, title, _h) in enumerate(METRIC_ROWS):
            out[title] = {}
            for col in range(self.table.columnCount()):
                item = self.table.item(row, col)
                out[title][self.table.horizontalHeaderItem(col).text()] = item.text() if item else ""
        return out

    def shutdown(self) -> None:
        if self.view is not None:
            self.view.close()
            self.view = None


def _colour(name: str):
    from qgis.PyQt.QtGui import QBrush, QColor

    return QBrush(QColor(name))


def _warning():
    from qgis.core import Qgis

    return Qgis.MessageLevel.Warning


def _critical():
    from qgis.core import Qgis

    return Qgis.MessageLevel.Critical


__all__ = [
    "CompareJob",
    "ComparePanel",
    "CompareResult",
    "MaskSource",
    "SyncedView",
    "compare_outputs",
]
