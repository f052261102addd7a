"""Which Python packages the plugin needs, whether QGIS's Python has them, and how pip can add them.

Why this module is careful:

* QGIS ships its own Python. The packages the engine needs (PyTorch,
  segmentation-models-pytorch, rasterio...) are often missing there, and a
  plugin that imports them at start-up fails to load with a traceback. So the
  check looks first (``importlib.util.find_spec``, which imports nothing) and
  imports only when asked (``deep=True``), inside a guard that turns any error,
  including a broken binary, into a reason written for the analyst.
* pip installs into a folder the plugin owns (``plugin_deps_dir()``), never into
  QGIS's own site-packages: that needs no administrator rights, bypasses the
  "externally managed environment" lock of Debian-like systems, and is undone
  by deleting one folder.
* That folder is *appended* to ``sys.path``: whatever QGIS already ships
  (numpy, GDAL's Python bindings) keeps winning, so an install can never swap
  the numpy that QGIS's own compiled modules were built against.

Everything except :func:`plugin_deps_dir`, :func:`configured_interpreter` and
:func:`python_interpreter` is plain Python that runs without QGIS, so the pure
logic is testable anywhere and ``__init__.py`` can use it while QGIS starts.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, List, MutableSequence, Optional, Sequence, Tuple

PLUGIN_NAME = "s2_taskdriven_sr"
#: QgsSettings key of an interpreter chosen by the user (the dialog writes it).
INTERPRETER_SETTING = f"{PLUGIN_NAME}/deps/python"
#: Extra index with CPU-only PyTorch wheels (a fraction of the size of the default CUDA wheels on Linux).
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


class DepsError(RuntimeError):
    """A dependency step cannot go on; the message says why in plain words."""


@dataclass(frozen=True)
class Requirement:
    """One Python package the plugin uses.

    ``module`` is what ``import`` needs, ``pip`` the specifier handed to pip
    (their names differ: ``yaml`` comes from ``pyyaml``), ``dist`` the
    distribution whose version is read, ``purpose`` says in the dialog why the
    package is wanted, and ``system_hint`` how to get it from the platform's
    own packages when that is the better way (rasterio links to GDAL).
    """

    module: str
    pip: str
    purpose: str
    dist: Optional[str] = None
    min_version: Optional[str] = None
    system_hint: str = ""
    optional: bool = False
    large: bool = False

    @property
    def name(self) -> str:
        return self.module


REQUIREMENTS: Tuple[Requirement, ...] = (
    Requirement("torch", "torch>=2.1", "PyTorch: runs the super-resolution and segmentation networks",
                dist="torch", min_version="2.1", large=True),
    Requirement("segmentation_models_pytorch", "segmentation-models-pytorch>=0.3.3",
                "UNet++ networks that find buildings and roads", dist="segmentation-models-pytorch",
                min_version="0.3.3"),
    Requirement("safetensors", "safetensors>=0.4", "reads and writes the model files (.safetensors)",
                dist="safetensors", min_version="0.4"),
    Requirement("yaml", "pyyaml>=6.0", "reads training configurations (YAML)", dist="PyYAML", min_version="6.0"),
    Requirement("torchmetrics", "torchmetrics>=1.0", "image-quality metrics (SSIM, LPIPS) in comparisons",
                dist="torchmetrics", min_version="1.0"),
    Requirement("tqdm", "tqdm>=4.60", "progress bars of the headless trainer", dist="tqdm", min_version="4.60"),
    Requirement("rasterio", "rasterio>=1.3", "reads and writes GeoTIFFs window by window", dist="rasterio",
                min_version="1.3",
                system_hint=("best from the system's packages, so that it shares QGIS's GDAL: "
                             "Debian/Ubuntu 'sudo apt install python3-rasterio'; conda 'conda install -c "
                             "conda-forge rasterio'; Windows (OSGeo4W Shell) 'python -m pip install rasterio'")),
    Requirement("matplotlib", "matplotlib>=3.5", "training curves and report figures", dist="matplotlib",
                min_version="3.5", optional=True),
)


@dataclass
class DepStatus:
    """What the check found for one requirement; ``problem`` is None when it is usable."""

    requirement: Requirement
    found: bool
    version: Optional[str] = None
    problem: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.found and self.problem is None

    @property
    def name(self) -> str:
        return self.requirement.module

    def describe(self) -> str:
        """One line for the dialog and the log: ``torch: not installed``."""
        if self.ok:
            return f"{self.name} {self.version or ''}".strip() + ": found"
        return f"{self.name}: {self.problem}"


@dataclass
class DepsReport:
    """The result of :func:`check_dependencies`; ``missing`` lists required packages that are not usable."""

    statuses: List[DepStatus] = field(default_factory=list)
    python: str = field(default_factory=lambda: ".".join(map(str, sys.version_info[:3])))
    deep: bool = False

    @property
    def missing(self) -> List[DepStatus]:
        return [s for s in self.statuses if not s.ok and not s.requirement.optional]

    @property
    def missing_optional(self) -> List[DepStatus]:
        return [s for s in self.statuses if not s.ok and s.requirement.optional]

    @property
    def missing_names(self) -> List[str]:
        return [s.name for s in self.missing]

    @property
    def ok(self) -> bool:
        return not self.missing

    def status(self, module: str) -> Optional[DepStatus]:
        return next((s for s in self.statuses if s.name == module), None)

    def summary(self) -> str:
        """A sentence for the message bar."""
        if self.ok:
            return f"all required Python packages are present (Python {self.python})"
        parts = [s.describe() for s in self.missing]
        return f"QGIS's Python {self.python} lacks what the plugin needs: " + "; ".join(parts)


# --------------------------------------------------------------------------- checking


def _version_tuple(text: str) -> Tuple[int, ...]:
    """Leading numeric parts of a version (``2.1.0+cpu`` -> (2, 1, 0)), enough to compare minimums."""
    numbers: List[int] = []
    for part in re.split(r"[.+-]", text):
        match = re.match(r"\d+", part)
        if not match:
            break
        numbers.append(int(match.group()))
        if match.group() != part:
            break
    return tuple(numbers)


def version_at_least(found: str, minimum: str) -> bool:
    """True when ``found`` is ``minimum`` or newer (numeric parts only; pre-release tags are ignored)."""
    a, b = _version_tuple(found), _version_tuple(minimum)
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)) >= b + (0,) * (width - len(b))


def _dist_version(dist: str) -> Optional[str]:
    try:
        return importlib.metadata.version(dist)
    except Exception:  # not installed as a distribution (e.g. vendored), or broken metadata
        return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'no message'}"


def check_requirement(
    req: Requirement,
    deep: bool = False,
    finder: Callable[[str], object] = importlib.util.find_spec,
    importer: Callable[[str], object] = importlib.import_module,
    version_of: Callable[[str], Optional[str]] = _dist_version,
) -> DepStatus:
    """Check one requirement without ever raising.

    ``deep`` also imports the module: that catches a package that is present but
    broken (a binary built for another numpy, a missing DLL) at the cost of the
    import time (seconds for PyTorch), so start-up checks stay shallow.
    """
    try:
        spec = finder(req.module)
    except Exception as exc:  # find_spec raises for odd sys.modules entries or broken parent packages
        return DepStatus(req, False, None, f"cannot be looked up ({_one_line(exc)})")
    if spec is None:
        return DepStatus(req, False, None, f"not installed (pip package '{req.pip}')")
    version = version_of(req.dist) if req.dist else None
    if deep:
        try:
            module = importer(req.module)
        except Exception as exc:
            return DepStatus(req, True, version, f"installed but fails to import ({_one_line(exc)})")
        version = version or getattr(module, "__version__", None)
    if version and req.min_version and not version_at_least(str(version), req.min_version):
        return DepStatus(req, True, str(version), f"version {version} is too old (need {req.min_version} or newer)")
    return DepStatus(req, True, str(version) if version else None, None)


def check_dependencies(
    requirements: Iterable[Requirement] = REQUIREMENTS,
    deep: bool = False,
    finder: Callable[[str], object] = importlib.util.find_spec,
    importer: Callable[[str], object] = importlib.import_module,
    version_of: Callable[[str], Optional[str]] = _dist_version,
) -> DepsReport:
    """Check every requirement; see :func:`check_requirement`. Never raises."""
    statuses = [check_requirement(r, deep, finder, importer, version_of) for r in requirements]
    return DepsReport(statuses=statuses, deep=deep)


# --------------------------------------------------------------------------- the plugin's package folder


def deps_dir_for(settings_dir: Path, version: Sequence[int] = tuple(sys.version_info[:2])) -> Path:
    """``<QGIS profile>/python/dependencies/s2_taskdriven_sr/py3XY``.

    One folder per Python minor version because compiled wheels (PyTorch) only
    work with the Python they were built for; a QGIS upgrade to a new Python then
    simply starts from an empty folder instead of loading broken binaries.
    """
    return Path(settings_dir) / "python" / "dependencies" / PLUGIN_NAME / f"py{version[0]}{version[1]}"


def plugin_deps_dir() -> Optional[Path]:
    """The folder of the current QGIS profile where the plugin's pip installs go (None without QGIS)."""
    try:
        from qgis.core import QgsApplication
    except ImportError:
        return None
    base = QgsApplication.qgisSettingsDirPath()
    return deps_dir_for(Path(base)) if base else None


