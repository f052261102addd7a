# SPDX-License-Identifier: GPL-2.0-or-later
"""The plugin object QGIS loads: menu, toolbar, dock, dialogs and the Processing provider.

Why it is built this way:

* Every part of the user interface is imported when it is first needed and
  each import is guarded. A missing package (PyTorch is not part of QGIS)
  then costs one disabled action and one message-bar warning with an
  "Install dependencies..." button, never a plugin that fails to load or a
  Python traceback dialog.
* The dock is created the first time it is shown: building it reads the
  model cards and so imports PyTorch, seconds that QGIS's start-up should
  not pay unless the dock was open when QGIS was last closed.
* ``unload()`` must leave QGIS exactly as it found it (QGIS calls it when
  the plugin is disabled, updated or reloaded, and on exit): every action,
  menu, toolbar, dock, dialog, message and the Processing provider added here
  is removed, and running jobs are stopped through each part's own
  ``shutdown()``. It deletes what it made *now*, not with ``deleteLater()``:
  on exit QGIS unloads plugins after its event loop has ended, so a deferred
  delete never runs and the objects would die whenever Python collected them,
  in the middle of QGIS's own teardown. A second call does nothing.
"""

from __future__ import annotations

import contextlib
import importlib
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from qgis.core import Qgis, QgsApplication, QgsMessageLog, QgsSettings
from qgis.PyQt import sip
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QMenu, QPushButton, QToolBar, QWidget

try:  # Qt5 keeps QAction in QtWidgets; QGIS's Qt6 shim keeps it there too, plain Qt6 in QtGui
    from qgis.PyQt.QtWidgets import QAction
except ImportError:  # pragma: no cover - Qt6 without the shim
    from qgis.PyQt.QtGui import QAction

PLUGIN_DIR = Path(__file__).resolve().parent
ICON_PATH = PLUGIN_DIR / "resources" / "icons" / "icon.svg"
MENU_TITLE = "Task-Driven S2 Super-Resolution"
TOOLBAR_TITLE = "Task-Driven S2 Super-Resolution"
TOOLBAR_OBJECT_NAME = "S2TaskDrivenSRToolbar"
MENU_OBJECT_NAME = "S2TaskDrivenSRMenu"
SETTINGS_DOCK_OPEN = "s2_taskdriven_sr/plugin/dock_open"
LOG_TAG = "S2 super-resolution"  # the tab of ui/log.py, so every message of the plugin lands in one place


def _log(message: str, level: Any = Qgis.MessageLevel.Info) -> None:
    QgsMessageLog.logMessage(message, LOG_TAG, level)


def _reason(exc: BaseException) -> str:
    """Why a part could not load, in words; the traceback goes to the log for bug reports."""
    _log("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)), Qgis.MessageLevel.Info)
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return f"the Python package '{exc.name.split('.')[0]}' is missing"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'no message'}"


def _dispose(widget: Optional[Any]) -> None:
    """Delete a widget or action this plugin made, now (see the module docstring); harmless when already gone.

    Deleting it removes it from its parent, menus and toolbars, and Qt drops
    the signal connections and queued events that name it. Not reparented to
    None first: that would hand its lifetime to Python's garbage collector.
    """
    if widget is None:
        return
    try:
        if sip.isdeleted(widget):  # Qt deleted it with its parent (e.g. the main window at exit)
            return
        if isinstance(widget, QWidget):
            widget.hide()
        sip.delete(widget)
    except RuntimeError:  # deleted by Qt between the check and the call
        pass


