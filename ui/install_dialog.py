# SPDX-License-Identifier: GPL-2.0-or-later
"""The "Install dependencies" dialog: pip, for QGIS's own Python, into a folder the plugin owns.

Why a dialog and not an automatic install: installing software is the
analyst's decision (PyTorch is a download of hundreds of megabytes), so the
dialog first says what is missing, what pip will fetch, from where to where
and with which exact command, and runs nothing before the Install button is
pressed. pip runs in a ``QProcess``, so QGIS stays responsive, its output
streams into the dialog, Cancel stops it, and every ending (done, failed,
cancelled) is told in plain words, never as a traceback.
"""

from __future__ import annotations

import importlib
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence

from qgis.PyQt.QtCore import QObject, QProcess, QProcessEnvironment, Qt, QTimer, pyqtSignal
from qgis.PyQt.QtGui import QFont
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .deps import (
    REQUIREMENTS,
    TORCH_CPU_INDEX,
    DepsError,
    DepsReport,
    Requirement,
    activate_deps_dir,
    check_dependencies,
    numpy_constraints,
    pip_command,
    plugin_deps_dir,
    python_interpreter,
)

#: How long pip gets to stop after Cancel before it is killed.
TERMINATE_GRACE_MS = 3000
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"


@dataclass
class PipOutcome:
    """How a pip run ended: ``status`` is ``succeeded``, ``failed`` or ``cancelled``."""

    status: str
    exit_code: Optional[int]
    message: str
    output: str = ""

    @property
    def ok(self) -> bool:
        return self.status == SUCCEEDED


def command_line(command: Sequence[str]) -> str:
    """The command as the analyst would type it on this system (to copy into a terminal)."""
    if sys.platform.startswith("win"):
        return subprocess.list2cmdline(list(command))
    return shlex.join(list(command))


class PipRunner(QObject):
    """Runs one command (pip) without blocking QGIS; emits its output and one :class:`PipOutcome`."""

    output = pyqtSignal(str)
    finished = pyqtSignal(object)

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.process: Optional[QProcess] = None
        self.outcome: Optional[PipOutcome] = None
        self._chunks: List[str] = []
        self._cancelled = False
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self.kill)

    def is_running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def start(self, command: Sequence[str]) -> None:
        if self.is_running():
            raise DepsError("an installation is already running")
        self.outcome = None
        self._chunks = []
        self._cancelled = False
        proc = QProcess(self)
        proc.setProgram(str(command[0]))
        proc.setArguments([str(a) for a in command[1:]])
        proc.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        env.insert("PYTHONIOENCODING", "utf-8")
        proc.setProcessEnvironment(env)
        proc.readyReadStandardOutput.connect(self._read)
        proc.finished.connect(self._finished)
        proc.errorOccurred.connect(self._error)
        self.process = proc
        proc.start()

    def cancel(self) -> None:
        """Ask pip to stop, and kill it if it has not after a short grace period."""
        if not self.is_running():
            return
        self._cancelled = True
        self.process.terminate()
        self._kill_timer.start(TERMINATE_GRACE_MS)

    def wait(self, msecs: int = 30000) -> bool:
        """Block until the process ends (plugin unload); True when it did."""
        if self.process is None:
            return True
        return self.process.state() == QProcess.ProcessState.NotRunning or self.process.waitForFinished(msecs)

    def kill(self) -> None:
        """Stop the process at once (no grace period)."""
        if self.is_running():
            self.process.kill()

    def _read(self) -> None:
        if self.process is None:
            return
        text = bytes(self.process.readAllStandardOutput()).decode("utf-8", errors="replace")
        if text:
            self._chunks.append(text)
            self.output.emit(text)

    def _error(self, error: Any) -> None:
        if error == QProcess.ProcessError.FailedToStart and self.outcome is None:
            program = self.process.program() if self.process is not None else "?"
            self._emit(PipOutcome(FAILED, None, f"could not start {program}: {self.process.errorString()}. "
                                                "Choose QGIS's Python interpreter and try again."))

    def _finished(self, exit_code: int, exit_status: Any) -> None:
        self._kill_timer.stop()
        self._read()
        text = "".join(self._chunks)
        if self._cancelled:
            outcome = PipOutcome(CANCELLED, exit_code, "installation cancelled", text)
        elif exit_status == QProcess.ExitStatus.CrashExit:
            outcome = PipOutcome(FAILED, None, "pip stopped unexpectedly (it crashed or was killed)", text)
        elif exit_code == 0:
            outcome = PipOutcome(SUCCEEDED, 0, "pip finished", text)
        else:
            from .deps import explain_pip_failure

            outcome = PipOutcome(FAILED, exit_code, explain_pip_failure(text, exit_code), text)
        self._emit(outcome)

    def _emit(self, outcome: PipOutcome) -> None:
        if self.outcome is not None:  # FailedToStart and finished must not both report
            return
        self.outcome = outcome
        self.finished.emit(outcome)