def activate_deps_dir(folder: Path, path: Optional[MutableSequence[str]] = None) -> bool:
    """Append ``folder`` to ``sys.path`` (or ``path``) when it exists; True when it is now there.

    Appended, not prepended: packages QGIS already has keep precedence.
    """
    path = sys.path if path is None else path
    folder = Path(folder)
    if not folder.is_dir():
        return False
    text = str(folder)
    if text not in path:
        path.append(text)
        importlib.invalidate_caches()
    return True


# --------------------------------------------------------------------------- QGIS's interpreter


def find_python_interpreter(
    executable: Optional[str] = None,
    base_prefix: Optional[str] = None,
    platform: Optional[str] = None,
    version: Optional[Sequence[int]] = None,
    isfile: Callable[[str], bool] = os.path.isfile,
    which: Callable[[str], Optional[str]] = shutil.which,
) -> Optional[Path]:
    """The Python executable that matches the running Python, or None.

    Inside QGIS ``sys.executable`` is usually the QGIS program itself, not a
    Python, so the interpreter is looked up where each distribution keeps it:
    ``<base_prefix>/bin/python3.X`` on Linux and in macOS bundles,
    ``<base_prefix>\\python.exe`` on Windows (OSGeo4W and the standalone
    installer keep Python in ``apps\\Python3X``); last, a ``python3.X`` on PATH,
    which has the same minor version by its name.
    """
    executable = sys.executable if executable is None else executable
    base_prefix = sys.base_prefix if base_prefix is None else base_prefix
    platform = sys.platform if platform is None else platform
    major, minor = tuple(version if version is not None else sys.version_info[:2])[:2]
    windows = platform.startswith("win")

    if executable:
        name = Path(executable).name.lower()
        if name.startswith("python") and not name.startswith("pythonw") and isfile(executable):
            return Path(executable)  # a venv, qgis_process started from python, the tests
    candidates: List[Path] = []
    if base_prefix:
        base = Path(base_prefix)
        if windows:
            candidates += [base / "python.exe", base / f"python{major}.exe"]
        else:
            candidates += [base / "bin" / f"python{major}.{minor}", base / "bin" / f"python{major}"]
    if executable and windows:
        folder = Path(executable).parent  # OSGeo4W: bin\qgis-bin.exe beside bin\python3.exe
        candidates += [folder / "python3.exe", folder / "python.exe"]
    for candidate in candidates:
        if isfile(str(candidate)):
            return candidate
    found = which(f"python{major}.{minor}") if not windows else None
    return Path(found) if found else None


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


