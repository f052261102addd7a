"""Run one command (pip) in a ``QProcess``: output streamed, Cancel honoured, one outcome.

Why a QProcess: QGIS stays responsive while pip downloads hundreds of
megabytes, Cancel stops pip for real (terminate, then kill), and the ending
(done, failed, cancelled) comes back as one :class:`PipOutcome` worded for the
analyst, never as a traceback.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence

from qgis.PyQt.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, pyqtSignal

from .deps import DepsError
from .pip import explain_pip_failure

__all__ = ["PipRunner", "PipOutcome", "command_line", "TERMINATE_GRACE_MS", "SUCCEEDED", "FAILED", "CANCELLED"]

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
            outcome = PipOutcome(FAILED, exit_code, explain_pip_failure(text, exit_code), text)
        self._emit(outcome)

    def _emit(self, outcome: PipOutcome) -> None:
        if self.outcome is not None:  # FailedToStart and finished must not both report
            return
        self.outcome = outcome
        self.finished.emit(outcome)
