# SPDX-License-Identifier: GPL-2.0-or-later
"""Runs INSIDE the real QGIS (``qgis --code qgis_driver.py``): drive the plugin's dock like an analyst.

Started by ``test_qgis_gui.py``; not collected by pytest (its name does not
start with ``test_``). It adds a raster layer, opens the plugin's dock through
the plugin's own action, super-resolves the layer with a shipped checkpoint
on the Super-resolve tab, segments the result with the shipped UNet++
networks on the Segment tab, saves a screenshot of the main window and quits
QGIS through File > Exit (so the plugin unloads as on an analyst's exit). Widgets are found by what an analyst sees (tab titles, button texts,
the checkpoint files behind combo box items), not by attribute names, so the
script survives refactorings of the dock's code.

Why a progress file: when QGIS dies (the crash this test exists for) nothing
can report back, so every stage is written to ``S2SR_GUI_RESULT`` before it
starts; the test reads the last one to say where QGIS died.

Inputs (environment): ``S2SR_GUI_RASTER`` (GeoTIFF to add), ``S2SR_GUI_RESULT``
(JSON written here), ``S2SR_GUI_SHOT`` (PNG screenshot), ``S2SR_GUI_SR_MODEL``
(checkpoint file stem, e.g. ``hat_taskdriven``), ``S2SR_GUI_STAGE_TIMEOUT``
(seconds per job).
"""

import json
import os
import sys
import time
import traceback

from qgis.core import Qgis, QgsApplication, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QCoreApplication, QTimer
from qgis.PyQt.QtWidgets import QCheckBox, QComboBox, QDockWidget, QPushButton, QTabWidget

try:  # Qt5 keeps QAction in QtWidgets; plain Qt6 in QtGui
    from qgis.PyQt.QtWidgets import QAction
except ImportError:  # pragma: no cover
    from qgis.PyQt.QtGui import QAction

PLUGIN = "s2_taskdriven_sr"
LOG_TAG = "S2 super-resolution"
DOCK_OBJECT_NAME = "S2TaskDrivenSRDock"
RESULT = os.environ["S2SR_GUI_RESULT"]
STATE = {"stage": "started", "ok": False, "error": "", "layers": [], "log": [], "triton_loaded": None,
         "guard": None, "gl_libraries": [], "screenshot": ""}


def save() -> None:
    """Write the progress file now (atomically): it is all that is left if QGIS dies next."""
    tmp = RESULT + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(STATE, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, RESULT)


def stage(name: str) -> None:
    STATE["stage"] = name
    save()


def _on_message(message: str, tag: str, level: object) -> None:
    if tag == LOG_TAG and not message.startswith("Traceback"):
        STATE["log"].append(f"{int(level)}: {message[:500]}")


def wait_until(condition, seconds: float, what: str) -> None:
    """Let QGIS run (tasks, signals, painting) until ``condition()`` holds; fail after ``seconds``."""
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {seconds:.0f} s waiting for {what}")
        QCoreApplication.processEvents()
        time.sleep(0.05)


def settle(seconds: float = 0.3) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QCoreApplication.processEvents()
        time.sleep(0.02)


def tab_page(dock, title: str):
    """The page of the dock's tab whose title starts with ``title`` (and its QTabWidget)."""
    for tabs in dock.findChildren(QTabWidget):
        for i in range(tabs.count()):
            if tabs.tabText(i).replace("&", "").strip().lower().startswith(title.lower()):
                return tabs, tabs.widget(i)
    raise LookupError(f"the dock has no '{title}' tab")


def button(page, prefix: str) -> QPushButton:
    for b in page.findChildren(QPushButton):
        if b.text().replace("&", "").strip().lower().startswith(prefix.lower()):
            return b
    raise LookupError(f"no button '{prefix}...' on the tab")


def checkbox(page, text: str) -> QCheckBox:
    for c in page.findChildren(QCheckBox):
        if c.text().replace("&", "").strip().lower() == text.lower():
            return c
    raise LookupError(f"no check box '{text}' on the tab")


def whole_layer(page) -> None:
    """Untick 'Current map extent only' where the tab offers it: the whole (tiny) layer is processed."""
    for c in page.findChildren(QCheckBox):
        if c.text().replace("&", "").strip().lower().startswith("current map extent"):
            c.setChecked(False)


