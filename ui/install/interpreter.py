"""QGIS's own Python interpreter: where each platform keeps it, and proof that it is the right one.

Why this is not ``python3`` from PATH: inside QGIS ``sys.executable`` is the
QGIS program itself, and the first ``python3`` on PATH is whatever the analyst
(or pyenv, conda, Homebrew...) put there: another Python whose compiled
wheels (PyTorch) do not load in QGIS. So the interpreter is looked up where
each distribution keeps QGIS's Python, and every candidate is *run* once to
read its version; one whose major.minor differs from the Python QGIS runs is
refused with a message naming both versions.

* Linux: ``<sys.base_prefix>/bin/python3.X`` (Debian/Ubuntu/Fedora packages:
  ``/usr/bin/python3.X``; conda and Flatpak keep it under their own prefix),
  then ``python3.X`` on PATH.
* Windows (OSGeo4W and the standalone installer): ``<sys.prefix>\\python.exe``
  (``apps\\Python3X``), ``%OSGEO4W_ROOT%\\bin\\python3.exe`` and
  ``python-qgis.bat`` (which sets QGIS's environment first).
* macOS (the official app bundle): ``QGIS.app/Contents/MacOS/bin/python3``
  beside the QGIS program, then ``<sys.base_prefix>/bin/python3.X``.

Plain Python except :func:`configured_interpreter` (QgsSettings), so the
finding logic is testable anywhere with fake files and fake interpreters.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .deps import PLUGIN_NAME, DepsError, plugin_deps_dir

__all__ = [
    "INTERPRETER_SETTING",
    "Version",
    "qgis_python_version",
    "format_version",
    "probe_version",
    "interpreter_candidates",
    "check_interpreter",
    "find_python_interpreter",
    "configured_interpreter",
    "set_configured_interpreter",
    "python_interpreter",
    "module_command",
]

#: QgsSettings key of an interpreter chosen by the user (the dialog writes it).
INTERPRETER_SETTING = f"{PLUGIN_NAME}/deps/python"
PROBE_TIMEOUT_S = 30.0

Version = Tuple[int, ...]
Probe = Callable[[os.PathLike], Optional[Version]]


def qgis_python_version() -> Version:
    """The version of the Python QGIS runs (this process)."""
    return tuple(sys.version_info[:3])


def format_version(version: Sequence[int]) -> str:
    return ".".join(str(v) for v in version)


def probe_version(path: os.PathLike, timeout: float = PROBE_TIMEOUT_S) -> Optional[Version]:
    """Run ``path --version`` and read the Python version it prints; None when it is not a Python (or fails)."""
    flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if sys.platform.startswith("win") else 0
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL, creationflags=flags)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    match = re.search(r"Python (\d+)\.(\d+)\.(\d+)", f"{out.stdout}\n{out.stderr}")
    return tuple(int(g) for g in match.groups()) if match else None


def interpreter_candidates(
    executable: Optional[str] = None,
    base_prefix: Optional[str] = None,
    prefix: Optional[str] = None,
    platform: Optional[str] = None,
    version: Optional[Sequence[int]] = None,
    environ: Optional[Mapping[str, str]] = None,
    which: Callable[[str], Optional[str]] = shutil.which,
) -> List[Path]:
    """Where QGIS's Python may be, most likely first (not yet checked: see :func:`find_python_interpreter`)."""
    executable = sys.executable if executable is None else executable
    base_prefix = sys.base_prefix if base_prefix is None else base_prefix
    prefix = sys.prefix if prefix is None else prefix
    platform = sys.platform if platform is None else platform
    environ = os.environ if environ is None else environ
    major, minor = tuple(version if version is not None else sys.version_info[:2])[:2]
    windows = platform.startswith("win")
    exe = Path(executable) if executable else None
    found: List[Path] = []
    if exe is not None:
        name = exe.name.lower()
        if name.startswith("python") and not name.startswith("pythonw"):
            found.append(exe)  # a venv, qgis_process started from python, the tests
    if windows:
        for folder in (prefix, base_prefix):
            if folder:
                found += [Path(folder) / "python.exe", Path(folder) / f"python{major}.exe"]
        root = environ.get("OSGEO4W_ROOT")
        bins = [Path(root) / "bin"] if root else []
        if exe is not None:
            bins.append(exe.parent)  # OSGeo4W: bin\qgis-bin.exe beside bin\python3.exe
        for folder in bins:
            found += [folder / "python3.exe", folder / "python.exe", folder / "python-qgis.bat",
                      folder / "python-qgis-ltr.bat"]
        return _unique(found)
    if platform == "darwin" and exe is not None:
        found += [exe.parent / "bin" / f"python{major}.{minor}", exe.parent / "bin" / "python3"]
    for folder in (base_prefix, prefix):
        if folder:
            found += [Path(folder) / "bin" / f"python{major}.{minor}", Path(folder) / "bin" / f"python{major}"]
    on_path = which(f"python{major}.{minor}")
    if on_path:
        found.append(Path(on_path))
    return _unique(found)


def _unique(paths: List[Path]) -> List[Path]:
    seen, out = set(), []
    for p in paths:
        if str(p) not in seen:
            seen.add(str(p))
            out.append(p)
    return out


