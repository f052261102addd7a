# SPDX-License-Identifier: GPL-2.0-or-later
"""Runs INSIDE the real QGIS (``qgis --code journey_driver.py``): the analyst's journeys of issue 21.

Started by ``test_qgis_journey.py``; not collected by pytest. With a stall
monitor on QGIS's event loop throughout, it:

1. adds a 4-band raster, zooms to it and opens the plugin's dock;
2. compares two shipped checkpoints on it ("Run two checkpoints"), first
   without trust maps, then with them, and records the main map's scale and
   the synced view's size after each;
3. opens the training dialog from the plugin's menu action, makes a synthetic
   dataset with "Make synthetic data…", starts a tiny run, cancels it after its
   first epoch, resumes it to the end and closes the dialog;
4. saves screenshots of the main window and the training dialog, and quits.

Every stage is written to ``S2SR_GUI_RESULT`` before it starts (QGIS may die).
Inputs (environment): ``S2SR_GUI_RASTER``, ``S2SR_GUI_RESULT``, ``S2SR_GUI_SHOTS``
(folder for the PNGs), ``S2SR_GUI_WORK`` (scratch folder), ``S2SR_GUI_HERE`` (this
folder), ``S2SR_GUI_STAGE_TIMEOUT``.
"""

import importlib.util
import json
import os
import sys
import time
import traceback
from pathlib import Path

from qgis.core import QgsApplication, QgsProject
from qgis.PyQt.QtCore import QCoreApplication, QTimer
from qgis.PyQt.QtWidgets import QDialog, QDockWidget

PLUGIN = "s2_taskdriven_sr"
DOCK_OBJECT_NAME = "S2TaskDrivenSRDock"
TRAIN_DIALOG_NAME = "S2TaskDrivenSRTrainDialog"
HERE = Path(os.environ["S2SR_GUI_HERE"])  # ``qgis --code`` runs this text without __file__
RESULT = os.environ["S2SR_GUI_RESULT"]
SHOTS = Path(os.environ["S2SR_GUI_SHOTS"])
WORK = Path(os.environ["S2SR_GUI_WORK"])
TIMEOUT = float(os.environ.get("S2SR_GUI_STAGE_TIMEOUT", "300"))
STATE = {"stage": "started", "ok": False, "error": "", "log": [], "stages": {}, "compare": {}, "train": {},
         "stall": {}, "sys_path_has_deps": None, "pythonpath": os.environ.get("PYTHONPATH", "")}


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


StallMonitor = _load("s2sr_stall_monitor", HERE.parent / "stall_monitor.py").StallMonitor


def save():
    tmp = RESULT + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(STATE, f, indent=1, default=str)
    os.replace(tmp, RESULT)


def stage(name):
    STATE["stage"] = name
    STATE["stages"][name] = time.monotonic()
    save()


def _on_message(message, tag, level):
    if tag == "S2 super-resolution" and not message.startswith("Traceback"):
        STATE["log"].append(f"{int(level)}: {message[:400]}")


def wait_until(condition, seconds, what):
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {seconds:.0f} s waiting for {what}")
        QCoreApplication.processEvents()
        time.sleep(0.02)


def settle(seconds=0.5):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QCoreApplication.processEvents()
        time.sleep(0.02)