def _file_item(page, needle: str):
    for combo in page.findChildren(QComboBox):
        for i in range(combo.count()):
            data = combo.itemData(i)
            if isinstance(data, str) and needle in os.path.basename(data):
                return combo, i
    return None


def select_file_item(page, needle: str, seconds: float = 60) -> QComboBox:
    """Select the combo box item whose data (a checkpoint path) contains ``needle``; return its combo box.

    The dock's first listing of checkpoints runs in a worker thread (it imports PyTorch), as an analyst
    sees it: the item is waited for, as the analyst would wait for the list to fill."""
    try:
        wait_until(lambda: _file_item(page, needle) is not None, seconds, f"a checkpoint named '{needle}'")
    except TimeoutError:
        raise LookupError(f"no combo box item for a checkpoint named '{needle}'") from None
    combo, i = _file_item(page, needle)
    combo.setCurrentIndex(i)
    return combo


def select_text_item(page, prefix: str) -> None:
    """Select the first combo box item whose text starts with ``prefix`` (when the tab has one)."""
    for combo in page.findChildren(QComboBox):
        for i in range(combo.count()):
            if combo.itemText(i).lower().startswith(prefix.lower()):
                combo.setCurrentIndex(i)
                return


def layer_combo(page):
    from qgis.gui import QgsMapLayerComboBox

    combos = page.findChildren(QgsMapLayerComboBox)
    if not combos:
        raise LookupError("no layer combo box on the tab")
    return combos[0]


def new_layers(before: set, word: str):
    return [layer for layer in QgsProject.instance().mapLayers().values()
            if layer.id() not in before and word in layer.name()]


def run_job(page, button_prefix: str, word: str, count: int, seconds: float):
    """Click the tab's run button and wait for ``count`` new layers whose names contain ``word``."""
    before = set(QgsProject.instance().mapLayers())
    errors_before = len([m for m in STATE["log"] if m.startswith(f"{int(Qgis.MessageLevel.Critical)}:")])
    run = button(page, button_prefix)
    wait_until(run.isEnabled, 10, f"'{run.text()}' to be enabled")
    run.click()
    manager = QgsApplication.taskManager()

    def done() -> bool:
        errors = [m for m in STATE["log"] if m.startswith(f"{int(Qgis.MessageLevel.Critical)}:")]
        if len(errors) > errors_before:
            raise RuntimeError(f"'{run.text()}' failed: {errors[-1]}")
        return len(new_layers(before, word)) >= count and manager.countActiveTasks() == 0

    wait_until(done, seconds, f"the layers of '{run.text()}'")
    settle()
    return new_layers(before, word)


def panel_action(window, plugin):
    """The checkable action that shows the plugin's panel (menu and toolbar share it)."""
    action = getattr(plugin, "dock_action", None)
    if action is not None:
        return action
    for candidate in window.findChildren(QAction):
        if candidate.isCheckable() and "super-resolution panel" in candidate.text().lower():
            return candidate
    raise LookupError("no 'Super-resolution panel' action in QGIS's main window")


def find_dock(window, plugin):
    dock = window.findChild(QDockWidget, DOCK_OBJECT_NAME)
    return dock if dock is not None else getattr(plugin, "dock", None)


def loaded_libraries(words) -> list:
    try:
        with open(f"/proc/{os.getpid()}/maps", encoding="utf-8") as f:
            paths = {line.split()[-1] for line in f if "/" in line}
    except OSError:
        return []
    return sorted(p for p in paths if any(w in os.path.basename(p) for w in words))


def screenshot(window, path: str) -> None:
    """The main window as it is on the (virtual) screen, map canvas included."""
    from qgis.utils import iface

    canvas = iface.mapCanvas()
    canvas.refreshAllLayers()
    settle(0.5)
    wait_until(lambda: not canvas.isDrawing(), 20, "the map canvas to finish drawing")
    settle(0.5)
    if not window.grab().save(path):
        raise OSError(f"could not save the screenshot {path}")
    STATE["screenshot"] = path


