#!/usr/bin/env python3
"""Build the plugin zip that QGIS installs ("Plugins > Install from ZIP", or the plugin repository).

Run:  /usr/bin/python3 scripts/package.py --out dist/s2_taskdriven_sr.zip --name s2_taskdriven_sr

Why an explicit list of what goes in, rather than "everything but...": the
repository root is also the plugin folder, and it holds a virtual
environment, caches, data and run outputs that must never reach a user. Only
the parts QGIS loads are taken (:data:`TOP_FILES`, :data:`TOP_FOLDERS`), minus
byte code and hidden files. The script checks what QGIS checks before it
installs a plugin (the metadata keys, the icon, ``classFactory``), so a broken
zip fails here and not on a user's machine.

Standard library only: it runs with the system Python before any venv exists.
"""

from __future__ import annotations

import argparse
import configparser
import os
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
#: Files at the top of the plugin folder; the optional ones are taken when present.
TOP_FILES: Tuple[str, ...] = ("__init__.py", "plugin.py", "metadata.txt", "LICENSE")
OPTIONAL_TOP_FILES: Tuple[str, ...] = ("README.md", "requirements.txt")  # the pins the installer asks pip for
#: Folders taken whole (see :func:`_skipped` for what is left out inside them).
TOP_FOLDERS: Tuple[str, ...] = ("core", "ui", "resources")
#: Keys QGIS's plugin manager and the plugin repository need in ``metadata.txt``.
REQUIRED_METADATA: Tuple[str, ...] = (
    "name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "repository",
    "tracker", "tags", "category", "icon", "hasProcessingProvider", "supportsQt6",
)
_SKIP_DIRS = {"__pycache__", "tests", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".ipynb_checkpoints"}
_SKIP_SUFFIXES = (".pyc", ".pyo", ".orig", ".rej", ".swp", "~")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can hold


class PackageError(RuntimeError):
    """The plugin folder is not installable as it is; the message says what to fix."""


def _skipped(path: Path) -> bool:
    """Byte code, editor leftovers, hidden files and test folders never ship."""
    return (path.name.startswith(".") or path.name in _SKIP_DIRS or path.name.endswith(_SKIP_SUFFIXES)
            or path.name.endswith(".egg-info"))


def _walk(folder: Path) -> Iterator[Path]:
    """``folder`` and everything below it that ships, folders before their contents, in a stable order."""
    yield folder
    for child in sorted(folder.iterdir()):
        if _skipped(child) or child.is_symlink():
            continue
        if child.is_dir():
            yield from _walk(child)
        elif child.is_file():
            yield child


def plugin_files(root: Path = ROOT) -> List[Path]:
    """Every file and folder of the plugin, relative to ``root``; raises :class:`PackageError` when a part lacks."""
    missing = [name for name in TOP_FILES + TOP_FOLDERS if not (root / name).exists()]
    if missing:
        raise PackageError(f"{root} lacks {', '.join(missing)}: it is not the plugin folder")
    paths = [root / name for name in TOP_FILES]
    paths += [root / name for name in OPTIONAL_TOP_FILES if (root / name).is_file()]
    for name in TOP_FOLDERS:
        paths += list(_walk(root / name))
    return [p.relative_to(root) for p in paths]


def check_metadata(root: Path = ROOT) -> configparser.SectionProxy:
    """The ``[general]`` section of ``metadata.txt``, checked the way QGIS reads it."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive for QGIS (qgisMinimumVersion)
    try:
        parser.read(root / "metadata.txt", encoding="utf-8")
        general = parser["general"]
    except (configparser.Error, KeyError) as exc:
        raise PackageError(f"metadata.txt cannot be read as QGIS reads it: {exc}") from exc
    empty = [key for key in REQUIRED_METADATA if not general.get(key, "").strip()]
    if empty:
        raise PackageError(f"metadata.txt lacks {', '.join(empty)}")
    if not (root / general["icon"]).is_file():
        raise PackageError(f"metadata.txt names the icon {general['icon']}, which does not exist")
    if "def classFactory(" not in (root / "__init__.py").read_text(encoding="utf-8"):
        raise PackageError("__init__.py has no classFactory(iface): QGIS could not load the plugin")
    return general


def build(out: Path, name: str, root: Path = ROOT) -> Tuple[Path, int, int]:
    """Write the zip (top folder ``name``); returns its path, number of files and size in bytes.

    The zip is written beside ``out`` under a temporary name and renamed when
    complete, so an interrupted build never leaves a truncated zip behind.
    """
    check_metadata(root)
    entries = plugin_files(root)
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(handle)
    files = 0
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            zf.writestr(f"{name}/", b"")  # the plugin folder itself: QGIS's installer expects it first
            for rel in entries:
                source = root / rel
                info = zipfile.ZipInfo.from_file(source, f"{name}/{rel.as_posix()}")
                info.date_time = max(info.date_time, _ZIP_EPOCH)
                if source.is_dir():
                    zf.writestr(info, b"")
                    continue
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, source.read_bytes())
                files += 1
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out, files, out.stat().st_size


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "dist" / "s2_taskdriven_sr.zip"), help="zip to write")
    parser.add_argument("--name", default="s2_taskdriven_sr", help="plugin folder name inside the zip")
    parser.add_argument("--root", default=str(ROOT), help="plugin folder to package (the repository root)")
    args = parser.parse_args(argv)
    try:
        path, files, size = build(Path(args.out), args.name, Path(args.root))
    except PackageError as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: {files} files, {size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
