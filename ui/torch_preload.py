# SPDX-License-Identifier: GPL-2.0-or-later
"""Open PyTorch's shared libraries without holding Python's global lock, before ``import torch``.

Why: the dock imports PyTorch in a worker thread the first time it lists
checkpoints, yet QGIS still froze for 0.5-1.2 s while it did (the real-window
journey's stall monitor, ``tests/gui/test_qgis_journey.py``). Python opens an
extension module with ``dlopen`` while it holds its global lock, and
``import torch._C`` pulls in ``libtorch_python.so``, ``libtorch_cpu.so`` and,
in CUDA wheels, ``libtorch_cuda.so`` (gigabytes to map and relocate), so the
UI thread could not run a line of Python meanwhile. ``ctypes.CDLL`` holds the
lock too (Python 3.11), but a *foreign call* through ctypes releases it: this
module calls the C library's own ``dlopen`` that way, and the import that
follows finds the libraries already loaded. ``python bench/bench_import_pause.py``
(a main thread ticking every 10 ms while a worker lists the checkpoints, in
fresh interpreters) measured, with both libraries opened: longest pause median
0.35 s without, 0.08 s with it (4.2x); opening them with ``ctypes.CDLL``
instead held the lock and made it worse (0.33 s against 0.24 s).

It opens exactly what ``import torch`` opens first, with the same flags:
``libtorch_global_deps.so`` with ``RTLD_GLOBAL`` (as ``torch/__init__.py``
does) and ``libtorch_python.so`` locally (as the extension's own ``dlopen``
would) — the latter **only for PyTorch builds without CUDA** (CPU wheels,
Debian's ``python3-torch``). A CUDA wheel's ``import torch`` first loads the
CUDA libraries of its ``nvidia-*`` wheels by path, in an order chosen so
that ``LD_LIBRARY_PATH`` or a system-wide CUDA toolkit cannot lend
``libtorch_cuda.so`` mismatched copies; opening ``libtorch_python.so``
before that would bypass it. With a CUDA wheel the preload therefore stops
after ``libtorch_global_deps.so`` and the pause stays (0.5-1.2 s measured in
the real window on this project's CUDA wheel). The handles are kept open, as Python keeps an extension's. Nothing
is opened where those files are absent (other platforms, distribution builds
with their libraries elsewhere) or where the C library offers no ``dlopen``;
a library that fails to open is left to ``import torch``, which says why. It
never imports torch or triton (see :mod:`.torch_guard`), only finds where the
package lies.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from pathlib import Path
from typing import Callable, List, Optional

__all__ = ["preload_torch_libraries"]

_RTLD_NOW = getattr(os, "RTLD_NOW", 2)
#: What ``import torch`` opens first, in its order, with its flags (Linux wheel layout: ``torch/lib``).
_LIBRARIES = (("libtorch_global_deps.so", getattr(os, "RTLD_GLOBAL", 0x100)),
              ("libtorch_python.so", getattr(os, "RTLD_LOCAL", 0)))


def _c_dlopen() -> Optional[Callable[[bytes, int], Optional[int]]]:
    """The C library's ``dlopen`` as a ctypes foreign function (called without Python's lock), or None."""
    try:
        process = ctypes.CDLL(None)
        dlopen = process.dlopen
    except (OSError, AttributeError, TypeError):
        return None
    dlopen.restype = ctypes.c_void_p
    dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return dlopen


def preload_torch_libraries() -> List[str]:
    """Open PyTorch's libraries with Python's lock released (call it off the UI thread); the names opened."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.origin:
        return []
    folder = Path(spec.origin).parent / "lib"
    if not all((folder / name).is_file() for name, _ in _LIBRARIES):
        return []
    dlopen = _c_dlopen()
    if dlopen is None:
        return []
    opened: List[str] = []
    for name, flag in _LIBRARIES:
        if opened and _cuda_runtime_loaded():
            break  # a CUDA wheel: torch must front-load its CUDA libraries, in its own order, first
        if not dlopen(os.fsencode(folder / name), _RTLD_NOW | flag):
            break  # import torch opens it again and reports why in its own words
        opened.append(name)
    return opened


def _cuda_runtime_loaded() -> bool:
    """Whether ``libtorch_global_deps.so`` brought the CUDA runtime in (a CUDA wheel), read from /proc."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return any("libcudart" in line for line in maps)
    except OSError:
        return True  # cannot tell: leave the rest to import torch
