"""The training dialog's live curves: losses, loss weights and validation metrics per epoch (matplotlib).

Why matplotlib: the curves are the reason to watch a run in QGIS (does the
dynamic weighting behave? is the task Dice rising?); matplotlib is optional,
so without it the dialog says so and training still runs.

Why in a process of its own (issue 21): one draw of the three panels takes
0.3-0.65 s of Python and C++ that hold the interpreter lock. Drawn on the UI
thread with matplotlib's Qt canvas it froze QGIS for seconds while a run
printed its steps, and drawn in a worker thread of QGIS's process the UI
thread still waited for the lock on a busy CPU. Now :meth:`CurvePlot.draw`
copies the history and returns; ``curves_render.py`` (plain Python and
matplotlib's Agg backend, started once with QGIS's Python) writes a PNG and
the UI thread only loads it into a label. Requests made while a picture is
being drawn are merged: the latest history is drawn next, never a queue of
stale ones. Where that process cannot start, a worker thread draws instead.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, List, Optional, Tuple

from qgis.PyQt.QtCore import QProcess, QSize, Qt, QTimer, pyqtSignal
from qgis.PyQt.QtGui import QImage, QPixmap
from qgis.PyQt.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from .curves_render import DPI, MIN_HEIGHT, VAL_CURVES, render_curves
from .history import TrainHistory
from .process import plugin_deps_folder, python_interpreter

__all__ = ["CurvePlot", "VAL_CURVES", "render_curves"]

RENDERER = Path(__file__).resolve().parent / "curves_render.py"


def _matplotlib_missing() -> Optional[str]:
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        return str(exc)
    return None


class CurvePlot(QWidget):
    """Losses, loss weights and validation metrics per epoch, drawn outside the UI thread and shown as an image.

    ``labels``: the curves of the last picture shown (for tests and documentation);
    ``renders``: how many pictures were shown; ``mode``: ``process`` or ``thread``.
    """

    rendered = pyqtSignal(object)  # thread mode: (rgba, size, labels, generation) from the worker thread

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.canvas: Optional[QLabel] = None
        self.labels: List[str] = []
        self.renders = 0
        self.mode = "process"
        self._history = TrainHistory()
        self._generation = 0  # of the last request
        self._shown = 0  # of the last picture shown
        self._pending: Optional[Tuple[TrainHistory, Tuple[int, int], int]] = None
        self._in_flight = False
        self._lock = threading.Lock()
        self._worker: Optional[threading.Thread] = None
        self._process: Optional[QProcess] = None
        self._buffer = b""
        self._folder: Optional[Path] = None
        self._closed = False  # after shutdown(): nothing more is drawn
        missing = _matplotlib_missing()
        if missing:
            note = QLabel(f"No live curves: matplotlib is not available ({missing}). Training still runs.")
            note.setWordWrap(True)
            layout.addWidget(note)
            return
        self.canvas = QLabel()
        self.canvas.setObjectName("trainingCurves")
        self.canvas.setMinimumSize(50, MIN_HEIGHT)
        self.canvas.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        layout.addWidget(self.canvas)
        self.rendered.connect(self._show_rgba, Qt.ConnectionType.QueuedConnection)
        self._resize_timer = QTimer(self)
        self._resize_timer.setSingleShot(True)
        self._resize_timer.timeout.connect(lambda: self.draw(self._history))
        self.draw(TrainHistory())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(9 * DPI, int(2.8 * DPI))

    def _target_size(self) -> Tuple[int, int]:
        label = self.canvas
        if label is None or label.width() < 100:
            return 9 * DPI, int(2.8 * DPI)
        return label.width(), max(MIN_HEIGHT, label.height())

    # ------------------------------------------------------------------ requests
    def draw(self, h: TrainHistory, wait: bool = False, timeout: float = 60.0) -> None:
        """Draw ``h`` outside the UI thread (``wait``: and block until it is shown, for replays and tests)."""
        if self.canvas is None:
            return
        self._history = h
        self._generation += 1
        self._pending = (copy.deepcopy(h), self._target_size(), self._generation)  # the dialog goes on feeding h
        self._next()
        if wait:
            self.wait_idle(timeout)

    def _next(self) -> None:
        if self._in_flight or self._pending is None or self._closed:
            return
        history, size, generation = self._pending
        self._pending = None
        self._in_flight = True
        if self.mode == "process" and self._send(history, size, generation):
            return
        self.mode = "thread"
        with self._lock:
            self._worker = threading.Thread(target=self._draw_in_thread, args=(history, size, generation),
                                            name="s2sr-curves", daemon=True)
            self._worker.start()

    # ------------------------------------------------------------------ the renderer process
    def _renderer(self) -> Optional[QProcess]:
        if self._process is not None and self._process.state() != QProcess.ProcessState.NotRunning:
            return self._process
        python = python_interpreter()
        if python is None:
            return None
        self._folder = Path(tempfile.mkdtemp(prefix="s2sr_curves_"))
        proc = QProcess(self)
        proc.setProgram(python)
        proc.setArguments(["-u", str(RENDERER), plugin_deps_folder()])
        proc.setWorkingDirectory(str(self._folder))
        proc.readyReadStandardOutput.connect(self._read)
        proc.finished.connect(self._renderer_ended)
        proc.start()
        if not proc.waitForStarted(5000):
            return None
        self._process, self._buffer = proc, b""
        return proc

    def _send(self, history: TrainHistory, size: Tuple[int, int], generation: int) -> bool:
        proc = self._renderer()
        if proc is None:
            return False
        out = self._folder / f"curves_{generation}.png"
        request = {"gen": generation, "size": list(size), "out": str(out), "history": dataclasses.asdict(history)}
        proc.write((json.dumps(request) + "\n").encode("utf-8"))
        return True

    def _read(self) -> None:
        if self._process is None:
            return
        self._buffer += bytes(self._process.readAllStandardOutput())
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            try:
                answer = json.loads(raw.decode("utf-8", "replace"))
            except ValueError:
                continue
            if not isinstance(answer, dict) or "gen" not in answer:
                continue
            self._in_flight = False
            if answer.get("out"):
                pixmap = QPixmap(answer["out"])
                Path(answer["out"]).unlink(missing_ok=True)
                self._shown_picture(pixmap, answer.get("labels") or [], int(answer["gen"]))
            else:
                self._shown = max(self._shown, int(answer["gen"]))
            self._next()

    def _renderer_ended(self, *_args: Any) -> None:
        if self._in_flight:  # it died while drawing: the worker thread takes over
            self.mode = "thread"
            self._in_flight = False
            self._pending = self._pending or (copy.deepcopy(self._history), self._target_size(), self._generation)
            self._next()

    # ------------------------------------------------------------------ the fallback: a worker thread
    def _draw_in_thread(self, history: TrainHistory, size: Tuple[int, int], generation: int) -> None:
        try:
            _figure, axes, rgba, shape = render_curves(history, size)
            labels = [ln.get_label() for ax in axes for ln in ax.get_lines()]
        except Exception as exc:  # noqa: BLE001 - a bad value must not end the curves for the run
            rgba, shape, labels = b"", (0, 0), [f"error: {exc}"]
        try:
            self.rendered.emit((rgba, shape, labels, generation))
        except RuntimeError:  # the dialog went while this picture was drawn
            pass

    def _show_rgba(self, payload: Tuple[Any, ...]) -> None:
        rgba, (w, h), labels, generation = payload
        with self._lock:
            self._worker = None
        self._in_flight = False
        pixmap = QPixmap.fromImage(QImage(rgba, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()) if rgba \
            else QPixmap()
        self._shown_picture(pixmap, labels, generation)
        self._next()

    def _shown_picture(self, pixmap: QPixmap, labels: List[str], generation: int) -> None:
        self._shown = max(self._shown, generation)
        self.renders += 1
        if not pixmap.isNull() and self.canvas is not None:
            self.canvas.setPixmap(pixmap)
            self.labels = list(labels)

    # ------------------------------------------------------------------ state
    def busy(self) -> bool:
        return self._in_flight or self._pending is not None

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Process events until every requested picture is shown (replays and tests); False on timeout."""
        from qgis.PyQt.QtCore import QCoreApplication

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            QCoreApplication.processEvents()
            if not self.busy() and self._shown >= self._generation:
                return True
            time.sleep(0.01)
        return False

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        if self.canvas is not None:
            self._resize_timer.start(300)  # one picture at the new size once the resizing stops

    def shutdown(self) -> None:
        """Stop the renderer process and remove its folder (the dialog's shutdown)."""
        self._closed = True
        self._pending = None
        proc, self._process = self._process, None
        if proc is not None:
            try:
                proc.finished.disconnect(self._renderer_ended)
            except (TypeError, RuntimeError):
                pass
        if proc is not None and proc.state() != QProcess.ProcessState.NotRunning:
            proc.closeWriteChannel()
            if not proc.waitForFinished(2000):
                proc.kill()
                proc.waitForFinished(2000)
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
