"""The plugin as QGIS drives it: ``classFactory`` -> ``initGui`` -> use -> ``unload``, in a real QGIS.

Why these tests: ``unload()`` runs every time a user disables, updates or
reloads the plugin, and anything it forgets (a menu entry, a toolbar, a dock,
the Processing provider) stays in QGIS as a dead duplicate; and a missing
PyTorch is the most common first experience of a deep-learning plugin, so that
path (load anyway, say what is missing, disable what cannot work, offer the
installer) is checked end to end with the import really failing.
"""

from __future__ import annotations

import sys
import threading
import time
from types import ModuleType
from typing import Any, Callable, Dict, Iterator, List

import pytest

PROVIDER_ID = "s2sr"
SETTINGS_GROUP = "s2_taskdriven_sr"


def _registry() -> Any:
    from qgis.core import QgsApplication

    return QgsApplication.processingRegistry()


def _settle() -> None:
    """Run posted events, deferred deletes included, so Qt's object tree is what unload left."""
    from qgis.PyQt.QtCore import QCoreApplication, QEvent

    QCoreApplication.processEvents()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QCoreApplication.processEvents()


def _footprint(iface: Any) -> Dict[str, Any]:
    """Everything of QGIS that the plugin may add to, counted, so before/after can be compared."""
    from qgis.PyQt.QtWidgets import QDockWidget, QToolBar

    try:
        from qgis.PyQt.QtWidgets import QAction
    except ImportError:  # pragma: no cover - Qt6 without the shim
        from qgis.PyQt.QtGui import QAction

    _settle()
    window = iface.mainWindow()
    return {
        "menu bar": [a.text() for a in window.menuBar().actions()],
        "toolbars": sorted(t.objectName() for t in window.findChildren(QToolBar)),
        "docks": sorted(d.objectName() for d in window.findChildren(QDockWidget)),
        "actions": len(window.findChildren(QAction)),
        "message bar": len(iface.messageBar().items()),
        "providers": sorted(p.id() for p in _registry().providers()),
    }


@pytest.fixture
def iface(clean_qgis: Any) -> Any:
    """QGIS's interface with no plugin provider registered and no remembered dock state."""
    assert _registry().providerById(PROVIDER_ID) is None, "a previous test left the provider registered"
    iface = clean_qgis
    iface.messageBar().clearWidgets()
    return iface


@pytest.fixture
def load(face: ModuleType) -> Iterator[Callable[[Any], Any]]:
    """``classFactory``, remembering each plugin so one left loaded by a failing test is unloaded after it."""
    plugins: List[Any] = []

    def _load(iface: Any) -> Any:
        plugins.append(face.classFactory(iface))
        return plugins[-1]

    yield _load
    for plugin in plugins:
        plugin.unload()  # a second unload must be harmless too: QGIS may call it after a failed initGui


def _missing_packages(monkeypatch: pytest.MonkeyPatch, names: List[str]) -> None:
    """Make ``import name`` fail as if the package were not installed (``None`` in ``sys.modules``).

    That is Python's own switch for "this module cannot be imported": both
    ``importlib.util.find_spec`` (the plugin's check) and ``import`` see it.
    """
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)


