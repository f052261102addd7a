"""Trust maps in QGIS: the dock's "Also write a trust map" and the ``s2sr:trustmap`` Processing algorithm."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio


def test_dock_adds_a_hidden_red_trust_layer_above_the_output(dock, scene_files, checkpoints, qh, tmp_path):
    from qgis.core import QgsPalettedRasterRenderer, QgsProject, QgsSingleBandPseudoColorRenderer

    dock_mod = qh.ui("dock")
    out_dir = tmp_path / "out"
    layers = qh.dock_on_revisits(dock, scene_files["revisits"], checkpoints["baseline"], out_dir)
    dock.trust_check.setChecked(True)
    before = set(QgsProject.instance().mapLayers())
    dock.run_button.click()
    assert qh.wait_until(lambda: not dock.runner.busy(), 90)

    added = qh.new_layers(before)
    assert len(added) == 3, [lyr.name() for lyr in added] + [dock.log_view.toPlainText()]
    sr = dock.last_output
    trust = dock.last_trust
    classes = dock.last_trust_classes
    assert trust is not None and trust.isValid() and "trust map" in trust.name()
    assert classes is not None and classes.isValid() and "trust classes" in classes.name()
    files = qh.files_in(out_dir)
    stem = Path(sr.source()).stem
    assert sorted(files) == sorted([f"{stem}.tif", f"{stem}_trust.tif", f"{stem}_trust_class.tif"])
    # same group as the output, above it, hidden until the analyst switches them on
    root = QgsProject.instance().layerTreeRoot()
    t_node, s_node, c_node = root.findLayer(trust.id()), root.findLayer(sr.id()), root.findLayer(classes.id())
    assert t_node.parent() is s_node.parent() is c_node.parent() and t_node.parent().name() == layers[0].name()
    children = t_node.parent().children()
    assert children.index(c_node) < children.index(s_node) and children.index(t_node) < children.index(s_node)
    assert not t_node.itemVisibilityChecked() and not c_node.itemVisibilityChecked()
    assert s_node.itemVisibilityChecked()
    # on the SR grid, styled transparent -> red
    assert trust.rasterUnitsPerPixelX() == pytest.approx(sr.rasterUnitsPerPixelX())
    renderer = trust.renderer()
    assert isinstance(renderer, QgsSingleBandPseudoColorRenderer)
    items = renderer.shader().rasterShaderFunction().colorRampItemList()
    assert items[0].color.alpha() == 0 and items[-1].color.alpha() > 200
    assert items[-1].color.red() > 200 and items[-1].color.green() < 60
    with rasterio.open(trust.source()) as ds:
        assert ds.count == 6 and np.isfinite(ds.read(1)).all()
    # the classes: supported transparent, uncertain orange, likely invented red
    paletted = classes.renderer()
    assert isinstance(paletted, QgsPalettedRasterRenderer)
    colours = {c.value: c.color for c in paletted.classes()}
    assert colours[0].alpha() == 0
    assert colours[1].red() > 200 and 100 < colours[1].green() < 200
    assert colours[2].red() > 200 and colours[2].green() < 60 and colours[2].alpha() > 200
    assert qh.wait_until(lambda: "trust map" in dock.log_view.toPlainText(), 5)
    assert any("% likely invented" in m for m in _messages(dock))
    # remembered for the next session
    dock2 = dock_mod.SRDockWidget(dock.iface, parent=dock.iface.mainWindow())
    try:
        assert dock2.trust_check.isChecked()
    finally:
        dock2.shutdown()
        dock2.deleteLater()


def _messages(dock):
    bar = dock.iface.messageBar()
    return [m for level in range(4) for m in bar.get_messages(level)]


def test_class_raster_name_is_cores(qh):
    """The UI names the class raster without importing core's trust module (it needs torch): same rule."""
    from core.inference.trust import class_path_for

    tasks = qh.ui("tasks")
    assert tasks.class_path_for_trust("/x/out_trust.tif") == class_path_for("/x/out_trust.tif")


def test_dock_without_the_box_writes_no_trust_map(dock, scene_files, checkpoints, qh, tmp_path):
    qh.dock_on_revisits(dock, scene_files["revisits"], checkpoints["baseline"], tmp_path / "out")
    dock.trust_check.setChecked(False)
    dock.run_button.click()
    assert qh.wait_until(lambda: not dock.runner.busy(), 90)
    assert dock.last_output is not None and dock.last_trust is None
    assert len(qh.files_in(tmp_path / "out")) == 1


def test_processing_trustmap_flags_planted_buildings(provider, scene_files, checkpoints, qh, tmp_path):
    """The algorithm on an SR output made by the plugin (revisits from its metadata) and on a planted one."""
    import processing
    from qgis.core import QgsRasterLayer

    from core.inference.sr import super_resolve

    sr = super_resolve(scene_files["revisits"], tmp_path / "sr.tif", str(checkpoints["baseline"])).path
    res = processing.run("s2sr:trustmap", {"INPUT": str(sr), "OUTPUT": str(tmp_path / "sr_map.tif")})
    assert Path(res["OUTPUT"]) == tmp_path / "sr_map.tif"
    layer = QgsRasterLayer(res["OUTPUT"], "trust")
    assert layer.isValid() and layer.bandCount() == 6
    h, w = scene_files["size"]
    assert (layer.width(), layer.height()) == (3 * w, 3 * h)  # on the SR grid
    assert 0 < res["MEAN_DISAGREEMENT"] <= res["P95_DISAGREEMENT"] * 2

    # an "SR output" = the HR reference with two bright roofs pasted in that no revisit saw
    with rasterio.open(scene_files["reference"]) as ds:
        profile, hr = ds.profile, ds.read(1)
    planted = hr.copy()
    planted[15:30, 18:36] = 7000
    planted[54:72, 60:81] = 7000
    with rasterio.open(tmp_path / "planted.tif", "w", **profile) as ds:
        ds.write(planted, 1)
    res = processing.run("s2sr:trustmap", {"INPUT": str(tmp_path / "planted.tif"),
                                           "REVISITS": [str(p) for p in scene_files["revisits"]], "BAND": 1,
                                           "THRESHOLD": 0.05, "OUTPUT": str(tmp_path / "planted_map.tif")})
    with rasterio.open(res["OUTPUT"]) as ds:
        dis = ds.read(1)
    inside = np.zeros(dis.shape, bool)  # the planted roofs, on the SR grid the map is written on
    inside[15:30, 18:36] = True
    inside[54:72, 60:81] = True
    assert np.nanmean(dis[inside]) > 10 * np.nanmean(dis[~inside])
    assert res["FLAGGED_SHARE"] >= 0.5 * inside.mean()


def test_processing_trustmap_refuses_a_misaligned_raster(provider, scene_files, tmp_path):
    import processing
    from qgis.core import QgsProcessingException
    from rasterio.transform import Affine

    from core.io.geo import compose

    with rasterio.open(scene_files["reference"]) as ds:
        profile, hr = ds.profile, ds.read(1)
    profile["transform"] = compose(profile["transform"], Affine.translation(1.5, 0))
    with rasterio.open(tmp_path / "shifted.tif", "w", **profile) as ds:
        ds.write(hr, 1)
    with pytest.raises(QgsProcessingException, match="not aligned to the LR grid"):
        processing.run("s2sr:trustmap", {"INPUT": str(tmp_path / "shifted.tif"),
                                         "REVISITS": [str(p) for p in scene_files["revisits"]],
                                         "OUTPUT": str(tmp_path / "x.tif")})
    assert not (tmp_path / "x.tif").exists()
