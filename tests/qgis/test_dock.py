"""The dock driven like an analyst would: pick layers and a checkpoint, click, read the map."""

from __future__ import annotations

import math

import pytest
import rasterio


def test_super_resolve_revisits_adds_layer_in_group_with_input_stretch(dock, scene_files, checkpoints, qh, tmp_path):
    from qgis.core import QgsProject, QgsSingleBandGrayRenderer

    out_dir = tmp_path / "out"
    layers = qh.dock_on_revisits(dock, scene_files["revisits"], checkpoints["baseline"], out_dir)

    assert "share one grid" in dock.check_label.text()
    assert "T = 3" in dock.card_label.text() and "x3" in dock.card_label.text()
    assert dock.run_button.isEnabled()
    before = set(QgsProject.instance().mapLayers())
    dock.run_button.click()
    assert dock.runner.busy()
    assert qh.wait_until(lambda: not dock.runner.busy(), 60)

    added = qh.new_layers(before)
    assert len(added) == 1, [lyr.name() for lyr in added]
    out = added[0]
    src = layers[0]
    assert out.isValid()
    assert out.crs() == src.crs()
    ext, sext = out.extent(), src.extent()
    for a, b in ((ext.xMinimum(), sext.xMinimum()), (ext.xMaximum(), sext.xMaximum()),
                 (ext.yMinimum(), sext.yMinimum()), (ext.yMaximum(), sext.yMaximum())):
        assert a == pytest.approx(b, abs=1e-6)
    assert out.rasterUnitsPerPixelX() == pytest.approx(src.rasterUnitsPerPixelX() / 3)
    assert out.rasterUnitsPerPixelY() == pytest.approx(src.rasterUnitsPerPixelY() / 3)
    assert (out.width(), out.height()) == (3 * src.width(), 3 * src.height())
    node = QgsProject.instance().layerTreeRoot().findLayer(out.id())
    assert node.parent().name() == src.name()
    assert str(out_dir) in out.source()
    # the output is drawn with exactly the stretch the input uses for that band
    sr = out.renderer()
    assert isinstance(sr, QgsSingleBandGrayRenderer)
    src_ce = src.renderer().contrastEnhancement()
    assert sr.contrastEnhancement().minimumValue() == pytest.approx(src_ce.minimumValue())
    assert sr.contrastEnhancement().maximumValue() == pytest.approx(src_ce.maximumValue())
    assert dock.seg_layer_combo.currentLayer() is out  # ready to be segmented
    assert qh.wait_until(lambda: "frames used" in dock.log_view.toPlainText(), 5)  # the engine's notes


def test_preview_extent_only_processes_the_map_view(dock, scene_files, checkpoints, qh, tmp_path):
    from qgis.core import QgsProject, QgsRectangle

    layer = qh.load_raster(scene_files["revisits"][0], "one image")
    dock.layer_combo.setLayer(layer)
    dock.select_checkpoint(str(checkpoints["baseline"]))
    dock.out_dir.setFilePath(str(tmp_path / "out"))
    canvas = dock.iface.mapCanvas()
    canvas.setDestinationCrs(layer.crs())
    full = layer.extent()
    view = QgsRectangle(full.xMinimum() + 55, full.yMinimum() + 62, full.xMinimum() + 180, full.yMinimum() + 171)
    canvas.setExtent(view)
    dock.extent_check.setChecked(True)
    assert "preview of the map extent" in dock.check_label.text()
    assert "frames will be repeated" in dock.check_label.text()  # RAMS (T=3) on one image
    before = set(QgsProject.instance().mapLayers())
    dock.run_button.click()
    assert qh.wait_until(lambda: not dock.runner.busy(), 60)
    (out,) = qh.new_layers(before)
    ext, shown = out.extent(), canvas.extent()
    # snapped outward to whole input pixels around the visible part of the layer, never beyond the layer
    assert ext.xMinimum() == pytest.approx(math.floor((max(shown.xMinimum(), full.xMinimum()) - full.xMinimum()) / 10)
                                           * 10 + full.xMinimum())
    assert ext.xMaximum() == pytest.approx(min(full.xMaximum(), math.ceil((shown.xMaximum() - full.xMinimum()) / 10)
                                               * 10 + full.xMinimum()))
    assert full.contains(ext) and ext.width() < full.width()
    assert "_preview" in out.source()
    with rasterio.open(out.source()) as ds:
        assert ds.tags()["SR_ANCHOR"].startswith("revisit mean")  # on by default
    dock.anchor_check.setChecked(False)  # the analyst wants the network's raw output
    job, _spec = dock.prepare_sr_job(str(checkpoints["baseline"]))
    assert job.options.anchor is False


