"""Job primitives shared by the engine, the CLI and the plugin: progress, cancel, errors, output names.

Why a module of its own, without torch or rasterio: the plugin builds jobs,
cancels them and names their outputs on QGIS's main thread, before (or
without) importing the engine; the CLI does the same before it loads a model.
Everything here is plain Python, so importing it costs nothing and nothing
else needs to copy it.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path
from typing import Callable, Optional, Union

__all__ = [
    "PathLike",
    "Progress",
    "CancelToken",
    "Cancelled",
    "JobError",
    "InputError",
    "OutputError",
    "progress_fn",
    "sub_progress",
    "check_cancel",
    "trust_path_for",
    "unique_path",
    "error_text",
]

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

#: ``progress(fraction in 0..1, message)``: what every long job reports.
Progress = Callable[[float, str], None]


class Cancelled(Exception):
    """The job was cancelled; no output (and no temporary file) was left behind."""


class JobError(Exception):
    """Base of the errors meant for the analyst: the message names the file and what is wrong."""


class InputError(JobError, ValueError):
    """An input (raster, band, extent, checkpoint, option) that cannot be used."""


class OutputError(JobError, OSError):
    """An output that cannot be written (folder missing, not writable, disk full, same as an input)."""


#: What a library says when the real reason is the exception it chained (rasterio >= 1.4 on GDAL errors).
_SEE_CAUSE = re.compile(r"see (the )?previous exception", re.IGNORECASE)


def error_text(exc: BaseException) -> str:
    """The exception's message on one line, followed by those of the exceptions it was raised from.

    Why: with rasterio 1.4 (Debian 13 and later) a damaged GeoTIFF fails with
    "Read failed. See previous exception for details.", and GDAL's own messages
    (which file and band, which tile, how many bytes were missing) are only in
    ``__cause__``. They are collected here, each once, in the order raised;
    a message that only points to "the previous exception" is left out and its
    implicit context (``__context__``) followed as well.
    """
    parts = []
    node: Optional[BaseException] = exc
    for _ in range(16):  # chains are short; a cycle must not hang an error message
        if node is None:
            break
        text = " ".join(str(node).split())
        generic = not text or bool(_SEE_CAUSE.search(text))
        if not generic and not any(text in p for p in parts):
            parts.append(text)
        following = node.__cause__
        if following is None and generic and not node.__suppress_context__:
            following = node.__context__
        node = following
    return "; ".join(parts) or type(exc).__name__


class CancelToken:
    """Thread-safe cancel flag, checked by the engine between tiles and epochs.

    Anything with a boolean ``cancelled`` attribute works where a token is
    expected (the Processing feedback adapter is one).
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


def check_cancel(cancel: Optional[object]) -> None:
    """Raise :class:`Cancelled` when ``cancel`` (a token or None) says so."""
    if cancel is not None and getattr(cancel, "cancelled", False):
        raise Cancelled("cancelled by the user; no output was written")


def progress_fn(progress: Optional[Progress]) -> Progress:
    """A progress callback that clamps to 0..1, logs at debug level and accepts ``None`` (no reporting)."""

    def call(fraction: float, message: str) -> None:
        fraction = float(min(1.0, max(0.0, fraction)))
        log.debug("%3.0f%% %s", 100 * fraction, message)
        if progress is not None:
            progress(fraction, message)

    return call


def sub_progress(progress: Optional[Progress], start: float, end: float, prefix: str = "") -> Progress:
    """Map one step's 0..1 into ``start..end`` of a multi-step job's bar."""
    outer = progress_fn(progress)

    def call(fraction: float, message: str) -> None:
        outer(start + (end - start) * max(0.0, min(1.0, float(fraction))), f"{prefix}{message}")

    return call


def trust_path_for(out_path: PathLike) -> Path:
    """``sr.tif`` -> ``sr_trust.tif`` (same folder): where an SR output's trust map goes."""
    p = Path(out_path)
    return p.with_name(f"{p.stem}_trust{p.suffix or '.tif'}")


def unique_path(folder: PathLike, stem: str, suffix: str = ".tif") -> Path:
    """``folder/stem.tif``, or ``stem_2.tif``, ``stem_3.tif``... : a new file never replaces an analyst's."""
    folder = Path(folder)
    stem = re.sub(r"[^\w.\-]+", "_", stem).strip("_") or "output"
    candidate = folder / f"{stem}{suffix}"
    n = 2
    while candidate.exists() or Path(f"{candidate}.aux.xml").exists():
        candidate = folder / f"{stem}_{n}{suffix}"
        n += 1
    return candidate
