"""Build a network on PyTorch's ``meta`` device whatever has been imported before.

Why this exists: the zoo compares a checkpoint's tensor shapes with those of
the network its card describes by building that network inside
``torch.device("meta")`` (no memory, milliseconds). A device context applies
to *every* tensor created while it is active, including the tensors a module
creates at import time. A network family that imports a library lazily (UNet++
imports segmentation-models-pytorch in its constructor) therefore imports it on
``meta`` the first time, and a library that computes something at import time
then fails: under Debian's torch 2.6, smp pulls in ``torch._dynamo``, whose
import calls ``Tensor.item()`` and stops with "Tensor.item() cannot be called
on meta tensors". Whether it failed depended on what the process had imported
before (the CLI's ``area`` commands, QGIS), which is no way to check a file.

:func:`meta_device` is ``torch.device("meta")`` except that a module imported
while it is active (by the thread that entered it) is executed on the device
that was the default before, so imports behave exactly as they would anywhere
else. Only the construction code of the network itself runs on ``meta``. No
QGIS or Qt here (``core`` never imports them).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import sys
import threading
from types import ModuleType
from typing import Any, Iterator, Optional, Sequence

import torch

__all__ = ["meta_device"]


def _default_device() -> torch.device:
    """The device factory functions use now, outside any meta context (``cpu`` on torch < 2.3)."""
    get = getattr(torch, "get_default_device", None)
    device = get() if get is not None else torch.device("cpu")
    return torch.device("cpu") if device.type == "meta" else device


class _OnDevice(importlib.abc.Loader):
    """Wraps a module's loader so that the module's code runs with ``device`` as the default device.

    The module's ``__loader__`` and ``__spec__.loader`` are set back to the
    original before its code runs: code that inspects its own loader
    (``importlib.resources``, ``inspect.getsource``) sees the usual one.
    """

    def __init__(self, loader: importlib.abc.Loader, device: torch.device) -> None:
        self.loader = loader
        self.device = device

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Optional[ModuleType]:
        create = getattr(self.loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self.loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self.loader
        with torch.device(self.device):
            self.loader.exec_module(module)


class _ImportsOnDevice(importlib.abc.MetaPathFinder):
    """First on ``sys.meta_path`` while a meta build runs: finds modules as the others do, runs them on ``device``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.thread = threading.get_ident()

    def find_spec(self, fullname: str, path: Optional[Sequence[str]],
                  target: Optional[ModuleType] = None) -> Optional[importlib.machinery.ModuleSpec]:
        if threading.get_ident() != self.thread:  # another thread's imports are not inside our context
            return None
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is None:
                continue
            if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _OnDevice(spec.loader, self.device)
            return spec
        return None


@contextlib.contextmanager
def meta_device() -> Iterator[Any]:
    """``with meta_device(): net = Net(...)``: parameters and buffers on ``meta``, imports on the real device.

    Use it instead of ``torch.device("meta")`` around code that may import
    modules (any network constructor), so that the result never depends on
    which modules the process imported before.
    """
    hook = _ImportsOnDevice(_default_device())
    with torch.device("meta"):  # entered first: torch imports what device contexts need (torch.utils._device)
        sys.meta_path.insert(0, hook)
        try:
            yield
        finally:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(hook)