def test_cancel_leaves_no_layer_and_no_file(dock, checkpoints, qh, tmp_path):
    from qgis.core import QgsProject, QgsTask

    big = qh.write_tif(tmp_path / "big.tif", (qh.smooth_image(384, 384, seed=5) * 1e4).astype("uint16"))
    layer = qh.load_raster(big, "big")
    dock.layer_combo.setLayer(layer)
    dock.select_checkpoint(str(checkpoints["slow"]))
    out_dir = tmp_path / "out"
    dock.out_dir.setFilePath(str(out_dir))
    before = set(QgsProject.instance().mapLayers())
    task = dock.run_button.click() or dock.runner.running[0]
    assert qh.wait_until(lambda: task.status() == QgsTask.TaskStatus.Running, 30)
    assert dock.cancel_button.isEnabled()
    dock.cancel_button.click()
    assert qh.wait_until(lambda: not dock.runner.busy(), 60)
    assert qh.new_layers(before) == []
    assert not out_dir.exists() or qh.files_in(out_dir) == []
    assert any("cancelled" in m for m in clean_messages(dock))


def clean_messages(dock):
    bar = dock.iface.messageBar()
    return [m for level in range(4) for m in bar.get_messages(level)]


def test_refusals_and_warnings_are_shown_before_running(dock, qh, tmp_path):
    from qgis.core import QgsRasterLayer

    sources = qh.ui("sources")
    remote = QgsRasterLayer("contextualWMSLegend=0&crs=EPSG:3857&format=image/png&layers=x&styles=&"
                            "url=http://example.invalid/wms", "remote imagery", "wms")
    with pytest.raises(sources.Refused, match="WMS service, not a file"):
        sources.layer_file(remote)
    degrees = qh.write_tif(tmp_path / "degrees.tif", (qh.smooth_image(20, 20, 3) * 1e4).astype("uint16"),
                           px=0.0001, crs="EPSG:4326", origin=(15.0, 52.0))
    layer = qh.load_raster(degrees, "in degrees")
    dock.layer_combo.setLayer(layer)
    assert "warped to EPSG:32633" in dock.check_label.text()
    gone = qh.load_raster(qh.write_tif(tmp_path / "gone.tif", (qh.smooth_image(9, 9, 4) * 1e4).astype("uint16")),
                          "deleted file")
    (tmp_path / "gone.tif").unlink()
    dock.layer_combo.setLayer(gone)
    assert "does not exist" in dock.check_label.text()
    assert not dock.run_button.isEnabled()


def test_segment_adds_styled_probability_mask_and_vector_layers(dock, scene_files, checkpoints, qh, tmp_path):
    from qgis.core import QgsPalettedRasterRenderer, QgsProject, QgsSingleBandPseudoColorRenderer

    styles = qh.ui("styles")
    hr = qh.load_raster(scene_files["reference"], "hr image")
    dock.add_checkpoint(str(checkpoints["buildings"]))
    dock.add_checkpoint(str(checkpoints["roads"]))
    dock.seg_layer_combo.setLayer(hr)
    dock.vectors_check.setChecked(True)
    dock.out_dir.setFilePath(str(tmp_path / "seg"))
    before = set(QgsProject.instance().mapLayers())
    dock.segment_button.click()
    assert qh.wait_until(lambda: not dock.runner.busy(), 90)
    added = {lyr.name(): lyr for lyr in qh.new_layers(before)}
    for target in ("buildings", "roads"):
        prob = added[f"{target} probability (hr image)"]
        mask = added[f"{target} mask (hr image)"]
        assert isinstance(prob.renderer(), QgsSingleBandPseudoColorRenderer)
        items = prob.renderer().shader().rasterShaderFunction().colorRampItemList()
        assert items[-1].color.getRgb()[:3] == styles.TARGET_COLOURS[target]
        assert items[0].color.alpha() == 0 and prob.opacity() < 1
        assert isinstance(mask.renderer(), QgsPalettedRasterRenderer)
        assert mask.renderer().classes()[0].color.getRgb()[:3] == styles.TARGET_COLOURS[target]
        assert prob.extent() == hr.extent()
        assert f"{target} polygons" in added
    group = QgsProject.instance().layerTreeRoot().findGroup("hr image")
    assert group is not None and len(group.findLayers()) == len(added)


