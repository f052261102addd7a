"""Training dialog: configure a recipe, run the headless trainer as a child process, watch it learn.

Why a child process (QProcess) and not a QgsTask: training runs for minutes to
days, holds a lot of memory and may crash in native code; in its own process it
cannot take QGIS down with it, it is stopped for real by Cancel (terminate, then
kill), and it is the very same command an analyst would run on a server:
``python -m core.cli train CONFIG --progress jsonl``. The trainer prints one JSON
event per line; this dialog turns them into a progress bar with ETA, live
curves (losses, dynamic loss weights, validation metrics) and a log.

The trainer saves ``last.pt`` after every epoch, so Cancel keeps the last
finished epoch and Resume continues in the same run folder.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from qgis.core import Qgis
from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import QEvent, QProcess, QProcessEnvironment, Qt, QTimer, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from .log import log, notify

PLUGIN_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIRS = (PLUGIN_ROOT / "resources" / "configs", PLUGIN_ROOT / "resources" / "configs" / "experiments")
REQUESTED_CONFIG = "requested_config.yaml"
TASKS = (
    ("Segmentation: buildings (UNet++ on HR)", "seg_buildings"),
    ("Segmentation: roads (UNet++ on HR)", "seg_roads"),
    ("Super-resolution: RAMS (multi-image)", "rams"),
    ("Super-resolution: HAT (single image)", "hat"),
)
DEVICES = (("Automatic (GPU when there is one)", "auto"), ("CPU", "cpu"), ("GPU (CUDA)", "cuda"))
SR_LOSSES = ("cl1", "cmse", "consistency_l1", "dice_buildings", "dice_roads")
SEG_LOSSES = ("dice", "bce")
STOP_GRACE_MS = 5000
#: Validation metrics drawn (the log has them all); cPSNR and loss go on a second axis.
VAL_CURVES = ("cpsnr", "loss", "cssim", "buildings_dice", "roads_dice", "dice", "precision", "recall")


def python_interpreter() -> str:
    """The Python that runs the trainer: the configured one, QGIS's own, or ``python3``."""
    try:
        from .deps import python_interpreter as configured

        found = configured()
        if found:
            return str(found)
    except Exception:  # deps not there or not set up: fall back below
        pass
    exe = Path(sys.executable)
    if exe.name.lower().startswith("python"):
        return str(exe)
    return shutil.which("python3") or "python3"


# --------------------------------------------------------------------------- presets


@dataclass
class Preset:
    """A training recipe shipped in resources/configs (resolved through its ``base`` chain)."""

    path: Path
    title: str
    kind: str  # one of the TASKS keys
    data: Dict[str, Any]


def _first_comment(path: Path) -> str:
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("#"):
                return line.lstrip("# ").strip()
            if line.strip():
                break
    except OSError:
        pass
    return ""


def kind_of(data: Dict[str, Any]) -> str:
    if data.get("task") == "segmentation":
        return f"seg_{data.get('target') or 'buildings'}"
    return str((data.get("model") or {}).get("arch") or "rams")


def load_presets(dirs=CONFIG_DIRS) -> List[Preset]:
    """Every recipe YAML (not the shared ``_*.yaml`` bases) as a resolved mapping."""
    from ..core.training.config import config_to_dict, load_config

    out: List[Preset] = []
    for folder in dirs:
        for path in sorted(Path(folder).glob("*.yaml")):
            if path.name.startswith("_"):
                continue
            try:
                data = config_to_dict(load_config(path, check_files=False))
            except Exception as exc:  # one broken file must not hide the others
                log(f"recipe {path.name} skipped: {exc}", Qgis.MessageLevel.Warning)
                continue
            exp = data.get("experiment") or {}
            title = exp.get("title") or _first_comment(path) or path.stem
            prefix = f"exp {exp['id']}: " if exp.get("id") and folder.name == "experiments" else ""
            out.append(Preset(path, f"{prefix}{title}" if prefix else f"{path.stem}: {title}", kind_of(data), data))
    return out


# --------------------------------------------------------------------------- progress history