def main() -> None:
    from qgis.utils import iface, plugins

    QgsApplication.messageLog().messageReceived.connect(_on_message)
    seconds = float(os.environ.get("S2SR_GUI_STAGE_TIMEOUT", "60"))
    try:
        window = iface.mainWindow()
        window.setGeometry(0, 0, 1280, 1000)
        window.showMaximized()
        STATE["gl_libraries"] = loaded_libraries(("LLVM", "swrast", "GLX_mesa"))
        stage("plugin")
        plugin = plugins.get(PLUGIN)
        if plugin is None:
            raise LookupError(f"QGIS did not load the plugin '{PLUGIN}' (loaded: {sorted(plugins)})")
        guard = sys.modules.get(f"{PLUGIN}.ui.torch_guard")
        STATE["guard"] = "installed" if any(getattr(f, "s2sr_triton_guard", False) for f in sys.meta_path) \
            else ("module imported, not installed" if guard else "absent")

        stage("add raster")
        source = iface.addRasterLayer(os.environ["S2SR_GUI_RASTER"], "tiny S2 B02 B03 B04 B08")
        if source is None or not source.isValid():
            raise RuntimeError("the test raster could not be added")
        iface.mapCanvas().setExtent(source.extent())

        stage("open dock")
        panel_action(window, plugin).trigger()  # the panel's own toolbar/menu action
        wait_until(lambda: find_dock(window, plugin) is not None, 30, "the dock")
        dock = find_dock(window, plugin)
        wait_until(dock.isVisible, 10, "the dock to show")

        stage("super-resolve")
        tabs, page = tab_page(dock, "Super-resolve")
        tabs.setCurrentWidget(page)
        select_text_item(page, "One image")
        layer_combo(page).setLayer(source)
        whole_layer(page)
        select_file_item(page, os.environ.get("S2SR_GUI_SR_MODEL", "hat_taskdriven"))
        if source.bandCount() == 4:  # B02/B03/B04/B08 of one date: the 4-band networks take them in one pass
            checkbox(page, "All 10 m bands").setChecked(True)
        settle()
        sr = run_job(page, "Super-resolve", "SR", 1, seconds)
        sr_layer = next(layer for layer in sr if isinstance(layer, QgsRasterLayer))

        stage("segment")
        tabs, page = tab_page(dock, "Segment")
        tabs.setCurrentWidget(page)
        layer_combo(page).setLayer(sr_layer)
        checkbox(page, "Buildings").setChecked(True)
        checkbox(page, "Roads").setChecked(True)
        whole_layer(page)
        select_file_item(page, "unetpp_buildings")
        select_file_item(page, "unetpp_roads")
        settle()
        masks = run_job(page, "Segment", "mask", 2, seconds)

        stage("screenshot")
        STATE["triton_loaded"] = "triton" in sys.modules and sys.modules["triton"] is not None
        STATE["layers"] = sorted(layer.name() for layer in QgsProject.instance().mapLayers().values())
        STATE["masks"] = sorted(layer.name() for layer in masks)
        iface.mapCanvas().setExtent(sr_layer.extent())
        screenshot(window, os.environ["S2SR_GUI_SHOT"])
        STATE["ok"] = True
        stage("done")
    except BaseException as exc:  # everything must end in the result file and a QGIS exit
        STATE["error"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:]
        save()
    finally:
        QgsProject.instance().setDirty(False)  # no "save the project?" question on the way out
        QTimer.singleShot(0, lambda: quit_qgis(0 if STATE["ok"] else 3))


def quit_qgis(code: int) -> None:
    """Leave QGIS as Project > Exit QGIS does: close the project, then end the event loop (plugins then unload).

    Not ``QCoreApplication.exit()`` alone with layers still loaded: QGIS 3.44
    then removes them while deleting itself, after its layer tree view is
    gone, and dies on SIGSEGV (``QgisApp::updateNewLayerInsertionPoint``) with
    or without any plugin, which read as a crash of this plugin's teardown
    (issue 24). Not the Exit action itself either: this test's files lie in the
    temporary folder, which QGIS counts as temporary layers, and it would ask
    whether to drop them. ``newProject(False)`` closes the project as that
    action does, without the question.
    """
    from qgis.utils import iface

    iface.newProject(False)
    QCoreApplication.exit(code)


QTimer.singleShot(0, main)  # --code runs before QGIS's event loop starts; work inside it
