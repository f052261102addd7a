"""The dock's Compare tab: baseline vs task-driven, one stretch, synced views, a metric table.

Two ways in: run two checkpoints on the dock's input (both super-resolutions
and the metrics run in one QgsTask), or pick two SR layers that already exist.
The outputs land in one layer group with the *same* stretch (the input's), the
baseline in the main map and the task-driven output in a second map view that
follows the main one. When a reference HR raster and/or building and road
masks (rasters, or vector layers such as OSM buildings / roads) are given, the
table shows cPSNR, cSSIM and building / road Dice for both; the trust rows need
no reference. The numbers come from ``core.api.compare_outputs``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from qgis.core import (
    Qgis,
    QgsLayerTreeLayer,
    QgsMapLayerProxyModel,
    QgsMapThemeCollection,
    QgsProject,
    QgsRasterLayer,
)
from qgis.gui import QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from ...core import api
from ...core.api import CompareResult, MaskSource
from ...core.jobs import CancelToken, Progress, sub_progress
from ...core.options import CompareOptions
from ..compat import layer_filters
from ..log import log, log_exception, notify
from ..sources import Refused, layer_file, mask_source
from ..styles import layer_stretch
from ..tasks import CoreTask, SuperResolveJob, TaskRunner, class_path_for_trust
from .fit import narrow_form, wrapped_label
from .layers import add_trust_class_layer, add_trust_layer, style_output
from .metric_table import BASELINE, TASK_DRIVEN, MetricTable, summary_line
from .option_widgets import OptionWidgets
from .synced_view import SyncedView

__all__ = ["CompareJob", "ComparePanel", "BASELINE", "TASK_DRIVEN", "THEME"]

THEME = "S2 SR: task-driven"


@dataclass
class CompareJob:
    """Optionally super-resolve with both checkpoints, then compute the metrics (one task, one options object)."""

    runs: Dict[str, SuperResolveJob]  # label -> SR run to do first (empty: outputs exist)
    outputs: Dict[str, str]  # label -> SR raster (existing, or the runs' out_path)
    reference: Optional[str] = None
    masks: Dict[str, MaskSource] = field(default_factory=dict)
    seg_checkpoints: Dict[str, str] = field(default_factory=dict)
    options: CompareOptions = field(default_factory=CompareOptions)
    created: List[Path] = field(default_factory=list)

    def __call__(self, progress: Progress, cancel: CancelToken) -> CompareResult:
        n_runs = len(self.runs)
        # the bar's share of each stage follows its cost: two super-resolutions, then the metrics (segmentation,
        # and the trust maps, which take several times a run, when asked for)
        span = (0.3 if self.options.trust else 0.8) if n_runs else 0.0
        messages: List[str] = []
        for i, (label, run) in enumerate(self.runs.items()):
            step = sub_progress(progress, span * i / n_runs, span * (i + 1) / n_runs, f"{label}: super-resolving: ")
            res = run(step, cancel)
            self.created.append(Path(run.out_path))
            messages.extend(f"{label}: {m}" for m in res.messages)
        trust_inputs = {label: (list(run.inputs), run.options.band) for label, run in self.runs.items()}
        result = api.compare_outputs(self.outputs, self.reference, self.masks, self.seg_checkpoints, self.options,
                                     progress=sub_progress(progress, span, 1.0), cancel=cancel,
                                     trust_inputs=trust_inputs)
        self.created.extend(Path(p) for p in result.trust_paths.values())
        self.created.extend(class_path_for_trust(p) for p in result.trust_paths.values())
        result.messages[:0] = messages
        return result


class ComparePanel(QWidget):
    """The Compare tab. ``context`` is the dock: it knows the input, the output folder and the
    segmentation networks (``prepare_sr_job``, ``seg_checkpoints``, ``device``)."""

    compared = pyqtSignal(object)  # CompareResult

    def __init__(self, iface: Any, runner: TaskRunner, context: Any, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("compareTab")
        self.iface = iface
        self.runner = runner
        self.context = context
        self.view: Optional[SyncedView] = None
        self.last_result: Optional[CompareResult] = None
        self.group_name = ""
        self._started = time.monotonic()
        self._build()

    # ------------------------------------------------------------------ widgets
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        how = QGroupBox("What to compare")
        form = narrow_form(QFormLayout(how))
        self.run_mode = QRadioButton("Run two checkpoints")
        self.run_mode.setToolTip("Super-resolve the Super-resolve tab's input with both checkpoints, then compare")
        self.layer_mode = QRadioButton("Use two existing SR layers")
        self.run_mode.setChecked(True)
        form.addRow(self.run_mode)
        self.baseline_combo = QComboBox()
        self.baseline_combo.setObjectName("baselineCheckpointCombo")
        self.taskdriven_combo = QComboBox()
        self.taskdriven_combo.setObjectName("taskdrivenCheckpointCombo")
        form.addRow("Baseline", self.baseline_combo)
        form.addRow("Task-driven", self.taskdriven_combo)
        form.addRow(self.layer_mode)
        self.layer_a = QgsMapLayerComboBox()
        self.layer_a.setObjectName("baselineLayerCombo")
        self.layer_a.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.layer_b = QgsMapLayerComboBox()
        self.layer_b.setObjectName("taskdrivenLayerCombo")
        self.layer_b.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        form.addRow("Baseline layer", self.layer_a)
        form.addRow("Task-driven layer", self.layer_b)
        layout.addWidget(how)

        refs = QGroupBox("Reference (optional)")
        refs.setToolTip("Fills the cPSNR, cSSIM and Dice rows of the table; the trust rows need none")
        rform = narrow_form(QFormLayout(refs))
        self.reference_combo = QgsMapLayerComboBox()
        self.reference_combo.setObjectName("referenceLayerCombo")
        self.reference_combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.reference_combo.setAllowEmptyLayer(True)
        self.reference_combo.setLayer(None)
        self.buildings_combo = QgsMapLayerComboBox()
        self.buildings_combo.setObjectName("buildingsMaskCombo")
        self.roads_combo = QgsMapLayerComboBox()
        self.roads_combo.setObjectName("roadsMaskCombo")
        for combo in (self.buildings_combo, self.roads_combo):
            combo.setFilters(layer_filters(QgsMapLayerProxyModel.Filter.RasterLayer,
                                           QgsMapLayerProxyModel.Filter.VectorLayer))
            combo.setAllowEmptyLayer(True)
            combo.setLayer(None)
        rform.addRow("HR raster", self.reference_combo)
        rform.addRow("Buildings", self.buildings_combo)
        rform.addRow("Roads", self.roads_combo)
        rform.addRow(wrapped_label("Buildings and roads: a mask raster or an OSM vector layer. Dice uses the "
                                   "segmentation networks chosen in the Segment tab.", gray=True))
        layout.addWidget(refs)

        what = QGroupBox("What to compute")
        wform = narrow_form(QFormLayout(what))
        self.more = OptionWidgets(CompareOptions, ("trust",))  # the rest: the Segment tab's networks, the dock's device
        self.more.add_rows(wform)
        wform.addRow(wrapped_label("Without trust maps the trust rows stay empty (unless an output already has "
                                   "one beside it); with them Compare takes several times longer.", gray=True))
        layout.addWidget(what)

        self.compare_button = QPushButton("Compare baseline vs task-driven")
        self.compare_button.setObjectName("compareButton")
        self.compare_button.clicked.connect(self.start)
        layout.addWidget(self.compare_button)
        self.table = MetricTable()
        layout.addWidget(self.table)
        self.summary = wrapped_label()
        self.summary.setObjectName("compareSummaryLabel")
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

    # ------------------------------------------------------------------ checkpoints
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

    # ------------------------------------------------------------------ running
    def build_job(self) -> Tuple[CompareJob, str, Optional[QgsRasterLayer], int]:
        """Read everything the job needs on the main thread; raises ``Refused`` with the reason."""
        reference = self.reference_combo.currentLayer()
        masks: Dict[str, MaskSource] = {}
        for target, combo in (("buildings", self.buildings_combo), ("roads", self.roads_combo)):
            src = mask_source(combo.currentLayer(), target)
            if src is not None:
                masks[target] = src
        seg = self.context.seg_checkpoints() if masks else {}
        runs: Dict[str, SuperResolveJob] = {}
        if self.run_mode.isChecked():
            base, task = self.baseline_combo.currentData(), self.taskdriven_combo.currentData()
            if not base or not task:
                raise Refused("choose a baseline and a task-driven checkpoint (add one with '...' in the "
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
                         masks=masks, seg_checkpoints=seg, options=self.options())
        return job, label, stretch_layer, stretch_band

    def options(self) -> CompareOptions:
        """The job's one options object, from this tab's widgets and the dock's device."""
        return CompareOptions(**self.more.values(), device=self.context.device())

    def start(self) -> Optional[CoreTask]:
        try:
            job, label, stretch_layer, stretch_band = self.build_job()
        except Refused as exc:
            notify(self.iface, "Compare", str(exc), Qgis.MessageLevel.Warning)
            return None
        stretch = layer_stretch(stretch_layer, stretch_band) if stretch_layer is not None else None
        task = CoreTask(f"Compare baseline vs task-driven: {label}", job)
        self.summary.setText("comparing" + (" (with trust maps: this takes a while)" if job.options.trust else "")
                             + "...")
        self._started = time.monotonic()
        task.created = job.created  # SR outputs made so far go if the comparison fails or is cancelled
        task.succeeded.connect(lambda res, lbl=label, st=stretch, made=bool(job.runs): self._done(res, lbl, st, made))
        task.failed.connect(lambda exc: notify(self.iface, "Compare", log_exception(exc, "compare"),
                                               Qgis.MessageLevel.Critical))
        task.canceledByUser.connect(lambda: notify(self.iface, "Compare", "cancelled; nothing was added"))
        self.runner.start(task)
        return task

    def _done(self, result: CompareResult, label: str, stretch: Any, made_outputs: bool) -> None:
        for m in result.messages:
            log(m)
        project = QgsProject.instance()
        root = project.layerTreeRoot()
        name = f"Compare: {label}"
        group = root.findGroup(name) or root.insertGroup(0, name)
        layers: Dict[str, QgsRasterLayer] = {}
        shared: Optional[Dict[int, Any]] = None  # 4-band outputs: the baseline's true-colour stretch for both
        for key in (BASELINE, TASK_DRIVEN):
            path = result.outputs[key]
            layer = QgsRasterLayer(path, f"{key}: {Path(path).stem}")
            if not layer.isValid():
                notify(self.iface, "Compare", f"could not open {path} as a layer", Qgis.MessageLevel.Critical)
                return
            shared = style_output(layer, stretch, shared) or shared
            project.addMapLayer(layer, False)
            group.insertChildNode(0 if key == BASELINE else 1, QgsLayerTreeLayer(layer))
            layers[key] = layer
        self.group_name = name
        node = root.findLayer(layers[TASK_DRIVEN].id())
        if node is not None:
            node.setItemVisibilityChecked(False)  # the main map shows the baseline
        for key, path in result.trust_paths.items():  # kept beside the outputs: hidden, at the group's bottom
            add_trust_layer(path, 0.02, group, f"Trust map ({key}): {Path(path).stem}", at_top=False)
            classes = class_path_for_trust(path)
            if classes.is_file():
                add_trust_class_layer(str(classes), group, f"Trust classes ({key}): {classes.stem}", at_top=False)
        self._show_in_view(layers[TASK_DRIVEN], layers[BASELINE])
        self.summary.setText(summary_line(result, self.table.fill(result), time.monotonic() - self._started))
        self.last_result = result
        notify(self.iface, "Compare", "baseline in the main map, task-driven in the synced view"
               + (" (both super-resolved now)" if made_outputs else ""))
        self.compared.emit(result)

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

    def table_values(self) -> Dict[str, Dict[str, str]]:
        """The table as text, ``{metric title: {column: text}}`` (for tests and reports)."""
        return self.table.values()

    def shutdown(self) -> None:
        if self.view is not None:
            self.view.close()
            self.view = None