@dataclass
class TrainHistory:
    """What the trainer reported so far, arranged for the curves and the progress bar."""

    epochs_total: int = 0
    epoch: int = 0
    step: int = 0
    steps: int = 0
    eta_s: Optional[float] = None
    epochs: List[int] = field(default_factory=list)
    train: Dict[str, List[float]] = field(default_factory=dict)
    weights: Dict[str, List[float]] = field(default_factory=dict)
    val: Dict[str, List[Optional[float]]] = field(default_factory=dict)
    step_x: List[float] = field(default_factory=list)
    step_loss: List[float] = field(default_factory=list)
    checkpoint: Optional[str] = None
    error: Optional[str] = None
    best: Optional[Dict[str, Any]] = None

    def feed(self, event: Dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "step":
            self.epochs_total = int(event.get("epochs") or self.epochs_total)
            self.epoch = int(event.get("epoch") or self.epoch)
            self.step, self.steps = int(event.get("step") or 0), int(event.get("steps") or 0)
            self.eta_s = event.get("eta_s")
            loss = event.get("loss")
            if isinstance(loss, (int, float)) and math.isfinite(loss) and self.steps:
                self.step_x.append(self.epoch - 1 + self.step / self.steps)
                self.step_loss.append(float(loss))
        elif kind == "epoch":
            e = int(event.get("epoch") or len(self.epochs) + 1)
            self.epochs_total = int(event.get("epochs") or self.epochs_total)
            self.epoch = e
            if e in self.epochs:  # a resumed run repeats nothing, but be safe
                return
            self.epochs.append(e)
            n = len(self.epochs)
            for group, values in ((self.train, event.get("train") or {}), (self.weights, event.get("weights") or {}),
                                  (self.val, event.get("val") or {})):
                for k, v in values.items():
                    if k == "scenes":
                        continue
                    series = group.setdefault(k, [None] * (n - 1))
                    series.append(float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None)
                for series in group.values():
                    while len(series) < n:
                        series.append(None)
            self.best = event.get("best") or self.best
        elif kind == "done":
            self.checkpoint = event.get("checkpoint")
        elif kind == "error":
            self.error = str(event.get("message") or "the trainer stopped with an error")

    @property
    def fraction(self) -> float:
        if not self.epochs_total:
            return 0.0
        within = self.step / self.steps if self.steps else 0.0
        done = (self.epoch - 1 + within) if self.step else len(self.epochs)
        return max(0.0, min(1.0, done / self.epochs_total))


def format_eta(seconds: Optional[float]) -> str:
    if seconds is None or not math.isfinite(seconds):
        return ""
    s = int(round(seconds))
    if s < 60:
        return f"about {s} s left"
    if s < 3600:
        return f"about {s // 60} min {s % 60:02d} s left"
    return f"about {s // 3600} h {(s % 3600) // 60:02d} min left"


# --------------------------------------------------------------------------- the plot


class CurvePlot(QWidget):
    """Losses, loss weights and validation metrics per epoch (matplotlib's Qt canvas)."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.canvas = None
        try:
            from matplotlib.figure import Figure

            try:
                from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
            except ImportError:  # older matplotlib
                from matplotlib.backends.backend_qt5agg import FigureCanvasQTAgg
        except ImportError as exc:
            note = QLabel(f"No live curves: matplotlib is not available ({exc}). Training still runs.")
            note.setWordWrap(True)
            layout.addWidget(note)
            return
        self.figure = Figure(figsize=(9, 2.8), dpi=90, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(230)
        layout.addWidget(self.canvas)
        self.axes = self.figure.subplots(1, 3)
        self.twin = self.axes[2].twinx()  # cPSNR (dB) beside the 0..1 metrics
        self.draw(TrainHistory())

    def draw(self, h: TrainHistory) -> None:
        if self.canvas is None:
            return
        ax_loss, ax_w, ax_val = self.axes
        for ax in self.axes:
            ax.clear()
            ax.grid(True, alpha=0.3)
            ax.tick_params(labelsize=8)
        self.twin.clear()
        self.twin.tick_params(labelsize=8)
        self.twin.set_visible(False)
        ax_loss.set_title("Training losses", fontsize=9)
        ax_w.set_title("Loss weights", fontsize=9)
        ax_val.set_title("Validation", fontsize=9)
        for ax in self.axes:
            ax.set_xlabel("epoch", fontsize=8)
        if h.step_x:
            ax_loss.plot(h.step_x, h.step_loss, color="0.75", lw=0.8, label="step (weighted total)")
        positive = True
        for name, series in h.train.items():
            xs = [e for e, v in zip(h.epochs, series) if v is not None]
            ys = [v for v in series if v is not None]
            if ys:
                positive = positive and min(ys) > 0
                ax_loss.plot(xs, ys, marker="o", ms=3, lw=1.4, label=name)
        if positive and (h.train or h.step_loss) and min(h.step_loss or [1.0]) > 0:
            ax_loss.set_yscale("log")
        for name, series in h.weights.items():
            xs = [e for e, v in zip(h.epochs, series) if v is not None]
            ys = [v for v in series if v is not None]
            if ys:
                ax_w.step(xs, ys, where="post", marker="o", ms=3, lw=1.4, label=name)
        twin = None
        for name, series in h.val.items():
            if name not in VAL_CURVES:
                continue
            xs = [e for e, v in zip(h.epochs, series) if v is not None]
            ys = [v for v in series if v is not None]
            if not ys:
                continue
            if name in ("cpsnr", "loss"):
                twin = self.twin
                twin.set_visible(True)
                twin.plot(xs, ys, marker="s", ms=3, lw=1.4, ls="--", color="tab:purple", label=name)
                twin.set_ylabel("cPSNR (dB)" if name == "cpsnr" else name, fontsize=8)
            else:
                ax_val.plot(xs, ys, marker="o", ms=3, lw=1.4, label=name)
        for ax in (ax_loss, ax_w, ax_val):
            handles, labels = ax.get_legend_handles_labels()
            if twin is not None and ax is ax_val:
                h2, l2 = twin.get_legend_handles_labels()
                handles, labels = handles + h2, labels + l2
            if handles:
                ax.legend(handles, labels, fontsize=7, loc="best")
        if h.epochs_total:
            for ax in self.axes:
                ax.set_xlim(0, max(h.epochs_total, 1) + 0.2)
        self.canvas.draw_idle()


# --------------------------------------------------------------------------- the dialog


class TrainDialog(QDialog):
    """Configure and launch a training run; shows progress, curves and the log.

    ``checkpointReady(path)`` is emitted when a run ends with a checkpoint; the
    dock lists it from then on.
    """

    checkpointReady = pyqtSignal(str)
    eventReceived = pyqtSignal(dict)

    def __init__(self, iface: Any = None, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.iface = iface
        self.setWindowTitle("Train a model: task-driven super-resolution")
        self.setObjectName("S2TaskDrivenSRTrainDialog")
        self.process: Optional[QProcess] = None
        self.synth_process: Optional[QProcess] = None
        self.history = TrainHistory()
        self.run_dir: Optional[Path] = None
        self.config_path: Optional[Path] = None
        self._buffer = b""
        self._stopping = False
        self._yaml_edited = False
        self._filling = False
        self.lines_read = 0
        self.presets: List[Preset] = []
        self._build()
        self._load_presets()
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.timeout.connect(lambda: self.plot.draw(self.history))
        self._update_buttons()
        self._watched = self.iface.mainWindow() if self.iface is not None else None
        if self._watched is not None:
            self._watched.installEventFilter(self)  # ask before QGIS closes under a running training

    # ------------------------------------------------------------------ widgets
    def _build(self) -> None:
        self.resize(980, 820)
        root = QVBoxLayout(self)
        top = QGroupBox("What to train")
        form = QFormLayout(top)
        row = QHBoxLayout()
        self.data_dir = QgsFileWidget()
        self.data_dir.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.data_dir.lineEdit().setPlaceholderText("a folder of scene folders (lr/, hr.tif, masks/) with split.json")
        self.synth_button = QPushButton("Make synthetic data...")
        self.synth_button.setToolTip("Write procedural scenes with exact building and road masks (python -m core.cli synth)")
        self.synth_button.clicked.connect(self._ask_synthetic)
        row.addWidget(self.data_dir, 1)
        row.addWidget(self.synth_button)
        form.addRow("Dataset folder", row)
        self.task_combo = QComboBox()
        for text, key in TASKS:
            self.task_combo.addItem(text, key)
        self.task_combo.setCurrentIndex(2)
        form.addRow("Task", self.task_combo)
        self.preset_combo = QComboBox()
        form.addRow("Recipe", self.preset_combo)
        self.preset_note = QLabel("")
        self.preset_note.setWordWrap(True)
        self.preset_note.setStyleSheet("color: gray")
        form.addRow(self.preset_note)
        root.addWidget(top)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_form(), "Settings")
        self.yaml_edit = QPlainTextEdit()
        self.yaml_edit.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.yaml_edit.textChanged.connect(self._yaml_changed)
        yaml_tab = QWidget()
        yl = QVBoxLayout(yaml_tab)
        self.yaml_note = QLabel("The configuration that will run. Edit it to change anything the form does not "
                                "show; once edited, the form is ignored until 'Back to the form'.")
        self.yaml_note.setWordWrap(True)
        yl.addWidget(self.yaml_note)
        yl.addWidget(self.yaml_edit, 1)
        self.yaml_reset = QPushButton("Back to the form")
        self.yaml_reset.clicked.connect(self._reset_yaml)
        yl.addWidget(self.yaml_reset, 0, Qt.AlignmentFlag.AlignRight)
        self.tabs.addTab(yaml_tab, "YAML")
        self.tabs.currentChanged.connect(lambda i: self._refresh_yaml() if i == 1 else None)
        from .area_panel import AreaPanel  # fine-tune on the analyst's own area (no HR image)

        self.area_panel = AreaPanel(self)
        self.tabs.addTab(self.area_panel, "Your area")

        watch = QWidget()
        wl = QVBoxLayout(watch)
        wl.setContentsMargins(0, 0, 0, 0)
        prow = QHBoxLayout()
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setFormat("%p%")
        self.eta_label = QLabel("")
        self.eta_label.setMinimumWidth(300)
        prow.addWidget(self.progress_bar, 1)
        prow.addWidget(self.eta_label)
        wl.addLayout(prow)
        self.plot = CurvePlot()
        wl.addWidget(self.plot, 3)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(2000)
        self.log_view.setPlaceholderText("The trainer's messages appear here.")
        wl.addWidget(self.log_view, 1)

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.tabs)
        split.addWidget(watch)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        root.addWidget(split, 1)

        buttons = QHBoxLayout()
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        buttons.addWidget(self.status_label, 1)
        self.start_button = QPushButton("Start")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the run in the output folder from its last finished epoch")
        self.cancel_button = QPushButton("Cancel training")
        self.close_button = QPushButton("Close")
        for b in (self.start_button, self.resume_button, self.cancel_button, self.close_button):
            buttons.addWidget(b)
        self.start_button.clicked.connect(lambda: self.start(resume=False))
        self.resume_button.clicked.connect(lambda: self.start(resume=True))
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.close)
        root.addLayout(buttons)

        self.task_combo.currentIndexChanged.connect(self._task_changed)
        self.preset_combo.currentIndexChanged.connect(self._preset_changed)
        self.out_dir.fileChanged.connect(lambda _p: self._update_buttons())

    def _build_form(self) -> QWidget:
        page = QWidget()
        cols = QHBoxLayout(page)
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
        self.selection_spin.setToolTip("Share of training patches drawn where buildings or roads are present (0 = off)")
        right.addRow("Patch selection share", self.selection_spin)
        self.seg_buildings = QgsFileWidget()
        self.seg_buildings.setFilter("Checkpoints (*.safetensors)")
        self.seg_roads = QgsFileWidget()
        self.seg_roads.setFilter("Checkpoints (*.safetensors)")
        right.addRow("Buildings network", self.seg_buildings)
        right.addRow("Roads network", self.seg_roads)
        cols.addLayout(right, 1)
        return page

    # ------------------------------------------------------------------ presets and the form
    def _load_presets(self) -> None:
        try:
            self.presets = load_presets()
        except Exception as exc:
            self.presets = []
            self._append_log(f"could not read the recipes: {exc}")
        self._task_changed()

    def _task_changed(self, *_args: Any) -> None:
        kind = self.task_combo.currentData()
        self.preset_combo.blockSignals(True)
        self.preset_combo.clear()
        for p in self.presets:
            if p.kind == kind:
                self.preset_combo.addItem(p.title, str(p.path))
                self.preset_combo.setItemData(self.preset_combo.count() - 1, str(p.path), Qt.ItemDataRole.ToolTipRole)
        # the small ("tiny") recipes first: they finish in minutes on a laptop
        tiny = [i for i in range(self.preset_combo.count()) if "tiny" in Path(self.preset_combo.itemData(i)).stem]
        self.preset_combo.setCurrentIndex(tiny[0] if tiny else 0)
        self.preset_combo.blockSignals(False)
        self.patch_label.setText("HR patch size (px)" if str(kind).startswith("seg") else "LR patch size (px)")
        self._preset_changed()

    def preset(self) -> Optional[Preset]:
        path = self.preset_combo.currentData()
        for p in self.presets:
            if str(p.path) == path:
                return p
        return None

    def select_preset(self, name: str) -> None:
        """Select the recipe whose file stem is ``name`` (switching the task when needed)."""
        for p in self.presets:
            if p.path.stem == name:
                self.task_combo.setCurrentIndex(self.task_combo.findData(p.kind))
                self.preset_combo.setCurrentIndex(self.preset_combo.findData(str(p.path)))
                return
        raise KeyError(f"no recipe named {name}")

    def _preset_changed(self, *_args: Any) -> None:
        p = self.preset()
        if p is None:
            self.preset_note.setText("No recipe for this task in resources/configs.")
            return
        d = p.data
        self._filling = True
        try:
            data = d.get("data") or {}
            self.epochs_spin.setValue(int(d.get("epochs") or 1))
            seg = p.kind.startswith("seg")
            self.patch_spin.setValue(int(data.get("seg_patch" if seg else "lr_patch") or 32))
            self.batch_spin.setValue(int(data.get("batch_size") or 1))
            self.samples_spin.setValue(int(data.get("samples_per_epoch") or 1))
            self.lr_spin.setValue(float(d.get("lr") or 1e-4))
            self.device_combo.setCurrentIndex(max(0, self.device_combo.findData(d.get("device") or "auto")))
            self.out_dir.setFilePath(str(self._default_out_dir(p)))
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
                widget.setFilePath(self._seg_default(nets.get(target), target))
            for w in (self.seg_buildings, self.seg_roads, self.selection_spin, self.weighting_combo,
                      self.loss_table):
                w.setEnabled(not seg)
        finally:
            self._filling = False
        notes = [p.path.relative_to(PLUGIN_ROOT).as_posix()]
        init = (d.get("model") or {}).get("init_from")
        if init and str(init).startswith("run:"):
            notes.append("this recipe fine-tunes another run's network: choose its checkpoint in 'Fine-tune from'")
        needs = [t for t in ("buildings", "roads") if any(x.get("name") == f"dice_{t}"
                                                           for x in (d.get("loss") or {}).get("terms") or [])]
        if needs:
            notes.append("task-driven: needs the " + " and ".join(needs) + " segmentation network(s)")
        self.preset_note.setText("; ".join(notes))
        self._yaml_edited = False
        self._refresh_yaml()

    def _default_out_dir(self, p: Preset) -> Path:
        """``<dataset's parent>/runs/<recipe name>``, or ``~/s2sr_runs/<recipe name>`` without a dataset."""
        name = str(p.data.get("name") or p.path.stem)
        data = self.data_dir.filePath().strip()
        return (Path(data).parent / "runs" / name) if data else (Path.home() / "s2sr_runs" / name)

    def _seg_default(self, value: Optional[str], target: str) -> str:
        """The recipe's network when it exists, else the one last used in the dock."""
        if value and not str(value).startswith("run:"):
            path = Path(value) if Path(value).is_absolute() else PLUGIN_ROOT / value
            if path.is_file():
                return str(path)
        try:
            from .dock import ModelStore

            chosen = ModelStore().choice(f"seg_{target}")
            if chosen and Path(chosen).is_file():
                return chosen
        except Exception:
            pass
        return ""

    def _add_loss_row(self, name: str, weight: Optional[float], proportion: Optional[float]) -> None:
        r = self.loss_table.rowCount()
        self.loss_table.insertRow(r)
        combo = QComboBox()
        kind = self.task_combo.currentData()
        combo.addItems(SEG_LOSSES if str(kind).startswith("seg") else SR_LOSSES)
        if combo.findText(name) < 0:
            combo.addItem(name)
        combo.setCurrentText(name)
        self.loss_table.setCellWidget(r, 0, combo)
        self.loss_table.setItem(r, 1, QTableWidgetItem("" if weight is None else f"{weight:g}"))
        self.loss_table.setItem(r, 2, QTableWidgetItem("" if proportion is None else f"{proportion:g}"))

    @staticmethod
    def _number(item: Optional[QTableWidgetItem], what: str) -> Optional[float]:
        text = item.text().strip() if item is not None else ""
        if not text:
            return None
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{what}: '{text}' is not a number") from None

    def form_config(self) -> Dict[str, Any]:
        """The chosen recipe with the form's values applied (a plain mapping)."""
        import copy

        p = self.preset()
        if p is None:
            raise ValueError("choose a recipe")
        d = copy.deepcopy(p.data)
        seg = p.kind.startswith("seg")
        data = d.setdefault("data", {})
        d["epochs"] = self.epochs_spin.value()
        data["seg_patch" if seg else "lr_patch"] = self.patch_spin.value()
        data["batch_size"] = self.batch_spin.value()
        data["samples_per_epoch"] = self.samples_spin.value()
        d["lr"] = float(self.lr_spin.value())
        d["device"] = self.device_combo.currentData()
        d["out_dir"] = self.out_dir.filePath().strip()
        if self.data_dir.filePath().strip():
            data["root"] = self.data_dir.filePath().strip()
        init = self.init_from.filePath().strip()
        d.setdefault("model", {})["init_from"] = init or None
        if not seg:
            terms = []
            for r in range(self.loss_table.rowCount()):
                name = self.loss_table.cellWidget(r, 0).currentText()
                terms.append({"name": name,
                              "weight": self._number(self.loss_table.item(r, 1), f"weight of {name}"),
                              "proportion": self._number(self.loss_table.item(r, 2), f"proportion of {name}")})
            loss = d.setdefault("loss", {})
            loss["terms"] = terms
            loss["weighting"] = self.weighting_combo.currentData()
            data.setdefault("selection", {})["share"] = float(self.selection_spin.value())
            nets = d.setdefault("seg_nets", {})
            nets["buildings"] = self.seg_buildings.filePath().strip() or None
            nets["roads"] = self.seg_roads.filePath().strip() or None
        return d

    def _refresh_yaml(self) -> None:
        if self._yaml_edited:
            return
        import yaml

        try:
            text = yaml.safe_dump(self.form_config(), sort_keys=False)
        except ValueError as exc:
            text = f"# {exc}\n"
        self._filling = True
        self.yaml_edit.setPlainText(text)
        self._filling = False

    def _yaml_changed(self) -> None:
        if self._filling:
            return
        self._yaml_edited = True
        self.yaml_note.setText("<b>Edited:</b> this YAML runs as it is; the Settings tab is ignored.")

    def _reset_yaml(self) -> None:
        self._yaml_edited = False
        self.yaml_note.setText("The configuration that will run.")
        self._refresh_yaml()

    def final_config(self) -> Dict[str, Any]:
        """What will run: the edited YAML, or the form."""
        if self._yaml_edited:
            import yaml

            try:
                data = yaml.safe_load(self.yaml_edit.toPlainText())
            except yaml.YAMLError as exc:
                raise ValueError(f"the YAML tab is not valid YAML: {exc}") from None
            if not isinstance(data, dict):
                raise ValueError("the YAML tab must hold a mapping of settings")
            return data
        return self.form_config()

    def _check(self, data: Dict[str, Any]) -> None:
        """Refuse, in plain words, what would only fail after the trainer started."""
        from ..core.training.config import config_from_dict

        root = (data.get("data") or {}).get("root")
        if not root:
            raise ValueError("choose a dataset folder (or make a synthetic one)")
        if not Path(root).is_dir():
            raise ValueError(f"the dataset folder {root} does not exist")
        if not data.get("out_dir"):
            raise ValueError("choose an output folder for the run")
        init = (data.get("model") or {}).get("init_from")
        if init and str(init).startswith("run:"):
            raise ValueError("this recipe fine-tunes another network: choose its checkpoint in 'Fine-tune from'")
        if init and not Path(init).is_file():
            raise ValueError(f"the checkpoint to fine-tune from does not exist: {init}")
        terms = (data.get("loss") or {}).get("terms") or []
        for target in ("buildings", "roads"):
            if any(t.get("name") == f"dice_{target}" for t in terms):
                net = (data.get("seg_nets") or {}).get(target)
                if not net or str(net).startswith("run:"):
                    raise ValueError(f"the {target} Dice loss needs a trained {target} segmentation network: "
                                     f"choose it in '{target.capitalize()} network' (train one with the "
                                     f"'Segmentation: {target}' task first)")
                path = Path(net) if Path(net).is_absolute() else PLUGIN_ROOT / net
                if not path.is_file():
                    raise ValueError(f"the {target} segmentation network {net} does not exist")
        config_from_dict(data, source="the training settings")

    # ------------------------------------------------------------------ synthetic data
    def _ask_synthetic(self) -> None:
        from qgis.PyQt.QtWidgets import QFileDialog

        folder = QFileDialog.getExistingDirectory(self, "Folder for the synthetic dataset (an empty one)")
        if not folder:
            return
        scenes, ok = QInputDialog.getInt(self, "Synthetic dataset", "Number of scenes", 12, 3, 1000)
        if ok:
            self.make_synthetic(folder, scenes=scenes)

    def make_synthetic(self, folder: str, scenes: int = 12, size: int = 192, frames: int = 9) -> QProcess:
        """Write a synthetic dataset with the headless tool; the folder is filled in when it ends."""
        proc = QProcess(self)
        proc.setProgram(python_interpreter())
        proc.setArguments(["-m", "core.cli", "synth", "--out", str(folder), "--scenes", str(scenes),
                           "--size", str(size), "--frames", str(frames)])
        proc.setWorkingDirectory(str(PLUGIN_ROOT))
        proc.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        proc.finished.connect(lambda code, _status, f=folder: self._synth_done(code, f))
        self.synth_process = proc
        self.synth_button.setEnabled(False)
        self._append_log(f"making {scenes} synthetic scene(s) in {folder} ...")
        proc.start()
        return proc

    def _synth_done(self, code: int, folder: str) -> None:
        out = bytes(self.synth_process.readAll()).decode("utf-8", "replace") if self.synth_process else ""
        last = [ln for ln in out.replace("\r", "\n").splitlines() if ln.strip()]
        self.synth_button.setEnabled(True)
        if code == 0:
            self.data_dir.setFilePath(folder)
            self._append_log(last[-1] if last else f"synthetic dataset written to {folder}")
            if self.preset() is not None:
                self.out_dir.setFilePath(str(self._default_out_dir(self.preset())))
        else:
            self._append_log("making the synthetic dataset failed: " + (last[-1] if last else f"exit code {code}"))
        self.synth_process = None

    # ------------------------------------------------------------------ running
    def is_running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def _ask_start_over(self, folder: Path) -> Optional[bool]:
        """True: start over; False: resume; None: do nothing (asked only when the folder holds a run)."""
        box = QMessageBox(QMessageBox.Icon.Question, "Run folder in use",
                          f"{folder} already holds a training run.", parent=self)
        box.setInformativeText("Resume it from its last finished epoch, or start over (its files are replaced)?")
        resume = box.addButton("Resume", QMessageBox.ButtonRole.AcceptRole)
        over = box.addButton("Start over", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        if box.clickedButton() is resume:
            return False
        if box.clickedButton() is over:
            return True
        return None

    def start(self, resume: bool = False) -> bool:
        """Write the configuration into the run folder and launch the trainer."""
        if self.is_running():
            return False
        try:
            data = self.final_config()
            self._check(data)
        except ValueError as exc:
            self._status(str(exc), error=True)
            return False
        import yaml

        run_dir = Path(data["out_dir"])
        if not run_dir.is_absolute():
            run_dir = PLUGIN_ROOT / run_dir
        fresh = not resume
        if not resume and (run_dir / "last.pt").is_file():
            answer = self._ask_start_over(run_dir)
            if answer is None:
                return False
            fresh = answer
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            self.config_path = run_dir / REQUESTED_CONFIG
            data["out_dir"] = str(run_dir)
            self.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        except OSError as exc:
            self._status(f"cannot write to {run_dir}: {exc.strerror or exc}", error=True)
            return False
        args = ["-m", "core.cli", "train", str(self.config_path), "--progress", "jsonl"]
        if fresh:
            args.append("--no-resume")
        return self.launch(args, run_dir, fresh)

    def launch(self, args: List[str], run_dir: Path, fresh: bool = True, what: str = "training") -> bool:
        """Run ``python <args>`` (a headless command printing jsonl events) and follow it here.

        Used by :meth:`start` and by the "Your area" tab (``core.cli area run``).
        """
        if self.is_running():
            return False
        self.run_dir = Path(run_dir)
        self.history = TrainHistory()
        self.plot.draw(self.history)
        self.progress_bar.setValue(0)
        self.eta_label.setText("starting (loading PyTorch)...")
        self._buffer = b""
        self._stopping = False
        proc = QProcess(self)
        proc.setProgram(python_interpreter())
        proc.setArguments(args)
        proc.setWorkingDirectory(str(PLUGIN_ROOT))
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        proc.setProcessEnvironment(env)
        proc.readyReadStandardOutput.connect(self._read_stdout)
        proc.readyReadStandardError.connect(self._read_stderr)
        proc.finished.connect(self._finished)
        proc.errorOccurred.connect(self._process_error)
        self.process = proc
        self._append_log(("resuming" if not fresh else "starting") + f": {proc.program()} {' '.join(args)}")
        log(f"{what} started in {run_dir}")
        proc.start()
        self._status(f"{what}..." if fresh else f"{what}: resuming...")
        self._update_buttons()
        return True

    def _read_stdout(self) -> None:
        if self.process is None:
            return
        self._buffer += bytes(self.process.readAllStandardOutput())
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            text = raw.decode("utf-8", "replace").strip()
            if not text:
                continue
            try:
                event = json.loads(text)
            except json.JSONDecodeError:
                self._append_log(text)
                continue
            if isinstance(event, dict):
                self.lines_read += 1
                self.handle_event(event)

    def _read_stderr(self) -> None:
        if self.process is None:
            return
        text = bytes(self.process.readAllStandardError()).decode("utf-8", "replace")
        for line in text.replace("\r", "\n").splitlines():
            line = line.rstrip()
            if line and "it/s]" not in line and "s/it]" not in line:
                self._append_log(line)

    def handle_event(self, event: Dict[str, Any]) -> None:
        """Apply one trainer event to the progress bar, curves and log (also used to replay a run)."""
        self.history.feed(event)
        kind = event.get("event")
        if kind == "step":
            h = self.history
            self.progress_bar.setValue(int(1000 * h.fraction))
            self.eta_label.setText(f"epoch {h.epoch}/{h.epochs_total}, step {h.step}/{h.steps}  "
                                   f"{format_eta(h.eta_s)}")
            if not self._redraw_timer.isActive():
                self._redraw_timer.start(700)
        elif kind == "epoch":
            val = ", ".join(f"{k} {v:.4g}" for k, v in (event.get("val") or {}).items()
                            if isinstance(v, (int, float)) and k != "scenes")
            w = ", ".join(f"{k} {v:.3g}" for k, v in (event.get("next_weights") or {}).items())
            star = "  (best so far)" if event.get("improved") else ""
            self._append_log(f"epoch {event.get('epoch')}/{event.get('epochs')}: "
                             f"loss {((event.get('train') or {}).get('total') or 0):.4g}"
                             + (f" | val {val}" if val else "") + (f" | next weights {w}" if w else "") + star)
            self.progress_bar.setValue(int(1000 * self.history.fraction))
            self.plot.draw(self.history)
        elif kind == "log":
            self._append_log(str(event.get("message", "")))
        elif kind == "done":
            self.progress_bar.setValue(1000)
            self.eta_label.setText("finished")
            self.plot.draw(self.history)
        elif kind == "error":
            self._append_log(f"error: {event.get('message')}")
        self.eventReceived.emit(event)

    def _finished(self, code: int, _status: Any) -> None:
        self._read_stdout()
        h = self.history
        if self._stopping:
            kept = " The last finished epoch is kept: Resume continues from it." \
                if self.run_dir and (self.run_dir / "last.pt").is_file() else ""
            self._status("training cancelled." + kept)
            self._append_log("cancelled" + (f"; {kept.strip()}" if kept else ""))
        elif code == 0 and h.checkpoint:
            self._status(f"done: {h.checkpoint}")
            self._announce(h.checkpoint)
        else:
            reason = h.error or f"the trainer exited with code {code}; see the log above"
            self._status(f"training stopped: {reason}", error=True)
            notify(self.iface, "Training", f"stopped: {reason}", Qgis.MessageLevel.Critical)
        self.eta_label.setText("")
        self._update_buttons()

    def _process_error(self, error: Any) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._status(f"could not start {python_interpreter()}: set the Python interpreter in the plugin's "
                         "dependency settings", error=True)
            self._update_buttons()

    def _announce(self, checkpoint: str) -> None:
        """Make the new checkpoint known: remembered for every dock, and listed in the open one."""
        from .dock import SRDockWidget, remember_checkpoint

        remember_checkpoint(checkpoint)
        self.checkpointReady.emit(checkpoint)
        window = self.iface.mainWindow() if self.iface is not None else None
        for dock in (window.findChildren(SRDockWidget) if window is not None else []):
            dock.add_checkpoint(checkpoint)
        notify(self.iface, "Training", f"new checkpoint: {checkpoint}", Qgis.MessageLevel.Success)

    def cancel(self) -> None:
        """Stop the trainer: terminate, then kill if it does not stop within a few seconds."""
        if not self.is_running():
            return
        self._stopping = True
        self._status("stopping...")
        proc = self.process
        proc.terminate()
        QTimer.singleShot(STOP_GRACE_MS, lambda p=proc: p.kill() if p.state() != QProcess.ProcessState.NotRunning
                          else None)

    def stop_and_wait(self, timeout_ms: int = STOP_GRACE_MS) -> None:
        if not self.is_running():
            return
        self._stopping = True
        self.process.terminate()
        if not self.process.waitForFinished(timeout_ms):
            self.process.kill()
            self.process.waitForFinished(timeout_ms)

    def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 - Qt API
        """QGIS's main window is closing: ask first while training runs (No keeps QGIS open)."""
        if obj is self._watched and event.type() == QEvent.Type.Close and self.is_running():
            if not self.confirm_stop():
                event.ignore()
                return True
            self.stop_and_wait()
        return super().eventFilter(obj, event)

    def shutdown(self) -> None:
        """Stop any child process without asking (plugin unload)."""
        if self._watched is not None:
            try:
                self._watched.removeEventFilter(self)
            except RuntimeError:
                pass
            self._watched = None
        self.stop_and_wait()
        if self.synth_process is not None and self.synth_process.state() != QProcess.ProcessState.NotRunning:
            self.synth_process.kill()
            self.synth_process.waitForFinished(STOP_GRACE_MS)

    def confirm_stop(self) -> bool:
        """Asked before closing while training runs."""
        answer = QMessageBox.question(
            self, "Training in progress",
            "A training run is in progress. Stop it? The last finished epoch is kept and Resume in the "
            "training dialog continues it.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        if self.is_running():
            if not self.confirm_stop():
                event.ignore()
                return
            self.stop_and_wait()
        super().closeEvent(event)

    def reject(self) -> None:  # Esc goes through closeEvent's question too
        self.close()

    # ------------------------------------------------------------------ little helpers
    def _append_log(self, text: str) -> None:
        self.log_view.appendPlainText(text)

    def _status(self, text: str, error: bool = False) -> None:
        self.status_label.setText(f"<span style='color:#b42318'>{text}</span>" if error else text)
        if error:
            self._append_log(f"error: {text}")

    def _update_buttons(self) -> None:
        running = self.is_running()
        out = Path(self.out_dir.filePath()) if self.out_dir.filePath() else None
        can_resume = out is not None and (out / "last.pt").is_file()
        self.start_button.setEnabled(not running)
        self.resume_button.setEnabled(not running and can_resume)
        self.cancel_button.setEnabled(running)
        self.synth_button.setEnabled(not running and self.synth_process is None)

    def replay(self, events: List[Dict[str, Any]]) -> None:
        """Show a recorded run (a list of trainer events), e.g. for documentation."""
        self.history = TrainHistory()
        for event in events:
            self.handle_event(event)
        self.plot.draw(self.history)


def read_events(path: os.PathLike) -> List[Dict[str, Any]]:
    """Trainer events from a ``--progress jsonl`` log file."""
    out: List[Dict[str, Any]] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


__all__ = ["TrainDialog", "TrainHistory", "CurvePlot", "Preset", "load_presets", "python_interpreter",
           "read_events", "format_eta"]