def test_added_checkpoint_is_remembered_across_sessions(dock, checkpoints, qh, clean_qgis):
    dock_mod = qh.ui("dock")
    entry = dock.add_checkpoint(str(checkpoints["taskdriven"]))
    assert entry is not None and dock.checkpoint_combo.currentData() == entry.path
    assert "dice_buildings" in dock.card_label.text() and "dynamic" in dock.card_label.text()
    assert "test metrics" in dock.card_label.text()
    bad = checkpoints["taskdriven"].parent / "not_a_checkpoint.safetensors"
    bad.write_bytes(b"garbage")
    assert dock.add_checkpoint(str(bad)) is None
    assert any("not_a_checkpoint" in m for m in clean_messages(dock))
    again = dock_mod.SRDockWidget(clean_qgis)
    try:
        assert again.checkpoint_combo.currentData() == entry.path
        assert str(bad) not in [again.checkpoint_combo.itemData(i) for i in range(again.checkpoint_combo.count())]
    finally:
        again.shutdown()


def test_shutdown_cancels_running_jobs_and_waits(clean_qgis, checkpoints, qh, tmp_path):
    from qgis.core import QgsApplication, QgsTask

    dock = qh.ui("dock").SRDockWidget(clean_qgis, parent=clean_qgis.mainWindow())
    big = qh.write_tif(tmp_path / "big.tif", (qh.smooth_image(384, 384, seed=6) * 1e4).astype("uint16"))
    dock.layer_combo.setLayer(qh.load_raster(big, "big"))
    dock.select_checkpoint(str(checkpoints["slow"]))
    out_dir = tmp_path / "out"
    dock.out_dir.setFilePath(str(out_dir))
    task = dock.super_resolve()
    assert qh.wait_until(lambda: task.status() == QgsTask.TaskStatus.Running, 30)
    dock.shutdown()  # what the plugin's unload() calls
    assert not dock.runner.busy()
    assert task.is_finished
    assert QgsApplication.taskManager().countActiveTasks() == 0
    assert not out_dir.exists() or qh.files_in(out_dir) == []


def test_cancel_says_cancelled_and_lands_within_one_tile(dock, checkpoints, qh, tmp_path):
    """Cancel is not a failure: no "failed" anywhere, QGIS's task ends complete, and it stops at the next tile."""
    import time

    from qgis.core import QgsTask

    tasks = qh.ui("tasks")
    big = qh.write_tif(tmp_path / "big.tif", (qh.smooth_image(256, 256, seed=7) * 1e4).astype("uint16"))
    dock.layer_combo.setLayer(qh.load_raster(big, "big"))
    dock.select_checkpoint(str(checkpoints["slow"]))
    dock.sr.advanced["tile"].setValue(32)  # many small tiles, one per model call: the cancel has a chance
    dock.sr.advanced["batch"].setValue(1)
    out_dir = tmp_path / "out"
    dock.out_dir.setFilePath(str(out_dir))
    stamps = []
    dock.runner.progressChanged.connect(lambda _v, msg: stamps.append((time.monotonic(), msg)))
    task = dock.super_resolve()
    assert task is not None and task.job.options.tile == 32 and task.job.options.batch == 1

    def tiles_seen():
        return [(t, m) for t, m in stamps if "tile" in m]

    def distinct_tiles():  # one stamp per tile: the first time each "tile k/N" message was seen
        first = {}
        for t, m in tiles_seen():
            first.setdefault(m, t)
        return sorted(first.values())

    assert qh.wait_until(lambda: len(distinct_tiles()) >= 3, 120), stamps[-5:]
    times = distinct_tiles()
    one_tile = max(b - a for a, b in zip(times, times[1:]))
    clicked = time.monotonic()
    dock.cancel_button.click()
    assert qh.wait_until(lambda: not dock.runner.busy(), 60)
    latency = time.monotonic() - clicked
    print(f"cancel landed after {latency:.2f} s; one tile takes up to {one_tile:.2f} s ({len(times)} tiles seen)")
    assert latency <= 1.5 * one_tile + 1.0, (latency, one_tile)
    assert task.outcome == tasks.CANCELLED
    assert task.status() == QgsTask.TaskStatus.Complete  # QGIS reports "Task failed" for a Terminated task
    assert not out_dir.exists() or qh.files_in(out_dir) == []
    messages = clean_messages(dock)
    assert any("cancelled" in m for m in messages), messages
    assert not any("fail" in m.lower() for m in messages), messages
    assert qh.wait_until(lambda: "cancelled" in dock.log_view.toPlainText(), 5)
    assert "fail" not in dock.log_view.toPlainText().lower()


