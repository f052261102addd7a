# SPDX-License-Identifier: GPL-2.0-or-later
"""Keep triton, PyTorch's GPU kernel compiler, out of the QGIS process.

Why: the standard (CUDA) PyTorch wheels bring ``triton``, and importing
``segmentation_models_pytorch`` reaches it (``timm`` -> ``torchvision.ops``
-> ``torch._dynamo`` -> ``import triton``). ``triton/_C/libtriton.so`` carries
its own copy of LLVM, whose static initialisers collide with the ``libLLVM``
that Mesa's OpenGL driver has already loaded into QGIS: QGIS dies with
SIGSEGV the moment the library is opened (seen in ``llvm::DebugCounter``
while ``dlopen`` runs the initialisers). Tests that run QGIS with
``QT_QPA_PLATFORM=offscreen`` never load Mesa and never see it.

The plugin only runs eager inference and never compiles kernels, so triton is
not needed inside QGIS. :func:`install` makes it unimportable there, the way a
missing package is: ``sys.modules["triton"] = None`` (``import triton`` raises
``ModuleNotFoundError`` and ``importlib.util.find_spec("triton")`` returns
None, which is exactly what PyTorch checks in ``torch/utils/_triton.py`` and
``torch/_native``), plus a ``sys.meta_path`` finder that puts that entry back
should anything remove it. A PyTorch without triton (CPU wheels, Debian's
``python3-torch``) therefore behaves exactly as before.

Why not an environment variable: QGIS starts the trainer
(``python -m core.cli``) as a child process, which inherits the environment
and may want triton on a GPU; this guard lives in QGIS's interpreter only.
It is installed when the plugin package is imported (before any part of the
plugin imports PyTorch) and only when QGIS's Python bindings are already
loaded, so the headless trainer, which never imports ``qgis``, is untouched.
It is deliberately not removed when the plugin unloads: PyTorch stays
imported in QGIS after an unload, and a later import of triton would crash
QGIS just the same.

This module imports nothing but the standard library; it must never import
PyTorch (that is what it protects) nor Qt at import time.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from typing import Callable, List, MutableMapping, Optional, Sequence

#: Top-level packages kept out of QGIS. triton is the one known to bring a second LLVM.
BLOCKED: tuple = ("triton",)
#: Set to 1 to let triton load inside QGIS (debugging; the GUI test's proof that the guard is needed).
ENV_ALLOW = "S2SR_ALLOW_TRITON"

BLOCKED_NOW = "blocked"            # the guard was installed by this call
ALREADY = "already-installed"      # an earlier call (or an earlier copy of this module) installed it
TOO_LATE = "already-loaded"        # triton was imported before the plugin (e.g. by another plugin)
ALLOWED = "allowed-by-environment"
NOT_QGIS = "not-in-qgis"           # plain Python or the headless trainer: nothing to do

_WHY = ("kept out of QGIS by the S2 super-resolution plugin: triton's own LLVM crashes QGIS "
        f"next to the OpenGL driver's; set {ENV_ALLOW}=1 to allow it")


class TritonBlocker(importlib.abc.MetaPathFinder):
    """Refuses ``triton`` and its submodules and restores the ``None`` entry in ``sys.modules``.

    Python consults ``sys.meta_path`` only for names missing from ``sys.modules``,
    so this finder is reached only if something removed the ``None`` entry.
    """

    #: Marker found again after a plugin reload, when this class is a different object.
    s2sr_triton_guard = True

    def __init__(self, names: Sequence[str] = BLOCKED,
                 modules: Optional[MutableMapping[str, object]] = None) -> None:
        self.names = tuple(names)
        self.modules = sys.modules if modules is None else modules

    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> Optional[importlib.machinery.ModuleSpec]:
        top = fullname.partition(".")[0]
        if top not in self.names:
            return None
        if self.modules.get(top, None) is not None:
            return None  # loaded for real after all (bypassing this finder): do not break its submodules
        self.modules[top] = None  # find_spec(top) answers None again, like an absent package
        raise ModuleNotFoundError(f"No module named '{fullname}' ({_WHY})", name=fullname)


def in_qgis(modules: Optional[MutableMapping[str, object]] = None) -> bool:
    """True inside a process that has QGIS's Python bindings loaded (QGIS, qgis_process, PyQGIS scripts)."""
    return "qgis.core" in (sys.modules if modules is None else modules)


def _allowed(environ: MutableMapping[str, str]) -> bool:
    return environ.get(ENV_ALLOW, "").strip().lower() in ("1", "true", "yes", "on")


def _log_default(message: str) -> None:
    try:
        from .log import log

        log(message)
    except Exception:  # noqa: BLE001 - a log line must never stop the plugin from loading
        pass


def install(
    modules: Optional[MutableMapping[str, object]] = None,
    meta_path: Optional[List[object]] = None,
    environ: Optional[MutableMapping[str, str]] = None,
    qgis: Optional[bool] = None,
    log: Optional[Callable[[str], None]] = None,
) -> str:
    """Make triton unimportable in this QGIS process; return what happened (one of the constants above).

    Idempotent: a second call (or a call from a reloaded copy of the plugin)
    finds its finder on ``sys.meta_path`` and does nothing. Logs one line the
    first time it acts, in the plugin's tab of QGIS's log.
    """
    modules = sys.modules if modules is None else modules
    meta_path = sys.meta_path if meta_path is None else meta_path
    environ = os.environ if environ is None else environ
    log = _log_default if log is None else log
    if not (in_qgis(modules) if qgis is None else qgis):
        return NOT_QGIS
    if any(getattr(finder, "s2sr_triton_guard", False) for finder in meta_path):
        return ALREADY
    if _allowed(environ):
        return ALLOWED
    loaded = [name for name in BLOCKED if modules.get(name) is not None]
    if loaded:
        # Unloading a native library is impossible; blocking its name now would only break
        # the code that already uses it. Say so once, for whoever reads a crash report.
        meta_path.insert(0, _AlreadyLoaded())
        log(f"{', '.join(loaded)} was imported before this plugin loaded (by another plugin?); "
            "it cannot be kept out of QGIS any more, and QGIS may crash if it loads next to the "
            "OpenGL driver's LLVM")
        return TOO_LATE
    for name in BLOCKED:
        modules[name] = None
    meta_path.insert(0, TritonBlocker(BLOCKED, modules))
    log("kept triton (PyTorch's GPU compiler) out of QGIS: its own LLVM crashes QGIS next to the "
        "OpenGL driver's; the plugin does not need it")
    return BLOCKED_NOW


class _AlreadyLoaded(importlib.abc.MetaPathFinder):
    """A do-nothing marker so that :func:`install` logs the 'too late' case only once."""

    s2sr_triton_guard = True

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        return None


__all__ = ["BLOCKED", "ENV_ALLOW", "TritonBlocker", "in_qgis", "install",
           "BLOCKED_NOW", "ALREADY", "TOO_LATE", "ALLOWED", "NOT_QGIS"]
