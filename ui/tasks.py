"""QgsTask wrappers around core jobs: progress in the task manager, Cancel, no Qt in the job.

The rules these classes enforce (QGIS crashes or corrupts projects otherwise):

* a job is a plain callable ``job(progress, cancel) -> result`` built on the
  main thread from plain values (paths and one options object from
  ``core.options``); ``run()`` (a worker thread) never touches QgsProject,
  layers or widgets;
* results reach the UI through Qt signals emitted from ``finished()``, which
  QGIS calls on the main thread, where layers may be added;
* Cancel sets the token the engine checks between tiles; the engine then
  removes its partial output (an engine job of several steps, e.g. SR then
  its trust map, takes back what its earlier steps wrote). A job that
  finished before it saw the flag is cancelled all the same: the files its
  result lists as ``written`` are removed, with those a job registered in
  ``created`` (files the UI itself writes);
* a cancelled job is not a failed one: ``run()`` returns True for it, because
  QGIS shows "Task failed" for every task whose ``run()`` returns False, and
  ``finished()`` emits ``canceledByUser`` so the caller says "cancelled";
* the task manager deletes a finished task's C++ object, so :class:`TaskRunner`
  keeps the Python side alive until ``finished()`` ran and remembers which
  tasks are still running (for ``shutdown()``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

from qgis.core import QgsApplication, QgsTask
from qgis.PyQt.QtCore import QCoreApplication, QObject, pyqtSignal

from ..core import api
from ..core.io.qgis_style import style_path_for
from ..core.jobs import Cancelled, CancelToken, Progress
from ..core.options import ExportOptions, SegmentOptions, StackOptions, SuperResolveOptions
from .log import log
from .s2_products import write_default_style

__all__ = ["CoreTask", "TaskRunner", "SuperResolveJob", "SegmentJob", "StackJob", "ExportJob", "sr_task",
           "seg_task", "stack_task", "export_task", "remove_outputs", "new_outputs", "class_path_for_trust", "SUCCEEDED", "FAILED", "CANCELLED"]

SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"


def remove_outputs(paths: Sequence[os.PathLike]) -> None:
    """Delete files a failed or cancelled job made, with their GDAL side-cars."""
    for p in paths:
        p = Path(p)
        for candidate in (p, Path(f"{p}.aux.xml"), Path(f"{p}.ovr"), Path(f"{p}-journal"), Path(f"{p}-wal")):
            try:
                candidate.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log(f"could not remove {candidate}: {exc}")


class CoreTask(QgsTask):
    """Run ``job(progress, cancel)`` in QGIS's task manager.

    Signals (emitted on the main thread): ``succeeded(result)``,
    ``failed(exception)``, ``canceledByUser()``, and ``ended()`` after any of them.
    ``created`` lists files the job made so far (it appends to it); they are
    removed when the task fails or is cancelled. ``outcome`` says how it ended.
    """

    succeeded = pyqtSignal(object)
    failed = pyqtSignal(object)
    canceledByUser = pyqtSignal()
    ended = pyqtSignal()

    def __init__(self, description: str, job: Callable[[Progress, CancelToken], Any]) -> None:
        super().__init__(description, QgsTask.Flag.CanCancel)
        self.job = job
        self.flag = CancelToken()
        self.result_value: Any = None
        self.error: Optional[BaseException] = None
        self.message = ""
        self.created: List[Path] = []
        self.outcome: Optional[str] = None
        self.is_finished = False

    # -- worker thread
    def _progress(self, fraction: float, message: str) -> None:
        self.message = message
        self.setProgress(100.0 * max(0.0, min(1.0, float(fraction))))

    def run(self) -> bool:  # noqa: D401 - QgsTask API
        try:
            self.result_value = self.job(self._progress, self.flag)
        except Cancelled:
            self.outcome = CANCELLED
        except BaseException as exc:  # handed to the main thread, never raised in a worker
            self.error = exc
            self.outcome = CANCELLED if self.flag.cancelled else FAILED
        else:  # a job that finished before it looked at the flag is cancelled all the same
            self.outcome = CANCELLED if self.flag.cancelled else SUCCEEDED
        if self.outcome != SUCCEEDED:
            remove_outputs([*self.created, *getattr(self.result_value, "written", [])])
        return self.outcome != FAILED  # False would make QGIS report "Task failed" for a cancel

    def cancel(self) -> None:
        self.flag.cancel()
        super().cancel()

    # -- main thread
    def finished(self, result: bool) -> None:  # noqa: D401 - QgsTask API
        self.is_finished = True
        if self.outcome is None:  # cancelled while queued: run() never started
            self.outcome = CANCELLED if self.flag.cancelled else FAILED
        try:
            if self.outcome == SUCCEEDED:
                self.succeeded.emit(self.result_value)
            elif self.outcome == CANCELLED:
                self.canceledByUser.emit()
            else:
                self.failed.emit(self.error if self.error is not None else RuntimeError("the task stopped"))
        finally:
            self.ended.emit()


class TaskRunner(QObject):
    """Starts tasks, keeps them alive until they end, cancels them all on shutdown."""

    busyChanged = pyqtSignal(bool)
    progressChanged = pyqtSignal(float, str)

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self._running: List[CoreTask] = []

    @property
    def running(self) -> List[CoreTask]:
        return list(self._running)

    def busy(self) -> bool:
        return bool(self._running)

    def start(self, task: CoreTask) -> CoreTask:
        self._running.append(task)
        task.ended.connect(lambda t=task: self._ended(t))
        task.progressChanged.connect(lambda value, t=task: self.progressChanged.emit(float(value), t.message))
        QgsApplication.taskManager().addTask(task)
        log(f"started: {task.description()}")
        if len(self._running) == 1:
            self.busyChanged.emit(True)
        return task

    def _ended(self, task: CoreTask) -> None:
        if task in self._running:
            self._running.remove(task)
        if not self._running:
            self.busyChanged.emit(False)

    def cancel_all(self) -> None:
        for task in self.running:
            try:
                task.cancel()
            except RuntimeError:  # already deleted by the task manager
                self._ended(task)

    def wait(self, timeout_s: float = 30.0) -> bool:
        """Process events until every task has ended (True) or the timeout passed (False)."""
        deadline = time.monotonic() + timeout_s
        while self._running and time.monotonic() < deadline:
            QCoreApplication.processEvents()
            time.sleep(0.02)
        return not self._running

    def shutdown(self, timeout_s: float = 30.0) -> bool:
        """Cancel every task and wait for them so the plugin can unload cleanly."""
        self.cancel_all()
        ok = self.wait(timeout_s)
        if not ok:
            log("some tasks did not stop in time: " + ", ".join(t.description() for t in self._running))
        return ok


# --------------------------------------------------------------------------- jobs (plain data, no Qt)


@dataclass
class SuperResolveJob:
    """Everything a super-resolution run needs, read on the main thread: inputs, output, checkpoint, options."""

    inputs: List[str]
    out_path: str
    checkpoint: str
    options: SuperResolveOptions = field(default_factory=SuperResolveOptions)

    def __call__(self, progress: Progress, cancel: CancelToken) -> Any:
        return api.super_resolve(self.inputs, self.out_path, self.checkpoint, self.options, progress=progress,
                                 cancel=cancel)


@dataclass
class SegmentJob:
    """A segmentation run: one or two networks (buildings, roads) on one raster."""

    input_path: str
    checkpoints: List[str]
    out_mask: Optional[str]
    out_prob: Optional[str]
    vectors: Optional[str] = None
    options: SegmentOptions = field(default_factory=SegmentOptions)

    def __call__(self, progress: Progress, cancel: CancelToken) -> Any:
        return api.segment(self.input_path, self.checkpoints, out_mask=self.out_mask, out_prob=self.out_prob,
                           vectors=self.vectors, options=self.options, progress=progress, cancel=cancel)


@dataclass
class StackJob:
    """Several Sentinel-2 dates (products or rasters) -> one revisit stack GeoTIFF (``api.build_stack``)."""

    inputs: List[str]
    out_path: str
    options: StackOptions = field(default_factory=StackOptions)

    def __call__(self, progress: Progress, cancel: CancelToken) -> Any:
        result = api.build_stack(self.inputs, self.out_path, self.options, progress=progress, cancel=cancel)
        note = write_default_style(result.path)
        if note:
            result.messages.append(note)
        return result


@dataclass
class ExportJob:
    """One Sentinel-2 product -> a 4-band GeoTIFF (B02, B03, B04, B08; clouds as nodata; ``api.export_product``)."""

    product: str
    out_path: str
    options: ExportOptions = field(default_factory=ExportOptions)

    def __call__(self, progress: Progress, cancel: CancelToken) -> Any:
        path = api.export_product(self.product, self.out_path, self.options, progress=progress, cancel=cancel)
        write_default_style(path)
        return path


def class_path_for_trust(trust_path: str) -> Path:
    """``x_trust.tif`` -> ``x_trust_class.tif``: core's naming rule (``core.inference.trust.class_path_for``,
    which cannot be imported here without torch; a test holds the two equal)."""
    p = Path(trust_path)
    return p.with_name(f"{p.stem}_class{p.suffix or '.tif'}")


def new_outputs(paths: Sequence[Optional[str]]) -> List[Path]:
    """The paths that do not exist yet: only those may be removed if the job fails."""
    return [Path(p) for p in paths if p and not Path(p).exists()]


def sr_task(job: SuperResolveJob, description: str) -> CoreTask:
    """The engine's SR job takes back its own files when it stops; the result lists them for a late cancel."""
    return CoreTask(description, job)


def seg_task(job: SegmentJob, description: str) -> CoreTask:
    task = CoreTask(description, job)
    task.created.extend(new_outputs([job.out_prob, job.out_mask, job.vectors]))
    return task


def stack_task(job: StackJob, description: str) -> CoreTask:
    task = CoreTask(description, job)
    task.created.extend(new_outputs([job.out_path, str(style_path_for(job.out_path))]))
    return task


def export_task(job: ExportJob, description: str) -> CoreTask:
    task = CoreTask(description, job)
    task.created.extend(new_outputs([job.out_path, str(style_path_for(job.out_path))]))
    return task
