"""Modules imported on first use, for the few modules that must stay light when imported.

Why: ``core.api`` is imported when QGIS starts and ``core.cli`` parses
``--help`` before any job runs; neither may pay for PyTorch (seconds, and in
QGIS a guarded import) before the analyst asks for work. A :class:`LazyModule`
stands for an engine module at module level and imports it on the first
attribute access, so each dependency is declared once, at the top, instead
of inside every function (the pattern of Deepness's ``LazyPackageLoader``).

``tests/test_house_structure.py`` reads ``lazy_module(".x", __package__)``
calls as imports, so the layer and cycle checks see these dependencies too.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Optional

__all__ = ["LazyModule", "lazy_module"]


class LazyModule:
    """Stands for module ``name`` (relative to ``package``) and imports it on the first attribute access."""

    def __init__(self, name: str, package: Optional[str] = None) -> None:
        self._name = name
        self._package = package

    def module(self) -> ModuleType:
        """The real module (imported now if it was not yet; Python caches it)."""
        return importlib.import_module(self._name, self._package)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):  # copy/pickle/inspection probes must not trigger the import
            raise AttributeError(attr)
        return getattr(self.module(), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r} of {self._package!r}>"


def lazy_module(name: str, package: Optional[str] = None) -> Any:
    """``lazy_module(".inference.sr_job", __package__)``: the module, imported when first used."""
    return LazyModule(name, package)
