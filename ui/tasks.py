"""QgsTask wrappers around core jobs: progress in the task manager, Cancel, no Qt in the job.

The rules these classes enforce (QGIS crashes or corrupts projects otherwise):

* a job is a plain callable ``job(progress, cancel) -> result`` built on the
  main thread from plain values (paths, band numbers, extents); ``run()``
  (a worker thread) never touches QgsProject, layers or widgets;
* results reach the UI through Qt signals emitted from ``finished()``, which
  QGIS calls on the main thread, where layers may be added;
* Cancel sets a flag the engine checks between tiles; the engine then removes
  its partial output, and files a multi-step job registered are removed too;
* the task manager deletes a finished task's C++ object, so :class:`TaskRunner`
  keeps the Python side alive until ``finished()`` ran and remembers which
  tasks are still running (for ``shutdown()``).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsMapLayer,
    QgsProject,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsTask,
)
from qgis.PyQt.QtCore import QCoreApplication, QObject, pyqtSignal

from ..core.jobs import CancelToken, Progress, sub_progress, trust_path_for  # noqa: F401 (re-used by ui)
from .log import log


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
    removed when the task fails or is cancelled.
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
        self.is_finished = False

    # -- worker thread
    def _progress(self, fraction: float, message: str) -> None:
        self.message = message
        self.setProgress(100.0 * max(0.0, min(1.0, float(fraction))))

    def run(self) -> bool:  # noqa: D401 - QgsTask API
        try:
            self.result_value = self.job(self._progress, self.flag)
            if self.flag.cancelled:  # the job finished before it looked at the flag
                remove_outputs(self.created)
                return False
            return True
        except BaseException as exc:  # handed to the main thread, never raised in a worker
            self.error = exc
            remove_outputs(self.created)
            return False

    def cancel(self) -> None:
        self.flag.cancel()
        super().cancel()

    # -- main thread
    def finished(self, result: bool) -> None:  # noqa: D401 - QgsTask API
        self.is_finished = True
        try:
            if result:
                self.succeeded.emit(self.result_value)
            elif self.flag.cancelled or type(self.error).__name__ == "Cancelled":
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


# --------------------------------------------------------------------------- reading layers (main thread)


class Refused(ValueError):
    """The UI will not start a job; the message says why, in the analyst's words."""


def layer_file(layer: Optional[QgsMapLayer]) -> str:
    """The local file behind a raster layer, or :class:`Refused` saying why there is none."""
    if layer is None:
        raise Refused("no layer chosen")
    if not isinstance(layer, QgsRasterLayer):
        raise Refused(f"'{layer.name()}' is not a raster layer; choose a raster (GeoTIFF, JP2, ...)")
    provider = layer.providerType()
    if provider != "gdal":
        raise Refused(f"'{layer.name()}' comes from a {provider.upper()} service, not a file on this computer: "
                      "save it as a GeoTIFF first (right-click > Export > Save As...) and use that layer")
    parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
    path = str(parts.get("path") or layer.source())
    if path.startswith("/vsicurl") or "://" in path:
        raise Refused(f"'{layer.name()}' is read over the network ({path.split('?')[0]}): "
                      "download it or save it as a GeoTIFF first")
    if not os.path.isfile(path):
        raise Refused(f"'{layer.name()}': its file {path} does not exist (moved or deleted?)")
    return path


def utm_crs_for_layer(layer: QgsRasterLayer) -> QgsCoordinateReferenceSystem:
    """The WGS 84 UTM zone of a layer's centre (what the engine warps degrees to)."""
    wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
    centre = QgsCoordinateTransform(layer.crs(), wgs84, QgsProject.instance()).transform(layer.extent().center())
    zone = min(60, max(1, int(math.floor((centre.x() + 180.0) / 6.0)) + 1))
    return QgsCoordinateReferenceSystem(f"EPSG:{(32600 if centre.y() >= 0 else 32700) + zone}")


# --------------------------------------------------------------------------- jobs (plain data, no Qt)


@dataclass
class SuperResolveJob:
    """Everything a super-resolution run needs, read on the main thread."""

    inputs: List[str]
    out_path: str
    checkpoint: str
    band: Any = 1
    extent: Optional[Tuple[float, float, float, float]] = None
    device: str = "cpu"
    tile: Optional[int] = None
    trust: bool = False  # also write <out>_trust.tif (core.inference.trust) in the same task
    anchor: bool = True  # shift each tile to its revisits' brightness (core.inference.sr.anchor_offsets)

    def __call__(self, progress: Progress, cancel: CancelToken) -> Any:
        from ..core import api

        return api.super_resolve(self.inputs, self.out_path, self.checkpoint, band=self.band, tile=self.tile,
                                 device=self.device, progress=progress, cancel=cancel, extent=self.extent,
                                 trust=self.trust, anchor=self.anchor)

    @property
    def trust_path(self) -> Optional[str]:
        """Where the trust map goes, when one is asked for."""
        return str(trust_path_for(self.out_path)) if self.trust else None


@dataclass
class SegmentJob:
    """A segmentation run: one or two networks (buildings, roads) on one raster."""

    input_path: str
    checkpoints: List[str]
    out_prob: str
    out_mask: str
    vectors: Optional[str] = None
    band: Any = 1
    device: str = "cpu"
    extent: Optional[Tuple[float, float, float, float]] = None

    def __call__(self, progress: Progress, cancel: CancelToken) -> Any:
        from ..core import api

        return api.segment(self.input_path, self.checkpoints, out_prob=self.out_prob, out_mask=self.out_mask,
                           vectors=self.vectors, band=self.band, device=self.device, progress=progress,
                           cancel=cancel, extent=self.extent)


def new_outputs(paths: Sequence[Optional[str]]) -> List[Path]:
    """The paths that do not exist yet: only those may be removed if the job fails."""
    return [Path(p) for p in paths if p and not Path(p).exists()]


def sr_task(job: SuperResolveJob, description: str) -> CoreTask:
    task = CoreTask(description, job)
    task.created.extend(new_outputs([job.out_path, job.trust_path]))  # core removes its temp files; this catches side-cars
    return task


def seg_task(job: SegmentJob, description: str) -> CoreTask:
    task = CoreTask(description, job)
    task.created.extend(new_outputs([job.out_prob, job.out_mask, job.vectors]))
    return task
