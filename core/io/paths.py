"""Keeping the paths a dataset names inside that dataset, and every write inside the chosen output.

Why a module of its own: scene folders, splits and area records are JSON files
that anyone can edit or download, and they name other files (revisits, masks)
and folders (scene names). Read naively, ``"lr_files": ["/etc/hostname"]``
opens a file outside the dataset, and ``"name": "../victim"`` makes a command
that rewrites scenes replace a folder outside its output. Every such name goes
through one of the two checks below before it is joined to a folder.

The checks are first lexical: an absolute path, a drive, or a ``..`` component
is refused whatever the disk holds. Then the path is resolved (symbolic links
followed) and must still lie inside the dataset's resolved root: a downloaded
dataset may carry ``lr/t00.tif`` as a link to any file on the machine, and a
text check cannot see that. Links that stay inside the dataset work as usual,
and the root itself may be a link.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Type, Union

from ..jobs import InputError, JobError, OutputError

__all__ = ["inside", "contained", "safe_name", "is_inside", "check_output_folder"]

PathLike = Union[str, "os.PathLike[str]"]


def _parts(relative: object, what: str, error: Type[JobError]) -> tuple:
    if isinstance(relative, os.PathLike):
        relative = os.fspath(relative)
    if not isinstance(relative, str):
        raise error(f"{what}: expected a relative path as text, got {type(relative).__name__} {relative!r}")
    if not relative.strip() or "\x00" in relative:
        raise error(f"{what}: {relative!r} is not a usable path")
    # Both spellings: a dataset written on Windows may use backslashes, and "C:x" is a drive there.
    posix, windows = PurePosixPath(relative), PureWindowsPath(relative)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or relative.startswith(("/", "\\")):
        raise error(f"{what}: {relative!r} is an absolute path; only paths relative to the folder are allowed")
    parts = windows.parts
    if any(p == ".." for p in parts):
        raise error(f"{what}: {relative!r} leaves its folder (contains '..'); only paths inside it are allowed")
    return tuple(p for p in parts if p not in ("", "."))


def inside(root: PathLike, relative: object, what: str = "path", error: Type[JobError] = InputError) -> Path:
    """``root / relative`` when ``relative`` names something inside ``root``; ``error`` otherwise.

    ``what`` names the field in the message (e.g. ``"scene.json: lr_files[2]"``).
    ``error`` is :class:`~core.jobs.InputError` for names read from a dataset,
    :class:`~core.jobs.OutputError` for names of things about to be written.
    """
    parts = _parts(relative, what, error)
    if not parts:
        raise error(f"{what}: {relative!r} names the folder itself, not something inside it")
    return contained(Path(root).joinpath(*parts), root, what, error)


def contained(path: PathLike, root: PathLike, what: str = "path", error: Type[JobError] = InputError) -> Path:
    """``path`` when, links resolved, it lies inside ``root`` (resolved too); ``error`` naming where it leads otherwise.

    For files found by listing a dataset folder (``lr/*.tif``), which passed no
    text check, and after the text check of :func:`inside`. A path that does not
    exist yet resolves as far as it exists, so this also guards writes.
    """
    path = Path(path)
    target = path.resolve()
    if not target.is_relative_to(Path(root).resolve()):
        raise error(f"{what}: {path} leads outside {Path(root)} (to {target}, through a link); "
                    "only files inside the folder are read")
    return path


def safe_name(name: object, what: str = "name", error: Type[JobError] = InputError) -> str:
    """``name`` when it can be one folder or file name inside an output folder; ``error`` otherwise.

    One path component, not hidden (names starting with ``.`` are this
    project's temporary files and are skipped when listing a dataset).
    """
    if not isinstance(name, str):
        raise error(f"{what}: expected text, got {type(name).__name__} {name!r}")
    parts = _parts(name, what, error)
    if len(parts) != 1 or parts[0] != name.strip() or "/" in name or "\\" in name:
        raise error(f"{what}: {name!r} must be a single folder or file name (no '/', '\\', '.' or '..')")
    if name.startswith("."):
        raise error(f"{what}: {name!r} starts with '.', which marks hidden temporary files here; rename it")
    return name


def is_inside(path: PathLike, root: PathLike) -> bool:
    """Does ``path`` (resolved, links followed) lie in ``root`` (resolved) or equal it?"""
    try:
        Path(path).resolve().relative_to(Path(root).resolve())
    except ValueError:
        return False
    return True


def check_output_folder(path: PathLike, what: str = "output folder") -> Path:
    """``path`` when a folder can be there (it is one, or can be made); :class:`OutputError` in one sentence otherwise.

    Checked before any work and without creating anything, so a refused job
    leaves no empty folder, and the analyst reads what is wrong with the path
    instead of ``[Errno 17] File exists`` from deep inside the job.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: exists and is a file, not a folder; give a new or existing folder as the {what}")
    ancestor = path
    while not ancestor.exists():
        if ancestor.parent == ancestor:
            break
        ancestor = ancestor.parent
    if ancestor != path and not ancestor.is_dir():
        raise OutputError(f"{path}: cannot be made, {ancestor} is a file, not a folder; choose another {what}")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: cannot be written, {ancestor} is not writable; choose another {what}")
    return path