class InstallDialog(QDialog):
    """Explains, asks, runs pip and reports. Signals: ``installed(DepsReport)``, ``installFinished(PipOutcome)``."""

    installed = pyqtSignal(object)
    installFinished = pyqtSignal(object)

    def __init__(
        self,
        parent: Optional[QWidget] = None,
        requirements: Sequence[Requirement] = REQUIREMENTS,
        target_dir: Optional[Path] = None,
        python: Optional[os.PathLike] = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Install dependencies: Task-Driven S2 Super-Resolution")
        self.setObjectName("S2TaskDrivenSRInstallDialog")
        self.requirements = list(requirements)
        self.target_dir = Path(target_dir) if target_dir is not None else plugin_deps_dir()
        self.extra_args = list(extra_args)
        self.report: Optional[DepsReport] = None
        self.outcome: Optional[PipOutcome] = None
        self._constraints: Optional[Path] = None
        self._preloaded: List[str] = []
        self._selected: List[Requirement] = []
        self.runner = PipRunner(self)
        self.runner.output.connect(self._append_log)
        self.runner.finished.connect(self._finished)
        detected = python or python_interpreter()
        self._build(str(detected) if detected else "")
        self.refresh()

    # ------------------------------------------------------------------ widgets
    def _build(self, python: str) -> None:
        layout = QVBoxLayout(self)
        self.intro_label = QLabel()
        self.intro_label.setWordWrap(True)
        layout.addWidget(self.intro_label)

        box = QGroupBox("Packages")
        self.package_layout = QVBoxLayout(box)
        self.checkboxes: List[QCheckBox] = []
        for _req in self.requirements:
            check = QCheckBox()
            check.toggled.connect(self._update_command)
            self.checkboxes.append(check)
            self.package_layout.addWidget(check)
        self.cpu_torch = QCheckBox("CPU-only PyTorch (a much smaller download; enough for this plugin on "
                                   "most computers)")
        self.cpu_torch.setToolTip(f"adds --extra-index-url {TORCH_CPU_INDEX}")
        self.cpu_torch.setChecked(True)
        self.cpu_torch.setVisible(sys.platform.startswith("linux") and any(r.module == "torch"
                                                                           for r in self.requirements))
        self.cpu_torch.toggled.connect(self._update_command)
        self.package_layout.addWidget(self.cpu_torch)
        layout.addWidget(box)

        form = QFormLayout()
        self.target_label = QLabel(str(self.target_dir) if self.target_dir else "(no QGIS profile folder found)")
        self.target_label.setWordWrap(True)
        self.target_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("Install into", self.target_label)
        row = QHBoxLayout()
        self.python_edit = QLineEdit(python)
        self.python_edit.setToolTip("QGIS's own Python executable; pip runs with it so the packages match it")
        self.python_edit.textChanged.connect(self._update_command)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_python)
        row.addWidget(self.python_edit, 1)
        row.addWidget(browse)
        form.addRow("Python", row)
        self.command_edit = QLineEdit()
        self.command_edit.setReadOnly(True)
        self.command_edit.setToolTip("The exact command that Install runs (you may also run it in a terminal)")
        form.addRow("Command", self.command_edit)
        layout.addLayout(form)

        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(5000)
        self.log_view.setFont(QFont("monospace"))
        self.log_view.setMinimumHeight(160)
        layout.addWidget(self.log_view, 1)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status_label)

        buttons = QDialogButtonBox()
        self.install_button = buttons.addButton("Install", QDialogButtonBox.ButtonRole.ActionRole)
        self.install_button.setToolTip("Run the command above: download and install the ticked packages")
        self.cancel_button = buttons.addButton("Cancel installation", QDialogButtonBox.ButtonRole.ActionRole)
        self.close_button = buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.install_button.clicked.connect(self.start_install)
        self.cancel_button.clicked.connect(self.cancel_install)
        self.close_button.clicked.connect(self.close)
        layout.addWidget(buttons)
        self.resize(760, 620)

    # ------------------------------------------------------------------ state
    def refresh(self) -> DepsReport:
        """Check the packages again (without importing them) and update the texts and ticks."""
        self.report = check_dependencies(self.requirements, deep=False)
        linux = sys.platform.startswith("linux")
        for check, status in zip(self.checkboxes, self.report.statuses):
            req = status.requirement
            size = " (large download)" if req.large else ""
            state = f"found {status.version or ''}".rstrip() if status.ok else status.problem
            check.setText(f"{req.pip}{size}: {req.purpose}. Now: {state}")
            tip = req.system_hint or ""
            check.setToolTip(tip)
            prefer_system = bool(req.system_hint) and linux
            check.setChecked(not status.ok and not req.optional and not prefer_system)
        missing = self.report.missing
        if missing:
            names = ", ".join(s.name for s in missing)
            text = (f"QGIS's Python {self.report.python} lacks {len(missing)} package(s) the plugin needs: "
                    f"<b>{names}</b>. Tick what to install. Nothing is downloaded until you press "
                    f"<b>Install</b>; pip then fetches the packages from the Python Package Index into the "
                    f"folder below, which belongs to this plugin (QGIS's own files are not changed).")
        else:
            text = (f"QGIS's Python {self.report.python} has every package the plugin needs. Tick a package "
                    f"to reinstall or upgrade it into the plugin's folder.")
        hints = [f"{s.name}: {s.requirement.system_hint}" for s in missing if s.requirement.system_hint]
        if hints:
            text += "<br><br>" + "<br>".join(hints)
        self.intro_label.setText(text)
        self._update_command()
        self._set_running(False)
        return self.report

    def selected_requirements(self) -> List[Requirement]:
        return [req for req, check in zip(self.requirements, self.checkboxes) if check.isChecked()]

    def _extra_args(self, selected: Sequence[Requirement]) -> List[str]:
        extra = list(self.extra_args)
        if self.cpu_torch.isVisible() and self.cpu_torch.isChecked() and any(r.module == "torch" for r in selected):
            extra += ["--extra-index-url", TORCH_CPU_INDEX]
        return extra

    def command(self, constraints_file: Optional[Path] = None) -> List[str]:
        """The pip command for the ticked packages (raises :class:`DepsError` when it cannot be made)."""
        selected = self.selected_requirements()
        if self.target_dir is None:
            raise DepsError("no QGIS profile folder was found to install into")
        python = self.python_edit.text().strip()
        return pip_command([r.pip for r in selected], self.target_dir, self._extra_args(selected),
                           python=python or None, constraints_file=constraints_file)

    def _update_command(self, *_args: Any) -> None:
        try:
            self.command_edit.setText(command_line(self.command()))
        except DepsError as exc:
            self.command_edit.setText(f"({exc})")

    def _browse_python(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "QGIS's Python interpreter", self.python_edit.text())
        if path:
            self.python_edit.setText(path)

    def _set_running(self, running: bool) -> None:
        self.install_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        for check in self.checkboxes + [self.cpu_torch]:
            check.setEnabled(not running)
        self.python_edit.setEnabled(not running)

    def is_running(self) -> bool:
        return self.runner.is_running()

    def _status(self, text: str, error: bool = False) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet("color: #b00020" if error else "")

    def _append_log(self, text: str) -> None:
        self.log_view.moveCursor(self.log_view.textCursor().MoveOperation.End)
        self.log_view.insertPlainText(text)
        self.log_view.ensureCursorVisible()

    # ------------------------------------------------------------------ install
    def start_install(self) -> bool:
        """Run pip for the ticked packages; False (with the reason shown) when it cannot start."""
        if self.is_running():
            return False
        selected = self.selected_requirements()
        if not selected:
            self._status("Tick at least one package to install.", error=True)
            return False
        python = self.python_edit.text().strip()
        if not python or not os.path.isfile(python):
            self._status(f"The Python interpreter '{python}' does not exist. Choose QGIS's own Python "
                         f"(Python {self.report.python if self.report else ''}) with Browse….", error=True)
            return False
        try:
            self.target_dir.mkdir(parents=True, exist_ok=True)
        except (OSError, AttributeError) as exc:
            self._status(f"Could not create the folder {self.target_dir}: {exc}", error=True)
            return False
        self._remember_python(python)
        self._constraints = self._write_constraints()
        try:
            command = self.command(self._constraints)
        except DepsError as exc:
            self._status(str(exc), error=True)
            return False
        self._selected = selected
        self._preloaded = [r.module for r in selected if r.module in sys.modules]
        self.outcome = None
        self.log_view.clear()
        self._append_log(f"$ {command_line(command)}\n")
        self._status("Installing… PyTorch alone can take several minutes to download." if any(
            r.module == "torch" for r in selected) else "Installing…")
        self._set_running(True)
        self.runner.start(command)
        return True

    def _write_constraints(self) -> Optional[Path]:
        pins = numpy_constraints()
        if not pins:
            return None
        handle, name = tempfile.mkstemp(prefix="s2sr-constraints-", suffix=".txt")
        with os.fdopen(handle, "w", encoding="utf-8") as fh:
            fh.write("\n".join(pins) + "\n")
        return Path(name)

    def _remember_python(self, python: str) -> None:
        """Keep a hand-chosen interpreter for the next time (and for the training dialog)."""
        try:
            from .deps import find_python_interpreter, set_configured_interpreter

            detected = find_python_interpreter()
            set_configured_interpreter(None if detected and Path(python) == detected else python)
        except Exception:  # noqa: BLE001 - remembering is a convenience; the install goes on
            pass

    def cancel_install(self) -> None:
        if self.is_running():
            self._status("Cancelling…")
            self.runner.cancel()

    def _finished(self, outcome: PipOutcome) -> None:
        if self._constraints is not None:
            try:
                self._constraints.unlink()
            except OSError:
                pass
            self._constraints = None
        self.outcome = outcome
        if outcome.status == CANCELLED:
            self._status(f"Installation cancelled. pip copies packages into {self.target_dir} only at its very "
                         f"end, so the folder is unchanged unless that last step had begun.")
        elif outcome.status == FAILED:
            self._status(f"Installation failed: {outcome.message}", error=True)
        else:
            self._verify()
        self._set_running(False)
        self.installFinished.emit(outcome)

    def _verify(self) -> None:
        """Import what was installed, so "done" means usable, not just "pip returned 0"."""
        activate_deps_dir(self.target_dir)
        importlib.invalidate_caches()
        report = check_dependencies(self._selected, deep=True)
        failing = [s for s in report.statuses if not s.ok]
        names = ", ".join(r.module for r in self._selected)
        if failing:
            details = "; ".join(s.describe() for s in failing)
            self._status(f"pip finished, but these still cannot be used: {details}. Restart QGIS and open this "
                         f"dialog again; if they still fail, the Python above may not be QGIS's own, or an "
                         f"older copy elsewhere on QGIS's Python path takes precedence.", error=True)
            self.outcome = PipOutcome(FAILED, self.outcome.exit_code, f"not importable: {details}",
                                      self.outcome.output)
            return
        text = f"Installed {names} into {self.target_dir}; they import correctly."
        if self._preloaded:
            text += (f" Restart QGIS to use the new versions of {', '.join(self._preloaded)} (the old ones "
                     f"are already loaded).")
        else:
            text += " No restart is needed."
        self._status(text)
        full = self.refresh()
        self._status(text)
        self.installed.emit(full)

    # ------------------------------------------------------------------ closing
    def shutdown(self) -> None:
        """Stop pip without asking (plugin unload)."""
        if self.is_running():
            self.runner.cancel()
            if not self.runner.wait(TERMINATE_GRACE_MS):
                self.runner.kill()
                self.runner.wait(TERMINATE_GRACE_MS)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        if self.is_running():
            answer = QMessageBox.question(
                self, "Installation in progress", "pip is still installing. Stop it?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self.shutdown()
        super().closeEvent(event)

    def reject(self) -> None:  # Esc goes through closeEvent's question too
        self.close()


__all__ = ["InstallDialog", "PipRunner", "PipOutcome", "command_line", "SUCCEEDED", "FAILED", "CANCELLED"]