def grab(widget, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    if not widget.grab().save(str(path)):
        raise OSError(f"could not save {path}")
    return str(path)


def canvas_state(canvas):
    return {"scale": canvas.scale(), "width": canvas.width(), "height": canvas.height(),
            "center": [canvas.center().x(), canvas.center().y()]}


def compare(dock, trust):
    """Run two shipped checkpoints from the Compare tab; return what the analyst then sees."""
    from qgis.PyQt.QtWidgets import QTabWidget
    from qgis.utils import iface

    panel = dock.compare
    for tabs in dock.findChildren(QTabWidget):  # the analyst opens the Compare tab
        for i in range(tabs.count()):
            if tabs.widget(i) is panel or tabs.widget(i).isAncestorOf(panel):
                tabs.setCurrentIndex(i)
    panel.run_mode.setChecked(True)
    # The session's first listing of checkpoints runs in a worker thread (it imports PyTorch): wait for it.
    wait_until(lambda: panel.baseline_combo.count() > 0 and panel.taskdriven_combo.count() > 0, 60,
               "the checkpoints to be listed")
    for combo, name in ((panel.baseline_combo, "hat_baseline"), (panel.taskdriven_combo, "hat_taskdriven")):
        index = next(i for i in range(combo.count()) if os.path.basename(str(combo.itemData(i))).startswith(name))
        combo.setCurrentIndex(index)
    panel.more["trust"].setChecked(trust)
    settle(0.3)
    main = iface.mapCanvas()
    before = canvas_state(main)
    done = []
    panel.compared.connect(done.append)
    started = time.monotonic()
    panel.compare_button.click()
    wait_until(lambda: done or any(m.startswith("2:") for m in STATE["log"][-3:]), TIMEOUT, "the comparison")
    seconds = time.monotonic() - started
    panel.compared.disconnect(done.append)
    if not done:
        raise RuntimeError(f"Compare failed: {STATE['log'][-3:]}")
    settle(1.0)  # the synced view is laid out, the maps draw
    view = panel.view
    dock_widget = view.dock_widget() if view is not None else None
    result = done[0]
    return {"seconds": seconds, "before": before, "after": canvas_state(main),
            "view": canvas_state(view.canvas) if view is not None else None,
            "view_dock": [dock_widget.width(), dock_widget.height()] if dock_widget is not None else None,
            "view_floating": bool(dock_widget.isFloating()) if dock_widget is not None else None,
            "trust_paths": sorted(result.trust_paths), "summary": panel.summary.text(),
            "trust_cell": panel.table_values()["Trust: mean disagreement"]["Baseline"],
            "layers": sorted(lyr.name() for lyr in QgsProject.instance().mapLayers().values())}


def train(plugin, window, monitor):
    """The training dialog's journey: synthetic data, start, cancel, resume, close."""
    dialog = plugin.show_train_dialog()
    if dialog is None:
        raise RuntimeError(f"the training dialog did not open: {plugin.problems}")
    wait_until(dialog.isVisible, 10, "the training dialog")
    out = {"opened_by": "plugin action", "python": None}
    data = WORK / "synthetic"
    proc = dialog.make_synthetic(str(data), scenes=3, size=72, frames=3)
    out["synth_arguments"] = list(proc.arguments()) if proc is not None else None
    wait_until(lambda: dialog.synth_process is None, TIMEOUT, "the synthetic dataset")
    if dialog.data_dir.filePath() != str(data):
        raise RuntimeError("Make synthetic data failed: " + dialog.log_view.toPlainText()[-800:])
    dialog.select_preset("tiny_rams_baseline")
    run_dir = WORK / "run"
    dialog.out_dir.setFilePath(str(run_dir))
    dialog.epochs_spin.setValue(3)
    dialog.samples_spin.setValue(24)  # long enough an epoch that Cancel lands inside the run
    dialog.batch_spin.setValue(1)
    dialog.device_combo.setCurrentIndex(dialog.device_combo.findData("cpu"))
    settle(0.3)
    during = StallMonitor().start()
    dialog.start_button.click()
    wait_until(lambda: dialog.history.epochs or not dialog.is_running(), TIMEOUT, "the first epoch")
    out["started"] = bool(dialog.history.epochs)
    if not out["started"]:
        raise RuntimeError("the trainer stopped before its first epoch: " + dialog.log_view.toPlainText()[-1500:])
    try:  # the first epoch's curves, as the analyst sees them while the run goes on
        wait_until(lambda: "cl1" in dialog.plot.labels, 30, "the first curves")
    except TimeoutError:
        pass
    out["shot"] = grab(dialog, "journey_training.png")
    dialog.cancel_button.click()
    wait_until(lambda: not dialog.is_running(), 120, "the cancel")
    out["cancel_status"] = dialog.status_label.text()
    out["kept"] = (run_dir / "last.pt").is_file()
    dialog.resume_button.click()
    wait_until(lambda: not dialog.is_running(), TIMEOUT, "the resumed run to finish")
    dialog.plot.wait_idle(30)
    during.stop()
    out["checkpoint"] = dialog.history.checkpoint
    out["epochs_after_resume"] = list(dialog.history.epochs)
    # the run folder's history spans the cancelled and the resumed run (the resumed one may have had
    # nothing left to do when the machine finished the epochs before the cancel landed)
    history_file = run_dir / "history.json"
    out["history_epochs"] = ([int(r["epoch"]) for r in json.loads(history_file.read_text(encoding="utf-8"))]
                             if history_file.is_file() else [])
    out["curves"] = list(dialog.plot.labels)
    out["curves_mode"] = dialog.plot.mode
    out["log_tail"] = dialog.log_view.toPlainText()[-600:]
    out["stall_training"] = {"longest": during.longest, "report": during.report()}
    out["shot_done"] = grab(dialog, "journey_training_done.png")
    dialog.close()
    settle(0.5)
    out["closed"] = not dialog.isVisible()
    out["dialogs_visible"] = [d.objectName() for d in window.findChildren(QDialog) if d.isVisible()]
    return out


def main():
    from qgis.utils import iface, plugins

    QgsApplication.messageLog().messageReceived.connect(_on_message)
    monitor = StallMonitor()
    try:
        window = iface.mainWindow()
        window.setGeometry(0, 0, 1280, 1000)
        window.showMaximized()
        settle(1.0)
        stage("plugin")
        plugin = plugins.get(PLUGIN)
        if plugin is None:
            raise LookupError(f"QGIS did not load the plugin '{PLUGIN}' (loaded: {sorted(plugins)})")
        deps = plugin_deps = None
        try:
            from s2_taskdriven_sr.ui.install.deps import plugin_deps_dir

            plugin_deps = plugin_deps_dir()
            deps = str(plugin_deps) in sys.path
        except Exception as exc:  # noqa: BLE001
            STATE["error"] = f"deps folder: {exc}"
        STATE["sys_path_has_deps"], STATE["deps_dir"] = deps, str(plugin_deps)
        STATE["torch_at_start"] = "torch" in sys.modules
        monitor.start()

        stage("add raster")
        source = iface.addRasterLayer(os.environ["S2SR_GUI_RASTER"], "tiny S2 B02 B03 B04 B08")
        if source is None or not source.isValid():
            raise RuntimeError("the test raster could not be added")
        iface.mapCanvas().setExtent(source.extent())
        settle(1.0)

        stage("open dock")
        plugin.dock_action.trigger()
        wait_until(lambda: window.findChild(QDockWidget, DOCK_OBJECT_NAME) is not None, 60, "the dock")
        dock = window.findChild(QDockWidget, DOCK_OBJECT_NAME)
        wait_until(dock.isVisible, 10, "the dock to show")
        sr = dock.sr
        sr.mode_combo.setCurrentIndex(0)  # one image
        sr.layer_combo.setLayer(source)
        sr.extent_check.setChecked(False)
        sr.more["all_bands"].setChecked(True)
        dock.out_dir.setFilePath(str(WORK / "outputs"))
        settle(0.5)

        stage("compare without trust maps")
        STATE["compare"]["plain"] = compare(dock, trust=False)
        STATE["compare"]["plain"]["shot"] = grab(window, "journey_compare.png")
        stage("compare with trust maps")
        STATE["compare"]["trust"] = compare(dock, trust=True)

        stage("training dialog")
        STATE["train"] = train(plugin, window, monitor)

        stage("close dock")
        plugin.dock_action.setChecked(False)
        settle(0.5)
        STATE["dock_closed"] = not dock.isVisible()
        monitor.stop()
        STATE["stall"] = {"longest": monitor.longest, "report": monitor.report(), "stacks": monitor.stacks[-200:],
                          "stages": STATE["stages"], "monitor_start": monitor._start}
        STATE["ok"] = True
        stage("done")
    except BaseException as exc:  # everything must end in the result file and a QGIS exit
        STATE["error"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:]
        try:
            monitor.stop()
            STATE["stall"] = {"longest": monitor.longest, "report": monitor.report()}
        except Exception:  # noqa: BLE001
            pass
        save()
    finally:
        QgsProject.instance().setDirty(False)
        QTimer.singleShot(0, lambda: QCoreApplication.exit(0 if STATE["ok"] else 3))


QTimer.singleShot(0, main)
