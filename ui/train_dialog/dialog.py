"""Training dialog: configure a recipe, run the headless trainer as a child process, watch it learn.

The form edits a shipped recipe (``presets``); the YAML tab shows exactly what
will run and may be edited; the "Your area" tab (``area_panel``) fine-tunes on
the analyst's own area. Runs are ``python -m core.cli train CONFIG --progress
jsonl`` in a child process (``process``); its JSON events feed one
:class:`TrainHistory` (``history``) that drives the progress bar with ETA, the
live curves (``plot``) and the log. The trainer saves ``last.pt`` after every
epoch, so Cancel keeps the last finished epoch and Resume continues in the
same run folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from qgis.core import Qgis
from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import QEvent, QProcess, Qt, QTimer, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..dock import SRDockWidget, remember_checkpoint
from ..install.deps import DepsError
from ..log import log, notify
from .area_panel import AreaPanel
from .form import FORM_WIDGETS, RecipeForm
from .history import TrainHistory, format_eta
from .plot import CurvePlot
from .presets import PLUGIN_ROOT, Preset, load_presets, task_choices
from .process import STOP_GRACE_MS, JsonlProcess, module_command, split_module_args
from .recipe import check_config, default_out_dir, recipe_notes, resolve
from .shipped import ShippedStart

__all__ = ["TrainDialog", "REQUESTED_CONFIG"]

REQUESTED_CONFIG = "requested_config.yaml"


class TrainDialog(QDialog):
    """Configure and launch a training run; shows progress, curves and the log.

    ``checkpointReady(path)`` is emitted when a run ends with a checkpoint; the
    dock lists it from then on. ``eventReceived(dict)`` relays every trainer event.
    """

    checkpointReady = pyqtSignal(str)
    eventReceived = pyqtSignal(dict)

    def __init__(self, iface: Any = None, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.iface = iface
        self.setWindowTitle("Train a model: task-driven super-resolution")
        self.setObjectName("S2TaskDrivenSRTrainDialog")
        self.runner = JsonlProcess(self)
        self.runner.eventRead.connect(self.handle_event)
        self.runner.textRead.connect(self.append_log)
        self.runner.ended.connect(self._finished)
        self.runner.failedToStart.connect(self._failed_to_start)
        self.synth_process: Optional[QProcess] = None
        self.history = TrainHistory()
        self.run_dir: Optional[Path] = None
        self.config_path: Optional[Path] = None
        self._yaml_edited = False
        self._filling = False
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

    @property
    def process(self) -> Optional[QProcess]:
        """The trainer's process (None before the first run)."""
        return self.runner.process

    @property
    def lines_read(self) -> int:
        """JSON events read from the trainer so far."""
        return self.runner.lines_read

    # ------------------------------------------------------------------ widgets
    def _build(self) -> None:
        self.resize(980, 820)
        root = QVBoxLayout(self)
        root.addWidget(self._top_box())
        self.tabs = QTabWidget()
        self.form = RecipeForm()
        for name in FORM_WIDGETS:  # the form's widgets as the dialog's own (scripts and tests use them)
            setattr(self, name, getattr(self.form, name))
        self.tabs.addTab(self.form, "Settings")
        self.tabs.addTab(self._yaml_tab(), "YAML")
        self.tabs.currentChanged.connect(lambda i: self._refresh_yaml() if i == 1 else None)
        self.area_panel = AreaPanel(self)  # fine-tune on the analyst's own area (no HR image)
        self.tabs.addTab(self.area_panel, "Your area")
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.tabs)
        split.addWidget(self._watch_box())
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

    def _top_box(self) -> QGroupBox:
        top = QGroupBox("What to train")
        form = QFormLayout(top)
        row = QHBoxLayout()
        self.data_dir = QgsFileWidget()
        self.data_dir.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.data_dir.lineEdit().setPlaceholderText("a folder of scene folders (lr/, hr.tif, masks/) with split.json")
        self.synth_button = QPushButton("Make synthetic data...")
        self.synth_button.setToolTip("Write procedural scenes with exact building and road masks "
                                     "(python -m core.cli synth)")
        self.synth_button.clicked.connect(self._ask_synthetic)
        row.addWidget(self.data_dir, 1)
        row.addWidget(self.synth_button)
        form.addRow("Dataset folder", row)
        self.task_combo = QComboBox()  # filled from the recipes (see _load_presets)
        form.addRow("Task", self.task_combo)
        self.preset_combo = QComboBox()
        form.addRow("Recipe", self.preset_combo)
        self.preset_note = QLabel("")
        self.preset_note.setWordWrap(True)
        self.preset_note.setStyleSheet("color: gray")
        form.addRow(self.preset_note)
        self.shipped_start = ShippedStart(self)  # a shipped network and the recipe that made it
        form.addRow("Start from", self.shipped_start)
        return top

    def _yaml_tab(self) -> QWidget:
        self.yaml_edit = QPlainTextEdit()
        self.yaml_edit.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.yaml_edit.textChanged.connect(self._yaml_changed)
        tab = QWidget()
        layout = QVBoxLayout(tab)
        self.yaml_note = QLabel("The configuration that will run. Edit it to change anything the form does not "
                                "show; once edited, the form is ignored until 'Back to the form'.")
        self.yaml_note.setWordWrap(True)
        layout.addWidget(self.yaml_note)
        layout.addWidget(self.yaml_edit, 1)
        self.yaml_reset = QPushButton("Back to the form")
        self.yaml_reset.clicked.connect(self._reset_yaml)
        layout.addWidget(self.yaml_reset, 0, Qt.AlignmentFlag.AlignRight)
        return tab

    def _watch_box(self) -> QWidget:
        watch = QWidget()
        layout = QVBoxLayout(watch)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setFormat("%p%")
        self.eta_label = QLabel("")
        self.eta_label.setMinimumWidth(300)
        row.addWidget(self.progress_bar, 1)
        row.addWidget(self.eta_label)
        layout.addLayout(row)
        self.plot = CurvePlot()
        layout.addWidget(self.plot, 3)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(2000)
        self.log_view.setPlaceholderText("The trainer's messages appear here.")
        layout.addWidget(self.log_view, 1)
        return watch

    # ------------------------------------------------------------------ presets and the form
    def _load_presets(self) -> None:
        try:
            self.presets = load_presets()
        except Exception as exc:
            self.presets = []
            self.append_log(f"could not read the recipes: {exc}")
        self.task_combo.blockSignals(True)
        self.task_combo.clear()
        for text, key in task_choices(self.presets):
            self.task_combo.addItem(text, key)
        sr = [i for i in range(self.task_combo.count()) if not str(self.task_combo.itemData(i)).startswith("seg_")]
        self.task_combo.setCurrentIndex(sr[0] if sr else 0)  # super-resolution first: the study's subject
        self.task_combo.blockSignals(False)
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
        self.form.set_kind(str(kind))
        self._preset_changed()

    def preset(self) -> Optional[Preset]:
        path = self.preset_combo.currentData()
        return next((p for p in self.presets if str(p.path) == path), None)

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
        self._filling = True
        try:
            self.form.fill(p, self.data_dir.filePath())
        finally:
            self._filling = False
        self.preset_note.setText("; ".join(recipe_notes(p)))
        self._yaml_edited = False
        self._refresh_yaml()

    def form_config(self) -> Dict[str, Any]:
        """The chosen recipe with the form's values applied (a plain mapping)."""
        p = self.preset()
        if p is None:
            raise ValueError("choose a recipe")
        return self.form.apply(p, self.data_dir.filePath())

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

    # ------------------------------------------------------------------ synthetic data
    def _ask_synthetic(self) -> None:
        from qgis.PyQt.QtWidgets import QFileDialog

        folder = QFileDialog.getExistingDirectory(self, "Folder for the synthetic dataset (an empty one)")
        if not folder:
            return
        scenes, ok = QInputDialog.getInt(self, "Synthetic dataset", "Number of scenes", 12, 3, 1000)
        if ok:
            self.make_synthetic(folder, scenes=scenes)

    def make_synthetic(self, folder: str, scenes: int = 12, size: int = 192, frames: int = 9) -> Optional[QProcess]:
        """Write a synthetic dataset with the headless tool; the folder is filled in when it ends."""
        try:  # through the plugin's package folder, as training (issue 21)
            command = module_command("core.cli", ["synth", "--out", str(folder), "--scenes", str(scenes),
                                                  "--size", str(size), "--frames", str(frames)])
        except (DepsError, ValueError) as exc:  # no interpreter found
            self.show_status(f"{exc}", error=True)
            return None
        proc = QProcess(self)
        proc.setProgram(command[0])
        proc.setArguments(command[1:])
        proc.setWorkingDirectory(str(PLUGIN_ROOT))
        proc.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        proc.finished.connect(lambda code, _status, f=folder: self._synth_done(code, f))
        self.synth_process = proc
        self.synth_button.setEnabled(False)
        self.append_log(f"making {scenes} synthetic scene(s) in {folder} ...")
        proc.start()
        return proc

    def _synth_done(self, code: int, folder: str) -> None:
        out = bytes(self.synth_process.readAll()).decode("utf-8", "replace") if self.synth_process else ""
        last = [ln for ln in out.replace("\r", "\n").splitlines() if ln.strip()]
        self.synth_button.setEnabled(True)
        if code == 0:
            self.data_dir.setFilePath(folder)
            self.append_log(last[-1] if last else f"synthetic dataset written to {folder}")
            if self.preset() is not None:
                self.out_dir.setFilePath(str(default_out_dir(self.preset(), self.data_dir.filePath())))
        else:
            self.append_log("making the synthetic dataset failed: " + (last[-1] if last else f"exit code {code}"))
        self.synth_process = None

    # ------------------------------------------------------------------ running
    def is_running(self) -> bool:
        return self.runner.is_running()

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
            check_config(data)
        except ValueError as exc:
            self.show_status(str(exc), error=True)
            return False
        import yaml

        run_dir = resolve(str(data["out_dir"]))
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
            self.show_status(f"cannot write to {run_dir}: {exc.strerror or exc}", error=True)
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
        try:  # QGIS's Python, seeing the plugin's package folder as QGIS does (issue 21)
            command = module_command(*split_module_args(args))
        except (DepsError, ValueError) as exc:  # no interpreter found
            self.show_status(f"{exc}", error=True)
            return False
        self.run_dir = Path(run_dir)
        self.history = TrainHistory()
        self.plot.draw(self.history)
        self.progress_bar.setValue(0)
        self.eta_label.setText("starting (loading PyTorch)...")
        self.append_log(("resuming" if not fresh else "starting") + f": {command[0]} {' '.join(args)}")
        log(f"{what} started in {run_dir}")
        self.runner.start(command[0], command[1:], PLUGIN_ROOT)
        self.show_status(f"{what}..." if fresh else f"{what}: resuming...")
        self._update_buttons()
        return True

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
            self.append_log(f"epoch {event.get('epoch')}/{event.get('epochs')}: "
                             f"loss {((event.get('train') or {}).get('total') or 0):.4g}"
                             + (f" | val {val}" if val else "") + (f" | next weights {w}" if w else "") + star)
            self.progress_bar.setValue(int(1000 * self.history.fraction))
            self.plot.draw(self.history)
        elif kind == "log":
            self.append_log(str(event.get("message", "")))
        elif kind == "done":
            self.progress_bar.setValue(1000)
            self.eta_label.setText("finished")
            self.plot.draw(self.history)
        elif kind == "error":
            self.append_log(f"error: {event.get('message')}")
        self.eventReceived.emit(event)

    def _finished(self, code: int, stopped: bool) -> None:
        h = self.history
        if stopped:
            kept = " The last finished epoch is kept: Resume continues from it." \
                if self.run_dir and (self.run_dir / "last.pt").is_file() else ""
            self.show_status("training cancelled." + kept)
            self.append_log("cancelled" + (f"; {kept.strip()}" if kept else ""))
        elif code == 0 and h.checkpoint:
            self.show_status(f"done: {h.checkpoint}")
            self._announce(h.checkpoint)
        else:
            reason = h.error or f"the trainer exited with code {code}; see the log above"
            self.show_status(f"training stopped: {reason}", error=True)
            notify(self.iface, "Training", f"stopped: {reason}", Qgis.MessageLevel.Critical)
        self.eta_label.setText("")
        self._update_buttons()

    def _failed_to_start(self, message: str) -> None:
        self.show_status(message, error=True)
        self._update_buttons()

    def _announce(self, checkpoint: str) -> None:
        """Make the new checkpoint known: remembered for every dock, and listed in the open one."""
        remember_checkpoint(checkpoint)
        self.checkpointReady.emit(checkpoint)
        window = self.iface.mainWindow() if self.iface is not None else None
        for dock in (window.findChildren(SRDockWidget) if window is not None else []):
            dock.add_checkpoint(checkpoint)
        notify(self.iface, "Training", f"new checkpoint: {checkpoint}", Qgis.MessageLevel.Success)

    def cancel(self) -> None:
        """Stop the trainer: terminate, then kill if it does not stop within a few seconds."""
        if self.is_running():
            self.show_status("stopping...")
            self.runner.cancel(STOP_GRACE_MS)

    def stop_and_wait(self, timeout_ms: int = STOP_GRACE_MS) -> None:
        self.runner.stop_and_wait(timeout_ms)

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
        self.plot.shutdown()
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

    def may_close(self) -> bool:
        """True when the dialog may go: nothing runs, or the analyst agreed to stop it (then it is stopped)."""
        if self.is_running():
            if not self.confirm_stop():
                return False
            self.stop_and_wait()
        return True

    def reject(self) -> None:
        """Close, Esc and ``close()`` all end here (QDialog's closeEvent calls reject while visible).

        It must not call ``close()``: that re-enters closeEvent, which Qt drops while a close is under way,
        and the dialog stayed open (issue 21).
        """
        if self.may_close():
            super().reject()

    # ------------------------------------------------------------------ little helpers
    def append_log(self, text: str) -> None:
        """One line in the dialog's log (the area tab writes its summary here too)."""
        self.log_view.appendPlainText(text)


    def show_status(self, text: str, error: bool = False) -> None:
        """The status line under the tabs (red, and logged, for an error)."""
        self.status_label.setText(f"<span style='color:#b42318'>{text}</span>" if error else text)
        if error:
            self.append_log(f"error: {text}")


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
        self.plot.draw(self.history, wait=True)  # shown when this returns (the curves render off the UI thread)