def python_interpreter() -> Optional[Path]:
    """QGIS's own Python: the configured one, else :func:`find_python_interpreter`."""
    return configured_interpreter() or find_python_interpreter()


# --------------------------------------------------------------------------- pip


def numpy_constraints(version_of: Callable[[str], Optional[str]] = _dist_version) -> List[str]:
    """Pins that keep pip from fetching a numpy that QGIS's own numpy would not match.

    ``pip --target`` resolves as if nothing were installed, so without this a
    package that needs numpy would bring numpy 2 next to QGIS's numpy 1.
    """
    found = version_of("numpy")
    if found and _version_tuple(found)[:1] == (1,):
        return ["numpy<2"]
    return []


def pip_command(
    packages: Sequence[str],
    target_dir: Path,
    extra_args: Sequence[str] = (),
    python: Optional[os.PathLike] = None,
    constraints_file: Optional[Path] = None,
) -> List[str]:
    """The pip command that installs ``packages`` into ``target_dir`` for QGIS's Python.

    ``--target`` keeps QGIS's site-packages untouched; ``--upgrade`` lets a second
    run replace what a first run put there; ``--no-input`` makes pip fail instead
    of waiting for a password prompt nobody can see.
    """
    if not packages:
        raise DepsError("nothing to install: no package was chosen")
    interpreter = python or python_interpreter()
    if not interpreter:
        raise DepsError("QGIS's Python interpreter was not found; choose it in the Install dependencies dialog")
    command = [str(interpreter), "-m", "pip", "install", "--target", str(target_dir), "--upgrade",
               "--no-input", "--disable-pip-version-check", "--no-warn-script-location", "--progress-bar", "off"]
    if constraints_file is not None:
        command += ["--constraint", str(constraints_file)]
    command += list(extra_args)
    command += list(packages)
    return command


