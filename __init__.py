# SPDX-License-Identifier: GPL-2.0-or-later
"""QGIS entry point of the Task-Driven S2 Super-Resolution plugin.

QGIS imports this package when it starts and calls :func:`classFactory`.
Importing it must stay cheap and harmless without a GUI (``qgis_process``,
the tests, a plain Python): nothing from ``qgis.gui`` or Qt widgets is touched
here, and the plugin class is imported only when QGIS asks for it.

Two things are done at import time, before any module of the plugin imports
PyTorch: inside QGIS, triton (PyTorch's GPU compiler, whose own LLVM crashes
QGIS next to the OpenGL driver's) is made unimportable (``ui/torch_guard.py``);
and the packages the plugin's "Install dependencies..." dialog put into the
QGIS profile are made importable.
"""

from __future__ import annotations


def _use_installed_dependencies() -> None:
    """Append the plugin's own package folder to ``sys.path`` when it exists.

    A failure here must never stop QGIS from loading the plugin: the
    dependency check in the GUI reports what is missing in plain words.
    """
    try:
        from .ui.install.deps import activate_deps_dir, plugin_deps_dir

        folder = plugin_deps_dir()
        if folder is not None:
            activate_deps_dir(folder)
    except Exception:  # noqa: BLE001 - best effort; see the docstring
        pass


def _guard_torch() -> None:
    """Keep triton out of QGIS (a no-op outside QGIS); see ``ui/torch_guard.py``.

    Called at import time and again from :func:`classFactory` (it is
    idempotent), so it runs before anything of the plugin can import PyTorch.
    """
    try:
        from .ui.torch_guard import install

        install()
    except Exception:  # noqa: BLE001 - the guard must never stop QGIS from loading the plugin
        pass


_guard_torch()
_use_installed_dependencies()


def classFactory(iface):  # noqa: N802 - name required by QGIS
    """Build the plugin object for ``iface`` (``QgisInterface``; None under ``qgis_process``)."""
    _guard_torch()
    from .plugin import S2SRPlugin

    return S2SRPlugin(iface)
