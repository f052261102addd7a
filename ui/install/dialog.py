# SPDX-License-Identifier: GPL-2.0-or-later
"""The "Install dependencies" dialog: pip, for QGIS's own Python, into a folder the plugin owns.

Why a dialog and not an automatic install: installing software is the
analyst's decision (PyTorch is a download of hundreds of megabytes), so the
dialog first says what is missing, what pip will fetch, from where to where
and with which exact commands, and runs nothing before the Install button is
pressed. The commands shown are the commands run, to the character (a copy
into a terminal does the same). The interpreter is checked before anything
runs: one that is not QGIS's own Python version is refused, naming both
versions, because what it installs would not load in QGIS. pip runs in a
``QProcess`` (``runner.py``), so QGIS stays responsive, Cancel stops it, and
every ending (done, failed, cancelled) is told in plain words.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, List, Optional, Sequence

from qgis.PyQt.QtCore import Qt, pyqtSignal
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
    DepsError,
    DepsReport,
    Requirement,
    activate_deps_dir,
    check_dependencies,
    plugin_deps_dir,
)
from .interpreter import (
    check_interpreter,
    find_python_interpreter,
    format_version,
    python_interpreter,
    qgis_python_version,
    set_configured_interpreter,
)
from .pip import CPU_SOURCE, TORCH_CPU_INDEX, InstallPlan, numpy_constraints, plan_install, write_constraints
from .runner import CANCELLED, FAILED, SUCCEEDED, TERMINATE_GRACE_MS, PipOutcome, PipRunner, command_line

__all__ = ["InstallDialog", "PipRunner", "PipOutcome", "command_line", "SUCCEEDED", "FAILED", "CANCELLED"]


class InstallDialog(QDialog):
    """Explains, asks, runs pip and reports. Signals: ``installed(DepsReport)``, ``installFinished(PipOutcome)``.

    ``extra_args`` go to every pip command and ``cpu_source`` replaces where the
    CPU wheels come from (both for tests and unusual networks).
    """

    installed = pyqtSignal(object)
    installFinished = pyqtSignal(object)

    def __init__(
        self,
        parent: Optional[QWidget] = None,
        requirements: Sequence[Requirement] = REQUIREMENTS,
        target_dir: Optional[Path] = None,
        python: Optional[os.PathLike] = None,
        extra_args: Sequence[str] = (),
        cpu_source: Sequence[str] = CPU_SOURCE,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Install dependencies: Task-Driven S2 Super-Resolution")
        self.setObjectName("S2TaskDrivenSRInstallDialog")
        self.requirements = list(requirements)
        self.target_dir = Path(target_dir) if target_dir is not None else plugin_deps_dir()
        self.extra_args = list(extra_args)
        self.cpu_source = list(cpu_source)
        #: the commands' shared files (CPU wheels, constraints): a folder beside the target that the plugin
        #: owns, named before anything runs so the commands shown are the commands run; removed after a run
        self.work_dir = (self.target_dir.parent / f".{self.target_dir.name}-install") if self.target_dir \
            else Path(tempfile.gettempdir()) / "s2sr-install"
        self.offers_cpu_wheels = sys.platform.startswith("linux") and any(r.cpu_wheels for r in self.requirements)
        self.report: Optional[DepsReport] = None
        self.outcome: Optional[PipOutcome] = None
        self.running_plan: Optional[InstallPlan] = None
        self._step = 0
        self._preloaded: List[str] = []
        self._selected: List[Requirement] = []
        self.runner = PipRunner(self)
        self.runner.output.connect(self._append_log)
        self.runner.finished.connect(self._step_finished)
        detected = python or python_interpreter()
        self._build(str(detected) if detected else "")
        self.refresh()
        if not detected:
            self._status(f"QGIS's Python {format_version(qgis_python_version())} was not found; choose it with "
                         f"Browse… before installing.", error=True)

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
        self.cpu_torch.setToolTip(f"torch and torchvision come from {TORCH_CPU_INDEX}; everything else from PyPI")
        self.cpu_torch.setChecked(True)
        self.cpu_torch.setVisible(self.offers_cpu_wheels)
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
        self.python_edit.setToolTip(f"QGIS's own Python ({format_version(qgis_python_version())}); pip runs with "
                                    "it so the packages match it")
        self.python_edit.textChanged.connect(self._update_command)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_python)
        row.addWidget(self.python_edit, 1)
        row.addWidget(browse)
        form.addRow("Python", row)
        self.command_view = QPlainTextEdit()
        self.command_view.setReadOnly(True)
        self.command_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.command_view.setMaximumHeight(110)
        self.command_view.setToolTip("The exact commands Install runs, one per line, in order (you may also run "
                                     "them in a terminal)")
        form.addRow("Commands", self.command_view)
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
        self.install_button.setToolTip("Run the commands above: download and install the ticked packages")
        self.cancel_button = buttons.addButton("Cancel installation", QDialogButtonBox.ButtonRole.ActionRole)
        self.close_button = buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.install_button.clicked.connect(self.start_install)
        self.cancel_button.clicked.connect(self.cancel_install)
        self.close_button.clicked.connect(self.close)
        layout.addWidget(buttons)
        self.resize(760, 640)

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
            check.setToolTip(req.system_hint or "")
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

    def plan(self) -> InstallPlan:
        """The commands for the ticked packages (raises :class:`DepsError` when they cannot be made)."""
        if self.target_dir is None:
            raise DepsError("no QGIS profile folder was found to install into")
        python = self.python_edit.text().strip()
        if not python:
            raise DepsError("choose QGIS's Python interpreter with Browse…")
        return plan_install(self.selected_requirements(), self.target_dir, self.work_dir, python,
                            cpu_wheels=self.offers_cpu_wheels and self.cpu_torch.isChecked(),
                            extra_args=self.extra_args, cpu_source=self.cpu_source, pins=numpy_constraints(),
                            companions=self.requirements)

    def commands(self) -> List[List[str]]:
        return self.plan().commands

    def shown_commands(self) -> List[str]:
        """The commands as the dialog shows them (one line each)."""
        return [line for line in self.command_view.toPlainText().splitlines() if line.strip()]

    def _update_command(self, *_args: Any) -> None:
        try:
            self.command_view.setPlainText("\n".join(command_line(c) for c in self.commands()))
        except DepsError as exc:
            self.command_view.setPlainText(f"({exc})")

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
        """Run the commands for the ticked packages; False (with the reason shown) when they cannot start."""
        if self.is_running():
            return False
        selected = self.selected_requirements()
        if not selected:
            self._status("Tick at least one package to install.", error=True)
            return False
        python = self.python_edit.text().strip()
        try:
            check_interpreter(python)
            plan = self.plan()
        except DepsError as exc:
            self._status(f"{str(exc)[:1].upper()}{str(exc)[1:]}.", error=True)
            return False
        try:
            self.target_dir.mkdir(parents=True, exist_ok=True)
            if plan.wheelhouse is not None:
                shutil.rmtree(plan.wheelhouse, ignore_errors=True)  # only this run's CPU wheels get pinned
            write_constraints(plan)
        except (OSError, AttributeError) as exc:
            self._status(f"Could not create the folder {self.target_dir}: {exc}", error=True)
            return False
        self._remember_python(python)
        self._selected = selected
        self._preloaded = [r.module for r in selected if r.module in sys.modules]
        self.outcome = None
        self.running_plan = plan
        self._step = 0
        self.log_view.clear()
        self._set_running(True)
        self._run_step()
        return True

    def _run_step(self) -> None:
        plan = self.running_plan
        command = plan.commands[self._step]
        if self._step > 0 and plan.constraints is not None:
            pins = write_constraints(plan).strip()  # now with the CPU wheels just downloaded
            self._append_log(f"# {plan.constraints.name}: {', '.join(pins.splitlines())}\n")
        self._append_log(f"$ {command_line(command)}\n")
        steps = f" (step {self._step + 1} of {len(plan.commands)})" if len(plan.commands) > 1 else ""
        torch = any(r.module == "torch" for r in self._selected)
        self._status(f"Installing{steps}… PyTorch alone can take several minutes to download." if torch
                     else f"Installing{steps}…")
        self.runner.start(command)

    def _remember_python(self, python: str) -> None:
        """Keep a hand-chosen interpreter for the next time (and for the training dialog)."""
        try:
            detected = find_python_interpreter()
            set_configured_interpreter(None if detected and Path(python) == detected else python)
        except Exception:  # noqa: BLE001 - remembering is a convenience; the install goes on
            pass

    def cancel_install(self) -> None:
        if self.is_running():
            self._status("Cancelling…")
            self.runner.cancel()

    def _step_finished(self, outcome: PipOutcome) -> None:
        plan = self.running_plan
        if outcome.ok and plan is not None and self._step + 1 < len(plan.commands):
            self._step += 1
            self._run_step()
            return
        self.outcome = outcome
        self.running_plan = None
        shutil.rmtree(self.work_dir, ignore_errors=True)
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
        full = self.refresh()
        self._status(text)
        self.installed.emit(full)

    # ------------------------------------------------------------------ closing
    def shutdown(self) -> None:
        """Stop pip without asking (plugin unload) and remove the dialog's temporary files."""
        if self.is_running():
            self.runner.cancel()
            if not self.runner.wait(TERMINATE_GRACE_MS):
                self.runner.kill()
                self.runner.wait(TERMINATE_GRACE_MS)
        shutil.rmtree(self.work_dir, ignore_errors=True)

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
