"""Which Python packages the plugin needs, whether QGIS's Python has them, and where pip puts them.

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
  the numpy that QGIS's own compiled modules were built against. One
  exception: a pure-Python package pip put there because the system's copy
  is too old for PyTorch (Debian 12's sympy 1.11; PyTorch needs 1.13) is
  found there first, through a finder that serves only those packages
  (:func:`newer_in_folder`); compiled ones QGIS builds against never are.

Everything here except :func:`plugin_deps_dir` is plain Python that runs
without QGIS and imports no sibling module, so ``__init__.py`` can use it while
QGIS starts and the pure logic is testable anywhere. Finding QGIS's
interpreter lives in ``interpreter.py``, the pip commands in ``pip.py``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, List, MutableSequence, Optional, Sequence, Tuple

PLUGIN_NAME = "s2_taskdriven_sr"


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
    ``cpu_wheels``: with "CPU-only PyTorch" ticked, it comes from PyTorch's
    CPU wheel index (only torch and torchvision do; everything else from PyPI).
    """

    module: str
    pip: str
    purpose: str
    dist: Optional[str] = None
    min_version: Optional[str] = None
    system_hint: str = ""
    optional: bool = False
    large: bool = False
    cpu_wheels: bool = False

    @property
    def name(self) -> str:
        return self.module


REQUIREMENTS: Tuple[Requirement, ...] = (
    Requirement("torch", "torch>=2.1", "PyTorch: runs the super-resolution and segmentation networks",
                dist="torch", min_version="2.1", large=True, cpu_wheels=True),
    Requirement("torchvision", "torchvision", "image models under the UNet++ encoders (segmentation-models-pytorch "
                "imports it)", dist="torchvision", cpu_wheels=True),
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


def version_tuple(text: str) -> Tuple[int, ...]:
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
    a, b = version_tuple(found), version_tuple(minimum)
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)) >= b + (0,) * (width - len(b))


def dist_version(dist: str) -> Optional[str]:
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
    version_of: Callable[[str], Optional[str]] = dist_version,
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
    version_of: Callable[[str], Optional[str]] = dist_version,
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


#: Packages QGIS or GDAL's compiled modules are built against, or that are compiled themselves: the
#: system's copy always wins, even when the package folder holds a newer one.
PROTECTED = frozenset({"numpy", "osgeo", "gdal", "qgis", "pyqt5", "pyqt6", "sip", "shapely", "pyproj", "rasterio",
                       "fiona", "matplotlib", "scipy", "pillow", "pil", "psycopg2", "lxml", "yaml", "pyyaml"})


def _top_level_names(dist: importlib.metadata.Distribution) -> List[str]:
    """The importable top-level names a distribution provides (``top_level.txt``, else its files)."""
    text = dist.read_text("top_level.txt")
    if text:
        return [n for n in text.split() if n and not n.startswith("_")]
    names = set()
    for f in dist.files or ():
        first = Path(str(f)).parts[0] if Path(str(f)).parts else ""
        if first and not first.endswith((".dist-info", ".egg-info", ".data")) and first not in ("..", "bin"):
            names.add(first[:-3] if first.endswith(".py") else first)
    return sorted(n for n in names if n.isidentifier() and not n.startswith("_"))


def newer_in_folder(folder: Path, others: Sequence[str]) -> List[str]:
    """Top-level modules that ``folder`` holds in a newer version than the copy found on ``others``.

    Why: pip installs a dependency into the package folder when the system's
    copy is too old (PyTorch needs sympy >= 1.13; Debian 12 has 1.11), but an
    appended folder loses to the system's copy, and PyTorch then fails to
    import. Compiled packages QGIS builds against (:data:`PROTECTED`) are never listed.
    """
    system = {}
    for dist in importlib.metadata.distributions(path=[p for p in others if p and Path(p) != Path(folder)]):
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        system.setdefault(name, dist.version)
    names: List[str] = []
    for dist in importlib.metadata.distributions(path=[str(folder)]):
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name in PROTECTED or name not in system:
            continue
        if version_tuple(dist.version) > version_tuple(system[name]):
            names += [n for n in _top_level_names(dist) if n.lower() not in PROTECTED]
    return sorted(set(names))


class FolderFirstFinder(importlib.abc.MetaPathFinder):
    """Finds the listed top-level modules (and so their submodules) in ``folder`` before anywhere else."""

    def __init__(self, folder: Path, names: Sequence[str]) -> None:
        self.folder = str(folder)
        self.names = frozenset(names)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in self.names:
            return None
        return importlib.machinery.PathFinder.find_spec(fullname, [self.folder])


def activate_deps_dir(folder: Path, path: Optional[MutableSequence[str]] = None,
                      meta_path: Optional[MutableSequence[Any]] = None) -> bool:
    """Append ``folder`` to ``sys.path`` (or ``path``) when it exists; True when it is now there.

    Appended, not prepended: packages QGIS already has keep precedence, except
    the pure-Python ones the folder holds because the system's are too old
    (:func:`newer_in_folder`), which a :class:`FolderFirstFinder` at the front
    of ``sys.meta_path`` (or ``meta_path``) serves from the folder.
    """
    path = sys.path if path is None else path
    meta_path = sys.meta_path if meta_path is None else meta_path
    folder = Path(folder)
    if not folder.is_dir():
        return False
    text = str(folder)
    if text not in path:
        path.append(text)
        importlib.invalidate_caches()
    if not any(isinstance(f, FolderFirstFinder) and f.folder == text for f in meta_path):
        try:
            names = newer_in_folder(folder, [p for p in path if p != text])
        except Exception:  # noqa: BLE001 - unreadable metadata: keep the plain append
            names = []
        if names:
            meta_path.insert(0, FolderFirstFinder(folder, names))
    return True


__all__ = [
    "PLUGIN_NAME",
    "REQUIREMENTS",
    "DepsError",
    "Requirement",
    "DepStatus",
    "DepsReport",
    "version_tuple",
    "version_at_least",
    "dist_version",
    "check_requirement",
    "check_dependencies",
    "deps_dir_for",
    "plugin_deps_dir",
    "activate_deps_dir",
    "newer_in_folder",
    "FolderFirstFinder",
    "PROTECTED",
]
