"""Fine-tune on your own area from QGIS: the Processing algorithm, and the training dialog's "Your area" tab.

Tiny real data: a synthetic scene's revisits as GeoTIFF layers, its buildings and
roads as GeoPackage layers (EPSG:4326, reprojected by the engine), tiny real
checkpoints from the suite's fixtures, one short epoch.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def area_files(tmp_path_factory):
    from core.data.synthetic.area import write_area_files
    from core.data.synthetic.towns import make_scene

    scene = make_scene(size_hr=288, frames=3, seed=5)
    return write_area_files(scene, tmp_path_factory.mktemp("area_inputs"), vector_crs="EPSG:4326")


def _vector(path: Path, name: str):
    from qgis.core import QgsProject, QgsVectorLayer

    layer = QgsVectorLayer(str(path), name, "ogr")
    assert layer.isValid(), path
    QgsProject.instance().addMapLayer(layer)
    return layer


def test_finetunearea_algorithm_runs_and_reports(provider, clean_qgis, area_files, checkpoints, tmp_path):
    import processing

    from core.models.zoo import read_card

    out = tmp_path / "run"
    res = processing.run("s2sr:finetunearea", {
        "REVISITS": [str(p) for p in area_files.revisits], "BAND": "1",
        "BUILDINGS": str(area_files.buildings), "ROADS": str(area_files.roads),
        "CHECKPOINT": str(checkpoints["baseline"]), "SEG_BUILDINGS": str(checkpoints["buildings"]),
        "SEG_ROADS": str(checkpoints["roads"]), "EPOCHS": 1, "TILE": 32, "SAMPLES": 8, "DEVICE": 1,
        "OUT_DIR": str(out)})
    ckpt = Path(res["CHECKPOINT_OUT"])
    assert ckpt == out / "area_finetuned.safetensors" and ckpt.is_file()
    card = read_card(ckpt)
    assert card.recipe["kind"] == "area fine-tune"
    for key in ("BUILDINGS_DICE", "ROADS_DICE"):
        for when in ("BEFORE", "AFTER"):
            assert 0.0 <= res[f"{key}_{when}"] <= 1.0
    assert res["CONSISTENCY_CPSNR_AFTER"] > 10
    assert Path(res["REPORT"]).read_text().count("| Dice") == 2
    assert (out / "inputs" / "buildings.gpkg").is_file()  # the layers as they were used


def test_finetunearea_refuses_an_empty_roads_layer(provider, clean_qgis, area_files, checkpoints, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    from core.data.synthetic.area import write_area_files
    from core.data.synthetic.towns import make_scene

    empty = write_area_files(make_scene(size_hr=96, frames=1, seed=1), tmp_path / "e", empty_roads=True)
    roads = _vector(empty.roads, "roads")
    with pytest.raises(QgsProcessingException, match="'roads' has no features"):
        processing.run("s2sr:finetunearea", {
            "REVISITS": [str(p) for p in area_files.revisits], "BAND": "1",
            "BUILDINGS": str(area_files.buildings), "ROADS": roads,
            "CHECKPOINT": str(checkpoints["baseline"]), "SEG_BUILDINGS": str(checkpoints["buildings"]),
            "SEG_ROADS": str(checkpoints["roads"]), "EPOCHS": 1, "TILE": 32, "DEVICE": 1,
            "OUT_DIR": str(tmp_path / "run")})
    assert not (tmp_path / "run" / "area_finetuned.safetensors").exists()


def test_dialog_area_tab_runs_the_headless_command(clean_qgis, qh, area_files, checkpoints, tmp_path):
    mod = qh.ui("train_dialog")
    dialog = mod.TrainDialog(clean_qgis, parent=clean_qgis.mainWindow())
    try:
        panel = dialog.area_panel
        assert dialog.tabs.tabText(dialog.tabs.indexOf(panel)) == "Your area"
        assert panel.start() is False and "output folder" in dialog.status_label.text()
        layers = [qh.load_raster(p, f"revisit {i}") for i, p in enumerate(area_files.revisits)]
        panel.set_revisits(layers)
        panel.buildings.setLayer(_vector(area_files.buildings, "osm buildings"))
        panel.roads.setLayer(_vector(area_files.roads, "osm roads"))
        out = tmp_path / "myarea"
        panel.out_dir.setFilePath(str(out))
        panel.checkpoint.setFilePath(str(checkpoints["baseline"]))
        panel.seg_buildings.setFilePath(str(checkpoints["buildings"]))
        panel.seg_roads.setFilePath("")
        assert panel.start() is False and "roads network" in dialog.status_label.text()
        panel.seg_roads.setFilePath(str(checkpoints["roads"]))
        panel.epochs.setValue(1)
        panel.tile.setValue(32)
        panel.samples.setValue(8)
        dialog.device_combo.setCurrentIndex(dialog.device_combo.findData("cpu"))
        args, out_dir = panel.arguments()
        assert args[:4] == ["-m", "core.cli", "area", "run"] and out_dir == out
        assert args.count("--revisits") == 1 and all(str(p) in args for p in area_files.revisits)
        assert panel.start() is True
        assert qh.wait_until(lambda: not dialog.is_running(), timeout=240)
        text = dialog.log_view.toPlainText()
        assert dialog.history.checkpoint == str(out / "area_finetuned.safetensors"), text[-3000:]
        assert "held-out buildings_dice: before" in text and "report:" in text
        assert (out / "area_report.md").is_file()
    finally:
        dialog.shutdown()
        dialog.deleteLater()


def test_finetunearea_with_the_segmenter_stage(provider, clean_qgis, area_files, checkpoints, tmp_path):
    """FINETUNE_SEGMENTERS: both segmenters are fine-tuned on the area first and returned with their Dice."""
    import processing

    from core.models.zoo import read_card

    out = tmp_path / "seg"
    res = processing.run("s2sr:finetunearea", {
        "REVISITS": [str(p) for p in area_files.revisits], "BAND": "1",
        "BUILDINGS": str(area_files.buildings), "ROADS": str(area_files.roads),
        "CHECKPOINT": str(checkpoints["baseline"]), "SEG_BUILDINGS": str(checkpoints["buildings"]),
        "SEG_ROADS": str(checkpoints["roads"]), "EPOCHS": 1, "TILE": 32, "SAMPLES": 4, "BATCH_SIZE": 2,
        "DEVICE": 1, "FINETUNE_SEGMENTERS": True, "SEG_EPOCHS": 1, "OUT_DIR": str(out)})
    for target in ("buildings", "roads"):
        path = Path(res[f"SEG_{target.upper()}_OUT"])
        assert path == out / f"area_seg_{target}.safetensors"
        card = read_card(path)
        assert card.target == target and card.recipe["kind"] == "area fine-tune (segmenter)"
        for when in ("BEFORE", "AFTER"):
            assert 0.0 <= res[f"SEG_{target.upper()}_DICE_{when}"] <= 1.0
    sr = read_card(res["CHECKPOINT_OUT"])
    assert sr.recipe["area_finetune"]["seg_nets"]["roads"] == str(out / "area_seg_roads.safetensors")
    assert "Stage 1: segmenters" in Path(res["REPORT"]).read_text()


def test_dialog_area_tab_segmenter_checkbox_reaches_the_command(clean_qgis, qh, area_files, checkpoints, tmp_path):
    mod = qh.ui("train_dialog")
    dialog = mod.TrainDialog(clean_qgis, parent=clean_qgis.mainWindow())
    try:
        panel = dialog.area_panel
        panel.set_revisits([qh.load_raster(p, f"revisit {i}") for i, p in enumerate(area_files.revisits)])
        panel.buildings.setLayer(_vector(area_files.buildings, "osm buildings"))
        panel.roads.setLayer(_vector(area_files.roads, "osm roads"))
        panel.out_dir.setFilePath(str(tmp_path / "myarea"))
        panel.checkpoint.setFilePath(str(checkpoints["baseline"]))
        panel.seg_buildings.setFilePath(str(checkpoints["buildings"]))
        panel.seg_roads.setFilePath(str(checkpoints["roads"]))
        args, _out = panel.arguments()
        assert "--finetune-segmenters" not in args and not panel.seg_epochs.isEnabled()
        panel.finetune_segmenters.setChecked(True)
        assert panel.seg_epochs.isEnabled()
        panel.seg_epochs.setValue(2)
        args, _out = panel.arguments()
        assert "--finetune-segmenters" in args and args[args.index("--seg-epochs") + 1] == "2"
        assert panel.options().finetune_segmenters is True
    finally:
        dialog.shutdown()
        dialog.deleteLater()
