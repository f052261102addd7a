"""Messages for the analyst: the message bar, QGIS's log panel and the dock's own log view.

Why one helper: every action in the plugin ends in one of three ways (done,
cancelled, failed) and each must be told the same way: a short line in the
message bar, the full story in the "S2 super-resolution" tab of QGIS's Log
Messages panel, and never a Python traceback dialog. Engine errors already
carry a message written for the analyst (they name the file and what is
wrong); unexpected errors are worded here and their traceback goes to the log
only, where a bug report can pick it up.
"""

from __future__ import annotations

import traceback
from typing import Any, Optional

from qgis.core import Qgis, QgsApplication, QgsMessageLog
from qgis.PyQt.QtCore import QDateTime, Qt, QTimer
from qgis.PyQt.QtWidgets import QPlainTextEdit, QWidget

TAG = "S2 super-resolution"

#: Engine error types whose message is already meant for the analyst (matched by name,
#: so this module imports nothing heavy).
_WORDED = {
    "InputError", "OutputError", "CheckpointError", "ConfigError", "SceneError", "NonFiniteLossError",
    "EncoderWeightsError", "FileNotFoundError", "NotADirectoryError", "PermissionError", "ValueError",
}


def analyst_message(exc: BaseException) -> str:
    """One line that says what went wrong in the analyst's words (no traceback)."""
    name = type(exc).__name__
    text = str(exc).strip()
    if name == "Cancelled":
        return "cancelled; nothing was written"
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return ("ran out of memory; try 'current map extent only', a smaller tile size, "
                "or close other programs")
    if isinstance(exc, PermissionError):
        return f"no permission to write or read {getattr(exc, 'filename', '') or text}; choose another folder"
    if isinstance(exc, FileNotFoundError) and getattr(exc, "filename", None):
        return f"file not found: {exc.filename}"
    if name in _WORDED and text:
        return text
    if isinstance(exc, OSError) and text:
        return f"could not read or write a file: {text}"
    return f"unexpected error ({name}: {text or 'no message'}); details are in the '{TAG}' log"


def log(message: str, level: Any = Qgis.MessageLevel.Info) -> None:
    """Write one line to the plugin's tab of QGIS's Log Messages panel."""
    QgsMessageLog.logMessage(message, TAG, level)


def log_exception(exc: BaseException, context: str = "") -> str:
    """Log an error with its traceback (for bug reports) and return the analyst's line."""
    line = analyst_message(exc)
    log(f"{context}: {line}" if context else line, Qgis.MessageLevel.Critical)
    if type(exc).__name__ not in _WORDED and type(exc).__name__ != "Cancelled":
        details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log(details, Qgis.MessageLevel.Info)
    return line


def notify(iface: Any, title: str, message: str, level: Any = Qgis.MessageLevel.Info, duration: int = 8) -> None:
    """Show ``message`` in QGIS's message bar (when there is one) and in the log."""
    log(f"{title}: {message}", level)
    bar = getattr(iface, "messageBar", None) if iface is not None else None
    if bar is None:
        return
    try:
        bar().pushMessage(title, message, level, duration)
    except Exception:  # a message must never raise: the log already has it
        pass


class LogView(QPlainTextEdit):
    """A read-only view of the plugin's log lines, shown at the bottom of the dock.

    It listens to QgsMessageLog (filtered by the plugin's tag), so messages
    written from any part of the plugin, including task threads, appear here
    without the parts knowing about this widget.
    """

    _PREFIX = {Qgis.MessageLevel.Warning: "warning: ", Qgis.MessageLevel.Critical: "error: "}

    def __init__(self, parent: Optional[QWidget] = None, max_lines: int = 500) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(max_lines)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.setPlaceholderText("Messages from super-resolution, segmentation and comparison runs appear here.")
        # Follow new lines until the analyst scrolls up, and again once they scroll back down. Qt's own rule
        # ("follow while the bar is at the bottom") was lost whenever the dock's layout resized the view during a
        # run (a Segment or Compare result), and the log stopped following for good (issue 21).
        self.following = True
        self.verticalScrollBar().actionTriggered.connect(lambda _action: QTimer.singleShot(0, self._user_scrolled))
        QgsApplication.messageLog().messageReceived.connect(self._received, Qt.ConnectionType.QueuedConnection)

    def _user_scrolled(self) -> None:
        bar = self.verticalScrollBar()
        self.following = bar.value() >= bar.maximum()

    def _to_end(self) -> None:
        if self.following:
            bar = self.verticalScrollBar()
            bar.setValue(bar.maximum())

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self._to_end()

    def _received(self, message: str, tag: str, level: Any) -> None:
        if tag != TAG:
            return
        if level == Qgis.MessageLevel.Info and message.startswith("Traceback"):
            return  # tracebacks stay in QGIS's panel; this view is for the analyst
        stamp = QDateTime.currentDateTime().toString("HH:mm:ss")
        self.appendPlainText(f"{stamp}  {self._PREFIX.get(level, '')}{message}")
        self._to_end()

    def detach(self) -> None:
        """Stop listening (called when the dock is unloaded)."""
        try:
            QgsApplication.messageLog().messageReceived.disconnect(self._received)
        except (TypeError, RuntimeError):
            pass