def test_initgui_adds_actions_dock_and_provider_and_unload_removes_them_twice(
        iface: Any, face: ModuleType, load: Callable[[Any], Any]):
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtWidgets import QMenu, QToolBar

    before = _footprint(iface)
    assert PROVIDER_ID not in before["providers"]

    for _round in range(2):  # a reload is unload + load: the second round must start from a clean QGIS
        plugin = load(iface)
        plugin_mod = sys.modules[f"{face.__name__}.plugin"]
        plugin.initGui()
        window = iface.mainWindow()

        # menu: one entry in the menu bar (the stub has no Raster menu) holding the three actions
        entries = [a for a in window.menuBar().actions() if a.text() == plugin_mod.MENU_TITLE]
        assert len(entries) == 1
        menu = entries[0].menu()
        assert isinstance(menu, QMenu)
        texts = [a.text() for a in menu.actions() if not a.isSeparator()]
        assert texts == ["Super-resolution panel", "Train a model…", "Install dependencies…"]
        # toolbar: in the main window, with the dock and train actions
        toolbar = window.findChild(QToolBar, plugin_mod.TOOLBAR_OBJECT_NAME)
        assert toolbar is not None and window.toolBarArea(toolbar) != Qt.ToolBarArea.NoToolBarArea
        assert toolbar.actions() == [plugin.dock_action, plugin.train_action]
        assert plugin.install_action.isEnabled()
        # the provider is registered with its algorithms
        provider = _registry().providerById(PROVIDER_ID)
        assert provider is plugin.provider
        assert {a.id() for a in provider.algorithms()} >= {"s2sr:superresolve", "s2sr:segment"}
        # this QGIS has every required package: nothing to warn about, everything enabled
        assert plugin.deps_report.ok, plugin.deps_report.summary()
        assert plugin.dock_action.isEnabled() and plugin.train_action.isEnabled()
        assert len(iface.messageBar().items()) == before["message bar"]

        # the action toggles the dock (created on first show, docked right)
        assert plugin.dock is None
        plugin.dock_action.setChecked(True)
        assert plugin.dock is not None and not plugin.dock.isHidden()
        assert window.dockWidgetArea(plugin.dock) == Qt.DockWidgetArea.RightDockWidgetArea
        plugin.dock_action.setChecked(False)
        assert plugin.dock.isHidden()
        plugin.dock_action.setChecked(True)
        assert not plugin.dock.isHidden()
        during = _footprint(iface)
        assert len(during["docks"]) == len(before["docks"]) + 1
        assert len(during["toolbars"]) == len(before["toolbars"]) + 1
        assert len(during["menu bar"]) == len(before["menu bar"]) + 1

        plugin.unload()
        assert plugin.actions == [] and plugin.dock is None and plugin.provider is None
        assert _registry().providerById(PROVIDER_ID) is None
        assert _footprint(iface) == before


def test_unload_stops_running_jobs_and_deletes_what_it_made_at_once(
        iface: Any, face: ModuleType, load: Callable[[Any], Any], qh: Any):
    """Issue 24, item 3: on exit QGIS unloads plugins after its event loop has ended.

    A ``deleteLater()`` then never runs, and what the plugin made would be
    destroyed whenever Python collected it, during QGIS's own teardown. So
    right after ``unload()``, with no event processed, everything must already
    be deleted, and a running job cancelled and finished.
    """
    from qgis.core import QgsApplication
    from qgis.PyQt import sip

    tasks = sys.modules.get(f"{face.__name__}.ui.tasks") or qh.ui("tasks")
    plugin = load(iface)
    plugin.initGui()
    plugin.dock_action.setChecked(True)
    dock = plugin.dock
    running = threading.Event()

    def job(progress: Any, cancel: Any) -> None:  # runs until cancelled, as a long super-resolution does
        running.set()
        deadline = time.monotonic() + 60
        while not cancel.cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
        from core.jobs import check_cancel

        check_cancel(cancel)

    task = dock.runner.start(tasks.CoreTask("a long job", job))
    assert qh.wait_until(running.is_set, 20), "the task did not start"
    made = [dock, dock.runner, plugin.menu, plugin.toolbar, *plugin.actions]

    plugin.unload()
    assert task.outcome == tasks.CANCELLED
    assert QgsApplication.taskManager().countActiveTasks() == 0
    assert [o for o in made if not sip.isdeleted(o)] == []
    assert plugin.dock is None and plugin.menu is None and plugin.toolbar is None and plugin.actions == []
    plugin.unload()  # a second unload finds nothing left to do


def test_unload_after_qt_deleted_its_parts_first(iface: Any, load: Callable[[Any], Any]):
    """QGIS may delete the main window's children (our toolbar, menu, dock) before it unloads the plugin."""
    from qgis.PyQt import sip

    plugin = load(iface)
    plugin.initGui()
    plugin.dock_action.setChecked(True)
    for part in (plugin.dock, plugin.toolbar, plugin.menu, *plugin.actions):
        sip.delete(part)
    plugin.unload()
    assert plugin.dock is None and plugin.toolbar is None and plugin.actions == []


