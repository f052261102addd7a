"""Issue 21, defects 3 and 4: the training dialog closes, and its children see the installer's package folder.

3. Close, Esc and ``close()`` left the dialog open (``reject`` called ``close``,
   whose ``closeEvent`` called ``reject``: Qt dropped the nested close).
4. With the packages in ``<profile>/python/dependencies/s2_taskdriven_sr/py3XY``
   (the plugin's installer) and no PYTHONPATH, *Start* failed with
   "No module named 'tqdm'": the child did not get that folder on its path.
   The probe modules below live *only* in that folder.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest


@pytest.fixture
def dialog(train_dialog):
    return train_dialog


@pytest.fixture
def installer_folder(qh):
    """The plugin installer's package folder of the test profile, with a probe module only there.

    Yields ``(folder, module name)``; the probe prints one JSON log event naming its file, then sleeps for
    ``S2SR_PROBE_SLEEP`` seconds (0 by default). Only what the fixture made is removed afterwards.
    """
    from qgis.core import QgsApplication

    deps = qh.ui("install.deps")
    folder = deps.deps_dir_for(Path(QgsApplication.qgisSettingsDirPath()))
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    name = f"s2sr_deps_probe_{uuid.uuid4().hex[:8]}"
    probe = folder / f"{name}.py"
    probe.write_text(
        "import json, os, sys, time\n"
        "print(json.dumps({'event': 'log', 'message': 'probe imported from ' + __file__}), flush=True)\n"
        "time.sleep(float(os.environ.get('S2SR_PROBE_SLEEP', '0')))\n", encoding="utf-8")
    assert os.environ.get("PYTHONPATH", "").find(str(folder)) < 0
    try:
        yield folder, name
    finally:
        probe.unlink()
        for p in made[:1]:  # the outermost folder the fixture created, with everything under it
            shutil.rmtree(p, ignore_errors=True)


def _shown(dlg, qh) -> None:
    dlg.show()
    assert qh.wait_until(dlg.isVisible, 5)


def test_close_esc_and_the_close_button_close_the_dialog(dialog, qh):
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtTest import QTest

    _shown(dialog, qh)
    dialog.close()
    assert qh.wait_until(lambda: not dialog.isVisible(), 2), "close() left the training dialog open"
    _shown(dialog, qh)
    QTest.keyClick(dialog, Qt.Key.Key_Escape)
    assert qh.wait_until(lambda: not dialog.isVisible(), 2), "Esc left the training dialog open"
    _shown(dialog, qh)
    dialog.close_button.click()
    assert qh.wait_until(lambda: not dialog.isVisible(), 2), "the Close button left the training dialog open"


def test_close_while_running_asks_and_stops_the_child(dialog, qh, installer_folder, monkeypatch, tmp_path):
    folder, name = installer_folder
    monkeypatch.setenv("S2SR_PROBE_SLEEP", "120")
    _shown(dialog, qh)
    assert dialog.launch(["-m", name], tmp_path / "run", what="probe")
    assert qh.wait_until(lambda: "probe imported" in dialog.log_view.toPlainText(), 60), \
        dialog.log_view.toPlainText()
    asked = []
    monkeypatch.setattr(dialog, "confirm_stop", lambda: asked.append(1) or False)  # "No, keep it running"
    dialog.close()
    qh.wait_until(lambda: False, 0.3)
    assert asked and dialog.isVisible() and dialog.is_running()
    monkeypatch.setattr(dialog, "confirm_stop", lambda: asked.append(2) or True)  # "Yes, stop it"
    dialog.close()
    assert qh.wait_until(lambda: not dialog.isVisible(), 10)
    assert asked == [1, 2] and not dialog.is_running()


def test_children_see_the_installer_package_folder(dialog, qh, installer_folder, tmp_path):
    """The trainer's launch (Start, Resume, the area tab) and "Make synthetic data…" go through it."""
    folder, name = installer_folder
    assert dialog.launch(["-m", name], tmp_path / "run", what="probe")
    assert qh.wait_until(lambda: not dialog.is_running(), 60)
    text = dialog.log_view.toPlainText()
    assert f"probe imported from {folder / name}.py" in text, text
    assert "ModuleNotFoundError" not in text

    proc = dialog.make_synthetic(str(tmp_path / "synthetic"), scenes=1, size=48, frames=2)
    try:
        assert str(folder) in proc.arguments(), proc.arguments()  # the same bootstrap as the trainer
    finally:
        proc.kill()
        proc.waitForFinished(10000)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from core.data.synthetic.towns import make_dataset

    root = tmp_path_factory.mktemp("synthetic")
    make_dataset(root, n_scenes=3, size_hr=72, seed=0, frames=3)
    return root


#: Issue 21, defect 5: the longest pause of QGIS's event loop allowed while a run is followed.
MAX_STALL_S = 0.3


def test_following_a_training_run_never_freezes_the_event_loop(dialog, qh, tiny_dataset, tmp_path):
    """A tiny run from the shown dialog, curves and all, with a stall monitor on the event loop.

    The curves were redrawn with matplotlib on the UI thread (0.4-0.65 s a draw,
    pauses of 1-2.7 s in QGIS); they are rendered in a worker thread now.
    """
    from tests.stall_monitor import StallMonitor

    dialog.data_dir.setFilePath(str(tiny_dataset))
    dialog.select_preset("tiny_rams_baseline")
    dialog.out_dir.setFilePath(str(tmp_path / "run"))
    dialog.epochs_spin.setValue(3)
    dialog.samples_spin.setValue(8)
    dialog.batch_spin.setValue(1)
    dialog.device_combo.setCurrentIndex(dialog.device_combo.findData("cpu"))
    _shown(dialog, qh)
    monitor = StallMonitor().start()
    dialog.start_button.click()
    assert qh.wait_until(lambda: not dialog.is_running(), 600), dialog.log_view.toPlainText()
    qh.wait_until(lambda: not dialog.plot.busy(), 30)
    monitor.stop()
    print(f"\ntraining from the dialog: {monitor.report()}")
    assert dialog.history.checkpoint, dialog.log_view.toPlainText()
    assert len(dialog.history.epochs) == 3 and dialog.plot.renders >= 3
    assert dialog.plot.mode == "process"  # drawn by curves_render.py, not in QGIS's process
    assert "cl1" in dialog.plot.labels, dialog.plot.labels
    assert monitor.longest <= MAX_STALL_S, monitor.report()