class S2SRPlugin:
    """The plugin; QGIS calls ``initGui``/``unload`` (and ``initProcessing`` under ``qgis_process``)."""

    def __init__(self, iface: Any) -> None:
        self.iface = iface  # None under qgis_process: only initProcessing/unload are called then
        self.provider: Optional[Any] = None
        self.actions: List[QAction] = []
        self.dock_action: Optional[QAction] = None
        self.train_action: Optional[QAction] = None
        self.install_action: Optional[QAction] = None
        self.menu: Optional[QMenu] = None
        self._menu_host: Optional[QWidget] = None
        self.toolbar: Optional[QToolBar] = None
        self.dock: Optional[Any] = None
        self.train_dialog: Optional[Any] = None
        self.install_dialog: Optional[Any] = None
        self.deps_report: Optional[Any] = None
        #: part ("dock", "train", "processing") -> why it is unavailable
        self.problems: Dict[str, str] = {}
        self._deps_message: Optional[Any] = None
        self._restore_timer: Optional[QTimer] = None

    # ------------------------------------------------------------------ Processing
    def initProcessing(self) -> None:  # noqa: N802 - QGIS API
        """Register the Processing provider (also called alone by ``qgis_process``)."""
        if self.provider is not None:
            return
        try:
            from .ui.processing.provider import SRProcessingProvider

            provider = SRProcessingProvider()
        except Exception as exc:  # noqa: BLE001 - degrade, never fail the plugin load
            self.problems["processing"] = _reason(exc)
            _log(f"Processing algorithms are unavailable: {self.problems['processing']}", Qgis.MessageLevel.Warning)
            return
        if QgsApplication.processingRegistry().addProvider(provider):
            self.provider = provider
        else:
            _log(f"Processing provider '{provider.id()}' is already registered", Qgis.MessageLevel.Warning)

    # ------------------------------------------------------------------ GUI
    def initGui(self) -> None:  # noqa: N802 - QGIS API
        self.initProcessing()
        window = self.iface.mainWindow()
        icon = QIcon(str(ICON_PATH))

        self.dock_action = self._action(
            icon, "Super-resolution panel", "Show or hide the Sentinel-2 super-resolution panel", window,
            checkable=True)
        self.dock_action.toggled.connect(self.set_dock_visible)
        self.train_action = self._action(
            icon, "Train a model…", "Configure, launch and follow a training run", window)
        self.train_action.triggered.connect(self.show_train_dialog)
        self.install_action = self._action(
            QIcon(), "Install dependencies…",
            "Check which Python packages the plugin needs and install the missing ones with pip", window)
        self.install_action.triggered.connect(self.show_install_dialog)

        self.menu = QMenu(MENU_TITLE, window)
        self.menu.setObjectName(MENU_OBJECT_NAME)
        self.menu.setIcon(icon)
        for action in (self.dock_action, self.train_action):
            self.menu.addAction(action)
        self.menu.addSeparator()
        self.menu.addAction(self.install_action)
        self._menu_host = self._raster_menu(window)
        self._menu_host.addMenu(self.menu)

        self.toolbar = QToolBar(TOOLBAR_TITLE, window)
        self.toolbar.setObjectName(TOOLBAR_OBJECT_NAME)
        self.toolbar.addAction(self.dock_action)
        self.toolbar.addAction(self.train_action)
        self.iface.addToolBar(self.toolbar)
        if window.toolBarArea(self.toolbar) == Qt.ToolBarArea.NoToolBarArea:
            window.addToolBar(self.toolbar)  # interfaces that only record the call (test stubs)

        self._check_module("dock", "ui.dock", self.dock_action, "The super-resolution panel")
        self._check_module("train", "ui.train_dialog", self.train_action, "The training dialog")
        self.check_dependencies()

        if (QgsSettings().value(SETTINGS_DOCK_OPEN, False, type=bool) and "dock" not in self.problems
                and self.deps_report.ok):
            # open after QGIS has finished starting, so the start-up does not wait for PyTorch
            self._restore_timer = QTimer()
            self._restore_timer.setSingleShot(True)
            self._restore_timer.timeout.connect(lambda: self.dock_action and self.dock_action.setChecked(True))
            self._restore_timer.start(0)

    def _action(self, icon: QIcon, text: str, tip: str, parent: QWidget, checkable: bool = False) -> QAction:
        action = QAction(icon, text, parent)
        action.setToolTip(tip)
        action.setStatusTip(tip)
        action.setCheckable(checkable)
        self.actions.append(action)
        return action

    def _raster_menu(self, window: Any) -> QWidget:
        """QGIS's Raster menu; the menu bar itself when the interface has none (test stubs)."""
        getter = getattr(self.iface, "rasterMenu", None)
        try:
            menu = getter() if callable(getter) else None
        except Exception:  # noqa: BLE001
            menu = None
        return menu if isinstance(menu, QMenu) else window.menuBar()

    def _check_module(self, part: str, module: str, action: QAction, title: str) -> bool:
        """Import a UI module (cheap: Qt and QGIS only) to learn early whether its action can work."""
        try:
            importlib.import_module(f".{module}", __package__)
        except Exception as exc:  # noqa: BLE001
            self._unavailable(part, action, title, _reason(exc))
            return False
        if part in self.problems:
            del self.problems[part]
            action.setEnabled(True)
        return True

    def _unavailable(self, part: str, action: Optional[QAction], title: str, reason: str) -> None:
        self.problems[part] = reason
        if action is not None:
            action.setEnabled(False)
            action.setToolTip(f"{title} is unavailable: {reason}")
        self._message(f"{title} is unavailable: {reason}. 'Install dependencies…' in the "
                      f"{MENU_TITLE} menu can add missing packages.", Qgis.MessageLevel.Warning)

    def _message(self, text: str, level: Any = Qgis.MessageLevel.Info, duration: int = 10) -> None:
        _log(text, level)
        if self.iface is not None:
            self.iface.messageBar().pushMessage(MENU_TITLE, text, level, duration)

    # ------------------------------------------------------------------ dependencies
    def check_dependencies(self) -> Any:
        """Look for the required packages (no import, so it is fast) and warn, with a button, when some lack."""
        from .ui.install.deps import check_dependencies

        self.deps_report = check_dependencies(deep=False)
        self._clear_deps_message()
        self._apply_dependency_state()
        if self.deps_report.ok:
            _log(self.deps_report.summary())
            return self.deps_report
        text = ("missing Python packages: " + ", ".join(self.deps_report.missing_names)
                + ". The super-resolution and segmentation tools need them.")
        _log(self.deps_report.summary(), Qgis.MessageLevel.Warning)
        bar = self.iface.messageBar()
        item = bar.createMessage(MENU_TITLE, text)
        button = QPushButton("Install dependencies…", item)
        button.clicked.connect(self.show_install_dialog)
        item.layout().addWidget(button)
        bar.pushWidget(item, Qgis.MessageLevel.Warning, 0)
        self._deps_message = item
        return self.deps_report

    def _apply_dependency_state(self) -> None:
        """Disable the panel and training actions while required packages are missing, enable them after.

        Their modules import without PyTorch (so ``_check_module`` passes), but
        everything they do runs the networks: an enabled action would only lead
        to a failure deeper down. An action whose own module failed to import
        (``self.problems``) stays disabled either way.
        """
        missing = self.deps_report.missing_names
        for part, action, title in (("dock", self.dock_action, "The super-resolution panel"),
                                    ("train", self.train_action, "The training dialog")):
            if action is None:
                continue
            if missing:
                action.setEnabled(False)
                action.setToolTip(f"{title} needs Python packages that are missing: {', '.join(missing)}. "
                                  f"Use 'Install dependencies…' in the {MENU_TITLE} menu.")
            elif part not in self.problems:
                action.setEnabled(True)
                action.setToolTip(action.statusTip())  # the tip it was created with

    def _clear_deps_message(self) -> None:
        if self._deps_message is None or self.iface is None:
            return
        try:
            self.iface.messageBar().popWidget(self._deps_message)
        except RuntimeError:  # the user closed it already
            pass
        self._deps_message = None

    def show_install_dialog(self) -> Optional[Any]:
        if self.install_dialog is None:
            try:
                from .ui.install.dialog import InstallDialog

                self.install_dialog = InstallDialog(parent=self.iface.mainWindow())
            except Exception as exc:  # noqa: BLE001
                self._message(f"The Install dependencies dialog could not open: {_reason(exc)}",
                              Qgis.MessageLevel.Critical)
                return None
            self.install_dialog.installed.connect(self._dependencies_installed)
        self.install_dialog.show()
        self.install_dialog.raise_()
        self.install_dialog.activateWindow()
        return self.install_dialog

    def _dependencies_installed(self, _report: Any) -> None:
        """After an install: check again and re-enable the parts whose import failed before."""
        report = self.check_dependencies()
        for part, module, action, title in (("dock", "ui.dock", self.dock_action, "The super-resolution panel"),
                                            ("train", "ui.train_dialog", self.train_action, "The training dialog")):
            if part in self.problems and action is not None:
                self._check_module(part, module, action, title)
        if "processing" in self.problems:
            del self.problems["processing"]
            self.initProcessing()
        if report.ok:
            self._message("all required Python packages are available now", Qgis.MessageLevel.Success)

    # ------------------------------------------------------------------ dock
    def set_dock_visible(self, visible: bool) -> None:
        """Show (creating it the first time) or hide the dock; remembered for the next QGIS start."""
        if visible and self.dock is None and not self._create_dock():
            self._set_action_checked(False)
            return
        if self.dock is not None:
            if visible:
                self.dock.show()
                self.dock.raise_()
            else:
                self.dock.hide()
        QgsSettings().setValue(SETTINGS_DOCK_OPEN, bool(visible))

    def _create_dock(self) -> bool:
        window = self.iface.mainWindow()
        try:
            from .ui.dock import SRDockWidget

            dock = SRDockWidget(self.iface, parent=window)
        except Exception as exc:  # noqa: BLE001
            self._unavailable("dock", self.dock_action, "The super-resolution panel", _reason(exc))
            return False
        self.dock = dock
        self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        if window.dockWidgetArea(dock) == Qt.DockWidgetArea.NoDockWidgetArea:
            window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)  # interfaces that only record it
        opened = getattr(dock, "openedStateChanged", None)  # QgsDockWidget: closed with its own button
        if opened is not None:
            opened.connect(self._dock_opened_changed)
        ready = getattr(self.train_dialog, "checkpointReady", None)
        if ready is not None and hasattr(dock, "add_checkpoint"):
            ready.connect(dock.add_checkpoint)
        return True

    def _dock_opened_changed(self, opened: bool) -> None:
        if self.dock_action is not None and self.dock_action.isChecked() != opened:
            self._set_action_checked(opened)
            QgsSettings().setValue(SETTINGS_DOCK_OPEN, bool(opened))

    def _set_action_checked(self, checked: bool) -> None:
        if self.dock_action is None:
            return
        self.dock_action.blockSignals(True)
        self.dock_action.setChecked(checked)
        self.dock_action.blockSignals(False)

    # ------------------------------------------------------------------ training
    def show_train_dialog(self) -> Optional[Any]:
        if self.train_dialog is None:
            try:
                from .ui.train_dialog import TrainDialog

                self.train_dialog = TrainDialog(self.iface, parent=self.iface.mainWindow())
            except Exception as exc:  # noqa: BLE001
                self._unavailable("train", self.train_action, "The training dialog", _reason(exc))
                return None
            ready = getattr(self.train_dialog, "checkpointReady", None)
            if ready is not None and self.dock is not None and hasattr(self.dock, "add_checkpoint"):
                ready.connect(self.dock.add_checkpoint)
        self.train_dialog.show()
        self.train_dialog.raise_()
        self.train_dialog.activateWindow()
        return self.train_dialog

    # ------------------------------------------------------------------ unload
    def unload(self) -> None:
        """Stop running work, then remove and delete everything ``initGui``/``initProcessing`` added.

        Safe to call twice and after a failed ``initGui``: each part is
        forgotten (set to None) as soon as it is gone, and a part Qt already
        deleted is skipped.
        """
        if self._restore_timer is not None:
            self._restore_timer.stop()
            _dispose(self._restore_timer)
            self._restore_timer = None
        parts = (self.dock, self.train_dialog, self.install_dialog)
        for part in parts:
            self._shutdown(part)  # jobs first: a task must not report into a deleted dock
        if self.dock is not None and not sip.isdeleted(self.dock):
            opened = getattr(self.dock, "openedStateChanged", None)
            if opened is not None:
                with contextlib.suppress(RuntimeError, TypeError):  # already gone / not connected
                    opened.disconnect(self._dock_opened_changed)
            if self.iface is not None:
                with contextlib.suppress(RuntimeError, TypeError):  # already gone / not connected
                    self.iface.removeDockWidget(self.dock)
                    self.iface.mainWindow().removeDockWidget(self.dock)
        self.dock = self.train_dialog = self.install_dialog = None
        for part in parts:
            _dispose(part)

        self._clear_deps_message()
        menu, host = self.menu, self._menu_host
        self.menu = self._menu_host = None
        if menu is not None and host is not None and not (sip.isdeleted(menu) or sip.isdeleted(host)):
            host.removeAction(menu.menuAction())
        _dispose(menu)
        toolbar, self.toolbar = self.toolbar, None
        if toolbar is not None and self.iface is not None and not sip.isdeleted(toolbar):
            with contextlib.suppress(RuntimeError, TypeError):  # already gone / not connected
                self.iface.mainWindow().removeToolBar(toolbar)
        _dispose(toolbar)
        actions, self.actions = self.actions, []
        self.dock_action = self.train_action = self.install_action = None
        for action in actions:
            _dispose(action)

        provider, self.provider = self.provider, None
        if provider is not None:
            QgsApplication.processingRegistry().removeProvider(provider)  # the registry deletes it

    @staticmethod
    def _shutdown(part: Optional[Any]) -> None:
        stop: Optional[Callable[[], Any]] = getattr(part, "shutdown", None) if part is not None else None
        if stop is None:
            return
        try:
            stop()
        except Exception as exc:  # noqa: BLE001 - unload must go on and remove the rest
            _log(f"while stopping {type(part).__name__}: {_reason(exc)}", Qgis.MessageLevel.Warning)