def test_first_listing_of_checkpoints_runs_off_the_ui_thread_and_keeps_remembered_choices(clean_qgis, qh,
                                                                                            monkeypatch):
    """In a fresh QGIS the first model card read imports PyTorch (about 2 s of a frozen window, measured in the
    real-window journey): the dock lists in a worker thread and fills its combos when that lands, without
    overwriting the analyst's remembered choice with the empty list it starts from."""
    import threading
    import time

    from qgis.core import QgsSettings

    listing = qh.ui("dock.model_listing")
    store = qh.ui("dock.model_store")
    real_read = listing.read_entries
    threads = []

    def read_and_note_thread(paths):
        threads.append(threading.get_ident())
        time.sleep(0.2)  # as slow as a first PyTorch import, at least
        return real_read(paths)

    monkeypatch.setattr(listing, "read_entries", read_and_note_thread)
    monkeypatch.setattr(listing.api, "model_cards_are_cheap", lambda: False)  # as in a QGIS without PyTorch loaded
    shipped = [str(p) for p, card in listing.api.list_models() if card.task == "sr"]
    remembered = shipped[-1]
    store.ModelStore().set_choice("sr", remembered)
    dock = qh.ui("dock").SRDockWidget(clean_qgis, parent=clean_qgis.mainWindow())
    try:
        assert dock.checkpoint_combo.count() == 0 and dock.models == []
        assert "Reading the checkpoints' model cards" in dock.progress_label.text()
        dock.refresh_models()  # asked again while the worker runs: one more listing once it lands
        assert qh.wait_until(lambda: dock.checkpoint_combo.count() > 0 and not dock.lister.busy(), 60)
        assert threads and threads[0] != threading.get_ident()
        assert dock.compare.baseline_combo.count() > 0 and dock.compare.taskdriven_combo.count() > 0
        assert dock.checkpoint_combo.currentData() == remembered
        assert store.ModelStore().choice("sr") == remembered
        # the refresh asked for meanwhile ran after the first listing (in a worker too: PyTorch is "not loaded")
        assert qh.wait_until(lambda: len(threads) == 2 and not dock.lister.busy(), 30)
        assert qh.wait_until(lambda: "Reading the checkpoints'" not in dock.progress_label.text(), 10)
        assert dock.checkpoint_combo.currentData() == remembered
    finally:
        dock.shutdown()
        dock.deleteLater()
        QgsSettings().remove("s2_taskdriven_sr/choice/sr")
    # closed (or QGIS quit) while the first listing runs: shutdown lets it finish, so no thread is left
    # importing PyTorch while the plugin unloads or Python finalizes
    closing = qh.ui("dock").SRDockWidget(clean_qgis, parent=clean_qgis.mainWindow())
    assert closing.lister.busy()
    closing.shutdown()
    assert not closing.lister.busy()
    closing.deleteLater()