def test_dock_reopens_at_start_when_it_was_open_last_time(iface: Any, load: Callable[[Any], Any], qh: Any):
    from qgis.core import QgsSettings

    plugin = load(iface)
    plugin.initGui()
    plugin.dock_action.setChecked(True)
    plugin.unload()
    assert QgsSettings().value(f"{SETTINGS_GROUP}/plugin/dock_open", False, type=bool)

    plugin = load(iface)
    plugin.initGui()
    assert plugin.dock is None  # not during initGui: QGIS's start-up must not wait for PyTorch
    assert qh.wait_until(lambda: plugin.dock is not None, 30)
    assert plugin.dock_action.isChecked() and not plugin.dock.isHidden()
    plugin.unload()


def test_headless_load_registers_and_removes_the_provider(load: Callable[[Any], Any]):
    """``qgis_process`` loads plugins with no interface: only ``initProcessing`` and ``unload`` run."""
    assert _registry().providerById(PROVIDER_ID) is None
    plugin = load(None)
    plugin.initProcessing()
    assert plugin.problems == {}
    provider = _registry().providerById(PROVIDER_ID)
    assert provider is not None and provider is plugin.provider
    assert "s2sr:superresolve" in {a.id() for a in provider.algorithms()}
    plugin.initProcessing()  # a second call must not register a duplicate
    assert [p.id() for p in _registry().providers()].count(PROVIDER_ID) == 1
    plugin.unload()
    assert _registry().providerById(PROVIDER_ID) is None


def test_missing_dependencies_warn_disable_and_offer_the_installer(
        iface: Any, face: ModuleType, load: Callable[[Any], Any], monkeypatch: pytest.MonkeyPatch, qh: Any):
    from qgis.core import Qgis, QgsSettings
    from qgis.PyQt.QtWidgets import QPushButton

    missing = ["torch", "segmentation_models_pytorch"]
    before = _footprint(iface)
    QgsSettings().setValue(f"{SETTINGS_GROUP}/plugin/dock_open", True)  # would open the dock if it could work
    _missing_packages(monkeypatch, missing)

    plugin = load(iface)
    plugin.initGui()  # must not raise

    assert plugin.deps_report.missing_names == missing
    # one persistent warning in the message bar, naming each missing package
    items = iface.messageBar().items()
    assert len(items) == before["message bar"] + 1
    ours = [i for i in items if i.title() == sys.modules[f"{face.__name__}.plugin"].MENU_TITLE]
    assert len(ours) == 1
    item = ours[0]
    assert item.level() == Qgis.MessageLevel.Warning
    for name in missing:
        assert name in item.text()
    # the engine's actions are disabled and say why; the installer stays available
    for action in (plugin.dock_action, plugin.train_action):
        assert not action.isEnabled()
        assert "torch" in action.toolTip() and "Install dependencies" in action.toolTip()
    assert plugin.install_action.isEnabled()
    # the remembered open dock is not restored while PyTorch is missing
    qh.wait_until(lambda: plugin.dock is not None, 0.5)
    assert plugin.dock is None

    # the message's button opens the Install dependencies dialog, which lists the same packages as missing
    buttons = [b for b in item.findChildren(QPushButton) if b.text() == "Install dependencies…"]
    assert len(buttons) == 1
    buttons[0].click()
    dialog = plugin.install_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.report.missing_names == missing
    assert "torch" in dialog.intro_label.text()
    assert not dialog.runner.is_running()  # nothing is installed without the user's consent

    # the packages arrive (as after an install): the dialog's signal re-enables everything, warning gone
    monkeypatch.undo()
    dialog.installed.emit(qh.ui("install.deps").check_dependencies())
    assert plugin.deps_report.ok
    assert plugin.dock_action.isEnabled() and plugin.train_action.isEnabled()
    assert plugin.dock_action.toolTip() == plugin.dock_action.statusTip()
    assert item not in iface.messageBar().items()

    plugin.unload()
    assert _footprint(iface) == before
