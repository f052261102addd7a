"""A headless command (``python -m core.cli ... --progress jsonl``) run as a child process and followed.

Why a child process (QProcess) and not a QgsTask: training runs for minutes to
days, holds a lot of memory and may crash in native code; in its own process it
cannot take QGIS down with it, it is stopped for real by Cancel (terminate,
then kill), and it is the very same command an analyst would run on a server.
It runs with QGIS's own Python (``ui.install.interpreter``: found where the
platform keeps it and checked to be QGIS's version), never a ``python3`` that
happens to be first on PATH, and sees the plugin's package folder after
site-packages, as QGIS does: every child is started through
:func:`module_command` (``interpreter.module_command``), so packages the
plugin's installer put in ``<profile>/python/dependencies/...`` are found
without PYTHONPATH (issue 21: *Start* failed with "No module named 'tqdm'").
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

from qgis.PyQt.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, pyqtSignal

__all__ = ["JsonlProcess", "python_interpreter", "plugin_deps_folder", "module_command", "STOP_GRACE_MS"]

STOP_GRACE_MS = 5000


#: configured interpreter setting -> the interpreter found for it (finding one runs it: not on every start)
_FOUND: dict = {}


def python_interpreter() -> Optional[str]:
    """QGIS's own Python (configured or found, version-checked), or this Python when it is one; else None.

    Remembered per configured value: finding it runs candidates (``--version``),
    which must not pause the UI thread on every start (issue 21).
    """
    try:
        from ..install.interpreter import configured_interpreter
        from ..install.interpreter import python_interpreter as qgis_python

        key = str(configured_interpreter() or "")
        if key not in _FOUND:
            found = qgis_python()
            _FOUND[key] = str(found) if found else None
        if _FOUND[key]:
            return _FOUND[key]
    except Exception:  # noqa: BLE001 - fall back below; the caller says what is missing
        pass
    exe = Path(sys.executable)
    return str(exe) if exe.name.lower().startswith("python") else None


def plugin_deps_folder() -> str:
    """The plugin installer's package folder of this QGIS profile ('' without one), for children to append."""
    try:
        from ..install.deps import plugin_deps_dir

        folder = plugin_deps_dir()
    except Exception:  # noqa: BLE001
        return ""
    return str(folder) if folder else ""


def module_command(module: str, args: Sequence[str] = (), python: Optional[str] = None) -> List[str]:
    """``[python, ...]`` running ``python -m module args`` with the plugin's package folder on ``sys.path``.

    ``python``: default :func:`python_interpreter`. Raises ``DepsError`` (a ValueError
    with a sentence) when no interpreter is found.
    """
    from ..install.interpreter import module_command as command

    return command(module, list(args), python=python or python_interpreter())


def split_module_args(args: Sequence[str]) -> Tuple[str, List[str]]:
    """``["-m", "core.cli", "train", ...]`` -> ``("core.cli", ["train", ...])``."""
    if len(args) < 2 or args[0] != "-m":
        raise ValueError(f"expected '-m MODULE ...', got {list(args)[:3]}")
    return args[1], list(args[2:])


class JsonlProcess(QObject):
    """Runs one command whose stdout is JSON lines; emits each event, every other line, and the ending.

    Signals: ``eventRead(dict)``, ``textRead(str)`` (non-JSON stdout and stderr lines,
    tqdm's bars dropped), ``ended(int exit code, bool stopped)`` where
    ``stopped`` means Cancel asked for it, ``failedToStart(str)``.
    """

    eventRead = pyqtSignal(dict)  # not ``event``: that is QObject's own event handler
    textRead = pyqtSignal(str)
    ended = pyqtSignal(int, bool)
    failedToStart = pyqtSignal(str)

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.process: Optional[QProcess] = None
        self.lines_read = 0
        self.stopping = False
        self._buffer = b""

    def is_running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def start(self, program: str, args: List[str], workdir: Path) -> QProcess:
        """Start ``program args`` in ``workdir`` (unbuffered output, so events arrive as they happen)."""
        self._buffer = b""
        self.stopping = False
        proc = QProcess(self)
        proc.setProgram(program)
        proc.setArguments(args)
        proc.setWorkingDirectory(str(workdir))
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        proc.setProcessEnvironment(env)
        proc.readyReadStandardOutput.connect(self._read_stdout)
        proc.readyReadStandardError.connect(self._read_stderr)
        proc.finished.connect(self._finished)
        proc.errorOccurred.connect(self._error)
        self.process = proc
        proc.start()
        return proc

    def _read_stdout(self) -> None:
        if self.process is None:
            return
        self._buffer += bytes(self.process.readAllStandardOutput())
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                self.textRead.emit(line)
                continue
            if isinstance(event, dict):
                self.lines_read += 1
                self.eventRead.emit(event)

    def _read_stderr(self) -> None:
        if self.process is None:
            return
        chunk = bytes(self.process.readAllStandardError()).decode("utf-8", "replace")
        for line in chunk.replace("\r", "\n").splitlines():
            line = line.rstrip()
            if line and "it/s]" not in line and "s/it]" not in line:
                self.textRead.emit(line)

    def _finished(self, code: int, _status: Any) -> None:
        self._read_stdout()
        self.ended.emit(int(code), self.stopping)

    def _error(self, error: Any) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            program = self.process.program() if self.process is not None else "?"
            self.failedToStart.emit(f"could not start {program}: choose QGIS's Python interpreter in "
                                    "'Install dependencies…' of the plugin's menu")

    def cancel(self, grace_ms: int = STOP_GRACE_MS) -> None:
        """Stop the command: terminate, then kill if it does not stop within ``grace_ms``."""
        if not self.is_running():
            return
        self.stopping = True
        proc = self.process
        proc.terminate()
        QTimer.singleShot(grace_ms, lambda p=proc: p.kill() if p.state() != QProcess.ProcessState.NotRunning
                          else None)

    def stop_and_wait(self, timeout_ms: int = STOP_GRACE_MS) -> None:
        """Stop the command now and wait for it (QGIS is closing or the plugin unloads)."""
        if not self.is_running():
            return
        self.stopping = True
        self.process.terminate()
        if not self.process.waitForFinished(timeout_ms):
            self.process.kill()
            self.process.waitForFinished(timeout_ms)
