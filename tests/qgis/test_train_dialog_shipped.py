"""The training dialog with the shipped 4-band networks: their own recipes, and the area tab's default start.

Why: the shipped networks take B02, B03, B04, B08 jointly and were made by
``resources/configs/starter/*.yaml``; the dialog used to offer only the
study's one-band recipes, and its area tab could not fine-tune them (issue 21).
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "resources" / "models"
BANDS = ["B02", "B03", "B04", "B08"]


@pytest.fixture
def dialog(train_dialog):
    return train_dialog


def test_every_shipped_checkpoint_maps_to_the_recipe_that_made_it(tmp_path):
    from core import api

    for stem, recipe in (("rams_taskdriven", "rams_taskdriven"), ("hat_baseline", "hat_baseline"),
                         ("unetpp_buildings", "seg_buildings"), ("unetpp_roads", "seg_roads")):
        assert api.shipped_recipe(MODELS / f"{stem}.safetensors") == ROOT / "resources/configs/starter" / f"{recipe}.yaml"
    copy = tmp_path / "rams_taskdriven.safetensors"  # same file name elsewhere: matched by its card, still found
    copy.write_bytes((MODELS / "rams_taskdriven.safetensors").read_bytes())
    assert api.shipped_recipe(copy) is not None
    assert api.shipped_recipe(tmp_path / "missing.safetensors") is None


def test_dialog_starts_from_a_shipped_networks_own_recipe(dialog, tmp_path):
    rams = MODELS / "rams_taskdriven.safetensors"
    dialog.shipped_start.start_from(str(rams))
    assert dialog.preset().path == ROOT / "resources/configs/starter/rams_taskdriven.yaml"
    assert dialog.init_from.filePath() == str(rams)
    assert Path(dialog.seg_buildings.filePath()).name == "unetpp_buildings.safetensors"
    assert "B02, B03, B04, B08 jointly" in dialog.preset_note.text()
    dialog.out_dir.setFilePath(str(tmp_path / "run"))
    data = dialog.form_config()
    assert data["data"]["bands"] == BANDS and data["data"]["frames"] == 9
    assert data["model"]["init_from"] == str(rams) and data["model"]["hparams"]["filters"] == 16
    assert [t["name"] for t in data["loss"]["terms"]][:3] == ["cl1", "dice_buildings", "dice_roads"]
    seg = MODELS / "unetpp_roads.safetensors"
    dialog.shipped_start.start_from(str(seg))
    assert dialog.preset().path.name == "seg_roads.yaml" and dialog.form_config()["target"] == "roads"


def test_area_tab_starts_from_the_shipped_four_band_rams(dialog, qh, tmp_path):
    from qgis.core import QgsProject, QgsVectorLayer

    from core.data.synthetic.area import write_area_files
    from core.data.synthetic.world_v2 import make_world_scene
    from tests.test_area_four_bands import TILE, strip_with_objects

    panel = dialog.area_panel
    panel.checkpoint.setFilePath(str(MODELS / "rams_taskdriven.safetensors"))
    panel.seg_buildings.setFilePath(str(MODELS / "unetpp_buildings.safetensors"))
    panel.seg_roads.setFilePath(str(MODELS / "unetpp_roads.safetensors"))
    assert panel.network_bands() == BANDS and not panel.band.isEnabled()

    files = write_area_files(strip_with_objects(make_world_scene(size_hr=288, frames=3, seed=3, object_free=False)),
                             tmp_path / "inputs", vector_crs="EPSG:4326")
    layers = [qh.load_raster(p, f"revisit {i}") for i, p in enumerate(files.revisits)]
    panel.set_revisits(layers)
    for widget, path, name in ((panel.buildings, files.buildings, "osm buildings"), (panel.roads, files.roads,
                                                                                   "osm roads")):
        layer = QgsVectorLayer(str(path), name, "ogr")
        QgsProject.instance().addMapLayer(layer)
        widget.setLayer(layer)
    out = tmp_path / "myarea"
    panel.out_dir.setFilePath(str(out))
    panel.epochs.setValue(1)
    panel.samples.setValue(8)  # the recipe batch is 8
    panel.tile.setValue(TILE)
    dialog.device_combo.setCurrentIndex(dialog.device_combo.findData("cpu"))
    args, _ = panel.arguments()
    assert "--band" not in args and args[args.index("--checkpoint") + 1].endswith("rams_taskdriven.safetensors")
    assert panel.start() is True
    assert qh.wait_until(lambda: not dialog.is_running(), timeout=240)
    text = dialog.log_view.toPlainText()
    assert dialog.history.checkpoint == str(out / "area_finetuned.safetensors"), text[-3000:]
    for key in ("buildings_dice", "roads_dice", "consistency_cpsnr_B08"):
        assert f"held-out {key}: before" in text, text[-2000:]
