"""Lists the dock's checkpoints without freezing QGIS: the session's first listing runs in a worker thread.

Why: reading a model card validates it against the architecture registry,
whose first use imports PyTorch. In a real QGIS window that import held the
event loop for about 2 s when the dock opened (measured by the stall
monitor of ``tests/gui/test_qgis_journey.py``, which samples the UI
thread's stack). Once PyTorch is imported, a listing takes milliseconds and
runs in place, so tests and later refreshes see the combos filled at once.
The worker first opens PyTorch's libraries through ``ctypes``
(:mod:`..torch_preload`), which releases Python's lock while they load: the
import alone, even in a worker, held it for 0.5-1.2 s.
"""

from __future__ import annotations

import threading
from typing import List, Optional

from qgis.PyQt.QtCore import QObject, pyqtSignal

from ...core import api
from ..torch_preload import preload_torch_libraries
from .model_store import ModelEntry, read_entries

__all__ = ["CheckpointLister"]


class CheckpointLister(QObject):
    """``list(extra_paths)``: the entries now, or None and ``listed(entries, error)`` later, on the UI thread."""

    #: (entries, error message or None), emitted from the worker and delivered on the UI thread (queued).
    listed = pyqtSignal(object, object)

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self._worker: Optional[threading.Thread] = None
        self._again = False

    def busy(self) -> bool:
        """A first listing is running in the worker thread."""
        return self._worker is not None and self._worker.is_alive()

    def list(self, extra_paths: List[str]) -> Optional[List[ModelEntry]]:
        """The entries at once when cards are cheap to read; otherwise None, and ``listed`` follows."""
        if self.busy():
            self._again = True  # asked again meanwhile: the caller refreshes once the first listing lands
            return None
        if api.model_cards_are_cheap():
            return read_entries(extra_paths)
        self._worker = threading.Thread(target=self._run, args=(list(extra_paths),),
                                        name="s2sr-list-checkpoints", daemon=True)
        self._worker.start()
        return None

    def wait(self, seconds: float = 60.0) -> None:
        """Let a running first listing finish (the dock's shutdown: no thread may be importing PyTorch while
        QGIS unloads the plugin or Python finalizes; it ends in seconds, and its result is then dropped)."""
        worker = self._worker
        if worker is not None and worker.is_alive():
            worker.join(seconds)

    def take_again(self) -> bool:
        """Whether a refresh was asked for while the worker ran (and forget it)."""
        again, self._again = self._again, False
        return again

    def _run(self, extra_paths: List[str]) -> None:
        entries: List[ModelEntry] = []
        error: Optional[str] = None
        try:
            preload_torch_libraries()  # opened without the global lock: the import that follows holds it briefly
            entries = read_entries(extra_paths)
        except Exception as exc:  # noqa: BLE001 - a missing or broken PyTorch is reported, not raised in a thread
            error = f"{type(exc).__name__}: {exc}"
        try:
            self.listed.emit(entries, error)
        except RuntimeError:  # the dock was closed while the worker ran
            pass
