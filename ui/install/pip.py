"""The pip commands the Install dependencies dialog shows and runs, and what their failures mean.

Why a plan of several commands: "CPU-only PyTorch" must take torch and
torchvision, and only them, from PyTorch's CPU wheel index; every other
package comes from PyPI. pip has no per-package index, and ``--target``
ignores what is installed (so a second ``pip install`` of
segmentation-models-pytorch would fetch the multi-gigabyte CUDA torch again).
So the plan is:

1. ``pip download --no-deps`` of torch and torchvision from the CPU index into
   a wheel folder;
2. one ``pip install --target`` of everything from PyPI, with that folder as
   ``--find-links`` and a constraints file pinning torch and torchvision to
   the exact CPU builds just downloaded (written between the two steps).

Without CPU wheels the plan is step 2 alone. The dialog shows each command
exactly as it runs it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .deps import DepsError, Requirement, dist_version, version_tuple
from .interpreter import python_interpreter

__all__ = [
    "TORCH_CPU_INDEX",
    "CPU_SOURCE",
    "InstallPlan",
    "numpy_constraints",
    "pip_command",
    "download_command",
    "plan_install",
    "wheel_pins",
    "write_constraints",
    "explain_pip_failure",
    "requirement_specs",
    "pinned_spec",
    "REQUIREMENTS_FILE",
]

#: PyTorch's index of CPU-only wheels (a fraction of the size of the default CUDA wheels on Linux).
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
#: Where the CPU wheels come from: that index *instead of* PyPI, for torch and torchvision only.
CPU_SOURCE: Tuple[str, ...] = ("--index-url", TORCH_CPU_INDEX)
_QUIET = ("--no-input", "--disable-pip-version-check", "--progress-bar", "off")


@dataclass
class InstallPlan:
    """The commands to run in order, and the files they share (all inside ``work_dir``)."""

    commands: List[List[str]]
    wheelhouse: Optional[Path] = None  # CPU wheels downloaded by the first command
    constraints: Optional[Path] = None
    pins: List[str] = field(default_factory=list)  # fixed lines of the constraints file (numpy)


#: The pinned requirements the plugin is tested with (shipped in the plugin's zip beside plugin.py).
REQUIREMENTS_FILE = Path(__file__).resolve().parents[2] / "requirements.txt"
_REQUIREMENT_LINE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*((?:[<>=!~]=?|===)[^;#]*)?")


def requirement_specs(path: Optional[Path] = None) -> Dict[str, str]:
    """``{normalised name: specifier}`` of ``requirements.txt`` (``{"torch": "torch==2.14.1"}``); {} without it."""
    path = REQUIREMENTS_FILE if path is None else Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    specs: Dict[str, str] = {}
    for line in lines:
        match = _REQUIREMENT_LINE.match(line.split("#", 1)[0])
        if match and match.group(2):
            name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
            specs[name] = f"{match.group(1)}{match.group(2).strip()}"
    return specs


def pinned_spec(req: Requirement, specs: Optional[Dict[str, str]] = None) -> str:
    """What pip is asked for: the version ``requirements.txt`` pins (torch, smp ...), else the requirement's floor.

    Why: the installer asked for ``torch>=2.1`` while the plugin is tested with
    the exact versions in ``requirements.txt``; pip then fetched whatever was
    newest (issue 21).
    """
    specs = requirement_specs() if specs is None else specs
    name = re.sub(r"[-_.]+", "-", re.split(r"[<>=!~ \[]", req.pip, maxsplit=1)[0]).lower()
    return specs.get(name, req.pip)


def numpy_constraints(version_of: Callable[[str], Optional[str]] = dist_version) -> List[str]:
    """Pins that keep pip from fetching a numpy that QGIS's own numpy would not match.

    ``pip --target`` resolves as if nothing were installed, so without this a
    package that needs numpy would bring numpy 2 next to QGIS's numpy 1.
    """
    found = version_of("numpy")
    if found and version_tuple(found)[:1] == (1,):
        return ["numpy<2"]
    return []


def _python(python: Optional[os.PathLike]) -> str:
    interpreter = python or python_interpreter()
    if not interpreter:
        raise DepsError("QGIS's Python interpreter was not found; choose it in the Install dependencies dialog")
    return str(interpreter)


def pip_command(
    packages: Sequence[str],
    target_dir: Path,
    extra_args: Sequence[str] = (),
    python: Optional[os.PathLike] = None,
    constraints_file: Optional[Path] = None,
    find_links: Optional[Path] = None,
) -> List[str]:
    """The pip command that installs ``packages`` into ``target_dir`` for QGIS's Python.

    ``--target`` keeps QGIS's site-packages untouched; ``--upgrade`` lets a second
    run replace what a first run put there; ``--no-input`` makes pip fail instead
    of waiting for a password prompt nobody can see.
    """
    if not packages:
        raise DepsError("nothing to install: no package was chosen")
    command = [_python(python), "-m", "pip", "install", "--target", str(target_dir), "--upgrade",
               "--no-input", "--disable-pip-version-check", "--no-warn-script-location", "--progress-bar", "off"]
    if constraints_file is not None:
        command += ["--constraint", str(constraints_file)]
    if find_links is not None:
        command += ["--find-links", str(find_links)]
    command += list(extra_args)
    command += list(packages)
    return command


def download_command(
    packages: Sequence[str],
    dest: Path,
    source: Sequence[str] = CPU_SOURCE,
    extra_args: Sequence[str] = (),
    python: Optional[os.PathLike] = None,
) -> List[str]:
    """``pip download`` of ``packages`` alone (no dependencies, wheels only) from ``source`` into ``dest``."""
    if not packages:
        raise DepsError("nothing to download: no package was chosen")
    return [_python(python), "-m", "pip", "download", "--dest", str(dest), "--no-deps", "--only-binary", ":all:",
            *_QUIET, *extra_args, *source, *packages]


def plan_install(
    selected: Sequence[Requirement],
    target_dir: Path,
    work_dir: Path,
    python: Optional[os.PathLike] = None,
    cpu_wheels: bool = False,
    extra_args: Sequence[str] = (),
    cpu_source: Sequence[str] = CPU_SOURCE,
    pins: Sequence[str] = (),
    companions: Sequence[Requirement] = (),
) -> InstallPlan:
    """The commands that install ``selected`` (see the module's docstring for why there may be two).

    ``companions``: every requirement the plugin knows; with ``cpu_wheels`` all
    of them marked ``cpu_wheels`` (torch *and* torchvision) come from the CPU
    index as soon as one is selected, because a CUDA torchvision does not load
    beside a CPU torch.
    """
    if not selected:
        raise DepsError("nothing to install: no package was chosen")
    python = _python(python)
    work_dir = Path(work_dir)
    cpu: List[Requirement] = []
    if cpu_wheels and any(r.cpu_wheels for r in selected):
        cpu = [r for r in selected if r.cpu_wheels]
        cpu += [r for r in companions if r.cpu_wheels and r.module not in {c.module for c in cpu}]
    specs = requirement_specs()
    packages = [pinned_spec(r, specs) for r in selected] + [pinned_spec(r, specs) for r in cpu if r not in selected]
    wheelhouse = work_dir / "cpu-wheels" if cpu else None
    constraints = work_dir / "constraints.txt" if (pins or cpu) else None
    commands: List[List[str]] = []
    if cpu:
        commands.append(download_command([pinned_spec(r, specs) for r in cpu], wheelhouse, cpu_source, extra_args,
                                         python))
    commands.append(pip_command(packages, target_dir, extra_args, python, constraints, wheelhouse))
    return InstallPlan(commands, wheelhouse, constraints, list(pins))


_WHEEL = re.compile(r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[^-]+)-")


def wheel_pins(folder: Optional[Path]) -> List[str]:
    """``name==version`` of every wheel in ``folder`` (local labels such as ``+cpu`` included)."""
    if folder is None or not Path(folder).is_dir():
        return []
    pins = []
    for wheel in sorted(Path(folder).glob("*.whl")):
        match = _WHEEL.match(wheel.name)
        if match:
            pins.append(f"{match.group('name').replace('_', '-').lower()}=={match.group('version')}")
    return pins


def write_constraints(plan: InstallPlan) -> str:
    """Write the plan's constraints file (fixed pins + the CPU wheels downloaded so far); returns its text."""
    if plan.constraints is None:
        return ""
    text = "\n".join([*plan.pins, *wheel_pins(plan.wheelhouse)]) + "\n"
    plan.constraints.parent.mkdir(parents=True, exist_ok=True)
    plan.constraints.write_text(text, encoding="utf-8")
    return text


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
