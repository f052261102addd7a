"""The training dialog runs the real headless trainer as a child process and follows it.

One tiny RAMS run on a tiny synthetic dataset: start it from the dialog, read
its progress lines, refuse to close while it runs, cancel it after its first
epoch (the epoch is kept), resume it in the same folder to the end, and see the
new checkpoint appear in the dock.
"""

from __future__ import annotations

import json

import pytest
import yaml

#: Epochs of the cancelled-then-resumed run: enough that the cancel lands before the last one.
EPOCHS = 6


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from core.data.synthetic.towns import make_dataset

    root = tmp_path_factory.mktemp("synthetic")
    make_dataset(root, n_scenes=3, size_hr=72, seed=0, frames=3)
    return root


@pytest.fixture
def dialog(train_dialog):
    return train_dialog


def test_form_builds_the_recipe_and_refuses_what_cannot_run(dialog, tiny_dataset, tmp_path):
    dialog.select_preset("tiny_rams_taskdriven")
    assert dialog.weighting_combo.currentData() == "dynamic"
    assert "needs the buildings and roads" in dialog.preset_note.text()
    dialog.data_dir.setFilePath(str(tiny_dataset))
    dialog.out_dir.setFilePath(str(tmp_path / "run"))
    dialog.epochs_spin.setValue(7)
    dialog.loss_table.item(1, 2).setText("0.5")
    data = dialog.form_config()
    assert data["epochs"] == 7 and data["data"]["root"] == str(tiny_dataset)
    assert data["loss"]["terms"][1] == {"name": "dice_buildings", "weight": None, "proportion": 0.5}
    dialog.seg_buildings.setFilePath("")
    assert dialog.start() is False  # refused before any process starts
    assert "buildings Dice loss needs a trained buildings segmentation network" in dialog.status_label.text()
    assert dialog.process is None
    # the YAML tab shows what would run, and an edit there wins over the form
    dialog.tabs.setCurrentIndex(1)
    assert "epochs: 7" in dialog.yaml_edit.toPlainText()
    dialog.yaml_edit.setPlainText(dialog.yaml_edit.toPlainText().replace("epochs: 7", "epochs: 3"))
    assert dialog.final_config()["epochs"] == 3


def test_train_cancel_resume_and_new_checkpoint_in_dock(dialog, clean_qgis, tiny_dataset, tmp_path, qh,
                                                       monkeypatch):
    dock = qh.ui("dock").SRDockWidget(clean_qgis, parent=clean_qgis.mainWindow())
    try:
        run_dir = tmp_path / "run"
        dialog.data_dir.setFilePath(str(tiny_dataset))
        dialog.select_preset("tiny_rams_baseline")
        dialog.out_dir.setFilePath(str(run_dir))
        dialog.epochs_spin.setValue(EPOCHS)
        dialog.samples_spin.setValue(8)
        dialog.batch_spin.setValue(1)
        dialog.device_combo.setCurrentIndex(dialog.device_combo.findData("cpu"))
        ready = []
        dialog.checkpointReady.connect(ready.append)

        dialog.start_button.click()
        assert dialog.is_running()
        written = yaml.safe_load((run_dir / "requested_config.yaml").read_text())
        assert written["epochs"] == EPOCHS and written["data"]["root"] == str(tiny_dataset)
        # generous limits: wait_until returns as soon as the condition holds, and a busy CPU (other jobs,
        # a CI neighbour) can make a tiny epoch take tens of seconds
        assert qh.wait_until(lambda: dialog.lines_read >= 1, 300), dialog.log_view.toPlainText()
        assert qh.wait_until(lambda: dialog.history.epochs == [1] or not dialog.is_running(), 300), \
            dialog.log_view.toPlainText()
        assert dialog.history.epochs == [1]
        assert dialog.progress_bar.value() >= 1000 // EPOCHS - 1  # one epoch of EPOCHS done (of 1000)
        assert "cl1" in dialog.history.train and "cpsnr" in dialog.history.val

        monkeypatch.setattr(dialog, "confirm_stop", lambda: False)
        dialog.close()  # the analyst says "no, keep training"
        assert dialog.is_running()
        from qgis.PyQt.QtCore import QCoreApplication
        from qgis.PyQt.QtGui import QCloseEvent

        quitting = QCloseEvent()
        QCoreApplication.sendEvent(clean_qgis.mainWindow(), quitting)  # QGIS is being closed
        assert not quitting.isAccepted() and dialog.is_running()

        dialog.cancel_button.click()
        assert qh.wait_until(lambda: not dialog.is_running(), 120)
        assert "cancelled" in dialog.status_label.text()
        assert (run_dir / "last.pt").is_file()  # the finished epoch is kept
        # An epoch of this tiny run takes a fraction of a second, so one more may end before the cancel
        # lands: the resume must go on from whatever the run kept, never from epoch 1.
        kept = len(json.loads((run_dir / "history.json").read_text()))
        assert 1 <= kept < EPOCHS, f"the run finished all {EPOCHS} epochs before the cancel reached it"
        assert ready == []
        assert dialog.resume_button.isEnabled()

        dialog.resume_button.click()
        assert qh.wait_until(lambda: not dialog.is_running(), 900), dialog.log_view.toPlainText()
        assert dialog.history.checkpoint, dialog.log_view.toPlainText()
        assert dialog.history.epochs == list(range(kept + 1, EPOCHS + 1))  # resumed: kept epochs not retrained
        assert ready == [str(run_dir / "best.safetensors")]
        listed = [dock.checkpoint_combo.itemData(i) for i in range(dock.checkpoint_combo.count())]
        assert str((run_dir / "best.safetensors").resolve()) in listed
    finally:
        dock.shutdown()


def test_replayed_events_draw_curves(dialog, qh):
    mod = qh.ui("train_dialog")
    events = []
    for e in (1, 2, 3):
        for s in (1, 2):
            events.append({"event": "step", "epoch": e, "epochs": 3, "step": s, "steps": 2, "loss": 1.0 / (e + s),
                           "eta_s": 10.0 * (3 - e)})
        events.append({"event": "epoch", "epoch": e, "epochs": 3, "train": {"cl1": 0.3 / e, "dice_buildings": 0.9 - 0.1 * e},
                       "weights": {"cl1": 1.0, "dice_buildings": 0.1 * e}, "val": {"cpsnr": 20.0 + e, "buildings_dice": 0.1 * e}})
    dialog.replay(events)
    h = dialog.history
    assert h.epochs == [1, 2, 3] and h.weights["dice_buildings"] == pytest.approx([0.1, 0.2, 0.3])
    assert dialog.progress_bar.value() == 1000
    lines = dialog.plot.labels  # the curves of the picture shown (drawn in a process of its own: issue 21)
    assert {"cl1", "dice_buildings", "buildings_dice"} <= set(lines)
    assert mod.format_eta(125) == "about 2 min 05 s left"


def test_make_synthetic_dataset_from_the_dialog(dialog, qh, tmp_path):
    target = tmp_path / "synthetic"
    proc = dialog.make_synthetic(str(target), scenes=3, size=48, frames=3)
    assert qh.wait_until(lambda: dialog.synth_process is None, 90), dialog.log_view.toPlainText()
    assert proc.exitCode() == 0, dialog.log_view.toPlainText()
    assert dialog.data_dir.filePath() == str(target)
    assert (target / "split.json").is_file() and len(list(target.glob("*/scene.json"))) == 3
    assert dialog.out_dir.filePath().startswith(str(tmp_path / "runs"))