def check_interpreter(path: os.PathLike, expected: Optional[Sequence[int]] = None,
                      probe: Probe = probe_version) -> Version:
    """The version of the interpreter at ``path``, or :class:`DepsError` saying why it cannot serve QGIS.

    Refused: a file that does not exist, one that does not run as Python, and
    one whose major.minor differs from QGIS's Python (compiled packages would
    not load in QGIS). The message names both versions.
    """
    expected = tuple(expected if expected is not None else qgis_python_version())
    text = str(path)
    if not text or not os.path.isfile(text):
        raise DepsError(f"the Python interpreter '{text}' does not exist; choose QGIS's own Python "
                        f"{format_version(expected[:2])}")
    found = probe(path)
    if found is None:
        raise DepsError(f"'{text}' did not run as a Python interpreter; choose QGIS's own Python "
                        f"{format_version(expected[:2])}")
    if tuple(found[:2]) != tuple(expected[:2]):
        raise DepsError(f"'{text}' is Python {format_version(found)}, but QGIS runs Python "
                        f"{format_version(expected)}: packages installed with it would not load in QGIS. "
                        f"Choose QGIS's own Python {format_version(expected[:2])}")
    return tuple(found)


def find_python_interpreter(
    executable: Optional[str] = None,
    base_prefix: Optional[str] = None,
    prefix: Optional[str] = None,
    platform: Optional[str] = None,
    version: Optional[Sequence[int]] = None,
    environ: Optional[Mapping[str, str]] = None,
    isfile: Callable[[str], bool] = os.path.isfile,
    which: Callable[[str], Optional[str]] = shutil.which,
    probe: Probe = probe_version,
) -> Optional[Path]:
    """The first candidate that exists and runs as a Python of QGIS's major.minor, or None.

    A candidate of exactly QGIS's version (micro included) wins over one of the
    same major.minor found earlier: that is the very interpreter QGIS embeds
    rather than another build of the same series (a pyenv shim on PATH).
    """
    wanted = tuple(version if version is not None else qgis_python_version())
    same_minor: Optional[Path] = None
    probed: Dict[str, Optional[Version]] = {}
    for candidate in interpreter_candidates(executable, base_prefix, prefix, platform, wanted, environ, which):
        key = str(candidate)
        if key in probed or not isfile(key):
            continue
        probed[key] = found = probe(candidate)
        if found is None or tuple(found[:2]) != wanted[:2]:
            continue
        if len(wanted) < 3 or tuple(found[:3]) == wanted[:3]:
            return candidate
        same_minor = same_minor or candidate
    return same_minor


def configured_interpreter() -> Optional[Path]:
    """The interpreter chosen in the Install dependencies dialog, when it still exists."""
    try:
        from qgis.core import QgsSettings
    except ImportError:
        return None
    value = QgsSettings().value(INTERPRETER_SETTING, "", type=str)
    return Path(value) if value and os.path.isfile(value) else None


def set_configured_interpreter(path: Optional[str]) -> None:
    from qgis.core import QgsSettings

    if path:
        QgsSettings().setValue(INTERPRETER_SETTING, str(path))
    else:
        QgsSettings().remove(INTERPRETER_SETTING)


def python_interpreter(probe: Probe = probe_version) -> Optional[Path]:
    """QGIS's own Python: the configured one when it still matches QGIS's version, else the one found."""
    chosen = configured_interpreter()
    if chosen is not None:
        try:
            check_interpreter(chosen, probe=probe)
            return chosen
        except DepsError:
            pass  # e.g. a Python chosen before QGIS was upgraded: look again
    return find_python_interpreter(probe=probe)


#: The child's first lines: the package folder made visible exactly as inside QGIS (``deps.activate_deps_dir``,
#: loaded from its file: it imports nothing of the plugin), then the module run as ``python -m``.
_BOOTSTRAP = (
    "import importlib.util, runpy, sys; d = sys.argv.pop(1); f = sys.argv.pop(1); m = sys.argv.pop(1); "
    "s = importlib.util.spec_from_file_location('s2sr_plugin_deps', f); k = importlib.util.module_from_spec(s); "
    "sys.modules[s.name] = k; s.loader.exec_module(k); k.activate_deps_dir(d) if d else None; "
    "sys.argv[0] = m; runpy.run_module(m, run_name='__main__', alter_sys=True)"
)


def module_command(
    module: str,
    args: Sequence[str] = (),
    python: Optional[os.PathLike] = None,
    deps_dir: Optional[Path] = None,
) -> List[str]:
    """``python -m module args`` that also sees the plugin's package folder (appended to ``sys.path``).

    PYTHONPATH would put the folder *before* site-packages; this keeps the same
    order as inside QGIS, so a child process (the trainer) loads the same numpy.
    """
    interpreter = python or python_interpreter()
    if not interpreter:
        raise DepsError("QGIS's Python interpreter was not found; choose it in the Install dependencies dialog")
    folder = deps_dir if deps_dir is not None else plugin_deps_dir()
    deps_module = Path(__file__).with_name("deps.py")
    return [str(interpreter), "-c", _BOOTSTRAP, str(folder) if folder else "", str(deps_module), module, *args]
