"""Atomic file replacement: a file is either the old good one or the new complete one, never half of each.

Why one module: outputs, checkpoints, reports, scene folders and JSON files
are all written the same way (a hidden temporary file beside the target, then
``os.replace``), and the details matter for every one of them:

* the temporary file lives in the target's folder, so the rename is atomic;
* its name carries the writer's process id, so a later run can tell an orphan
  left by a killed process (SIGKILL, power cut) from a file another live
  process is still writing, and removes only the orphans;
* a GDAL side-car (``.aux.xml``) of the *old* target is removed with it: its
  statistics describe pixels that no longer exist.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, Iterator, Union

from .jsonsafe import json_safe

__all__ = ["temp_path_for", "atomic_write", "write_text_atomic", "write_json_atomic", "remove_orphans",
           "replace_file", "replace_folder"]

PathLike = Union[str, "os.PathLike[str]"]
_MARK = ".partial-"


def temp_path_for(path: PathLike, suffix: str = "") -> Path:
    """Hidden temporary file beside ``path``: ``.name.partial-<pid>-<random><suffix>``."""
    p = Path(path)
    return p.parent / f".{p.name}{_MARK}{os.getpid()}-{secrets.token_hex(4)}{suffix}"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OSError:
        return True
    return True


def remove_orphans(path: PathLike) -> int:
    """Delete temporary files of ``path`` left by processes that no longer run; returns how many.

    Files of live processes (another run writing the same output) are left alone;
    temporary files in the old format (no process id) are orphans by definition.
    """
    p = Path(path)
    removed = 0
    try:
        candidates = list(p.parent.glob(f".{p.name}{_MARK}*"))
    except OSError:
        return 0
    for tmp in candidates:
        rest = tmp.name[len(f".{p.name}{_MARK}"):]
        pid_text = rest.split("-", 1)[0]
        if pid_text.isdigit() and "-" in rest and _pid_alive(int(pid_text)):
            continue
        try:
            if tmp.is_dir():
                import shutil

                shutil.rmtree(tmp)
            else:
                tmp.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def replace_file(tmp: PathLike, path: PathLike) -> None:
    """Rename ``tmp`` over ``path`` and carry (or drop) the GDAL side-car so no stale one survives."""
    tmp, path = Path(tmp), Path(path)
    os.replace(tmp, path)
    side_tmp, side = Path(f"{tmp}.aux.xml"), Path(f"{path}.aux.xml")
    if side_tmp.exists():
        os.replace(side_tmp, side)
    else:
        with contextlib.suppress(FileNotFoundError):
            side.unlink()


def replace_folder(tmp: PathLike, path: PathLike) -> None:
    """Rename the finished folder ``tmp`` onto ``path``; an old folder there is moved aside first and removed only then.

    Folders cannot be renamed over a non-empty one, so the old one goes to a
    hidden sibling (no file of it survives in ``path``); scenes, areas and
    Wald pairs are all put in place this way.
    """
    tmp, path = Path(tmp), Path(path)
    if path.exists():
        old = temp_path_for(path, ".old")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


@contextlib.contextmanager
def atomic_write(path: PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on any error it is deleted.

    ``suffix`` keeps a file extension on the temporary name for writers that
    choose their format by it (``.gpkg``, ``.png``). Orphans of earlier, killed
    runs are removed first.
    """
    target = Path(path)
    remove_orphans(target)
    tmp = temp_path_for(target, suffix)
    try:
        yield tmp
        replace_file(tmp, target)
    except BaseException:
        for leftover in (tmp, Path(f"{tmp}.aux.xml"), Path(f"{tmp}-journal"), Path(f"{tmp}-wal"),
                         Path(f"{tmp}-shm")):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                leftover.unlink()
        raise


def write_text_atomic(path: PathLike, text: str) -> Path:
    """Write a text file atomically (UTF-8)."""
    with atomic_write(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def write_json_atomic(path: PathLike, obj: Any, indent: int = 1) -> Path:
    """Write strict JSON (NaN -> null, see :func:`core.io.jsonsafe.json_safe`) atomically."""
    return write_text_atomic(path, json.dumps(json_safe(obj), indent=indent) + "\n")