#: Known pip failure texts -> what to tell the analyst. Checked in order.
_PIP_FAILURES: Tuple[Tuple[str, str], ...] = (
    (r"No module named pip",
     "pip is not available for this Python. Install it first (Debian/Ubuntu: 'sudo apt install python3-pip'; "
     "Windows: run the OSGeo4W installer and add python3-pip), or choose another interpreter."),
    (r"No space left on device", "the disk is full; free some space (PyTorch alone needs several hundred MB)."),
    (r"(Permission denied|Access is denied)",
     "no permission to write into the target folder; check its permissions or choose another profile."),
    (r"(Temporary failure in name resolution|Failed to establish a new connection|Max retries exceeded|"
     r"NewConnectionError|ConnectTimeout|ProxyError|Network is unreachable|getaddrinfo failed)",
     "the package index could not be reached; check the internet connection or the proxy settings "
     "(pip reads HTTPS_PROXY)."),
    (r"SSL(Error|: CERTIFICATE_VERIFY_FAILED)|SSL module is not available",
     "a secure connection to the package index failed (SSL); a company proxy may need its certificate "
     "configured for pip."),
    (r"No matching distribution found for ([^\s]+)",
     "pip found no version of {0} for this Python and platform; check the Python version and the "
     "package name."),
    (r"Could not find a version that satisfies the requirement ([^\s]+)",
     "pip found no version of {0} for this Python and platform."),
)


def explain_pip_failure(output: str, exit_code: Optional[int]) -> str:
    """A plain-words reason for a failed pip run, from its output."""
    for pattern, message in _PIP_FAILURES:
        match = re.search(pattern, output or "")
        if match:
            groups = [g for g in match.groups() if g] if match.groups() else []
            return message.format(*(groups[-1:] or [""]))
    tail = [line.strip() for line in (output or "").splitlines() if line.strip()]
    last = next((line for line in reversed(tail) if line.startswith("ERROR")), tail[-1] if tail else "")
    code = f"exit code {exit_code}" if exit_code is not None else "no exit code"
    return f"pip failed ({code}){': ' + last if last else ''}. The log above has the details."


# --------------------------------------------------------------------------- child processes


_BOOTSTRAP = (
    "import runpy, sys; d = sys.argv.pop(1); m = sys.argv.pop(1); "
    "sys.path.append(d) if d and d not in sys.path else None; "
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
    return [str(interpreter), "-c", _BOOTSTRAP, str(folder) if folder else "", module, *args]


__all__ = [
    "PLUGIN_NAME",
    "REQUIREMENTS",
    "TORCH_CPU_INDEX",
    "DepsError",
    "Requirement",
    "DepStatus",
    "DepsReport",
    "version_at_least",
    "check_requirement",
    "check_dependencies",
    "deps_dir_for",
    "plugin_deps_dir",
    "activate_deps_dir",
    "find_python_interpreter",
    "configured_interpreter",
    "set_configured_interpreter",
    "python_interpreter",
    "numpy_constraints",
    "pip_command",
    "explain_pip_failure",
    "module_command",
]
