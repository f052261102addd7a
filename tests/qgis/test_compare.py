"""Baseline vs task-driven from the dock's Compare tab: layers, one stretch, synced views, metric table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from core.inference.trust import read_summary as api_trust_summary


def _roads_gpkg(path, scene_files):
    """An OSM-like roads layer (one residential street) in UTM 33N."""
    from osgeo import ogr, osr

    ogr.UseExceptions()
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = ds.CreateLayer("roads", srs, ogr.wkbLineString)
    layer.CreateField(ogr.FieldDefn("highway", ogr.OFTString))
    feat = ogr.Feature(layer.GetLayerDefn())
    feat.SetField("highway", "residential")
    feat.SetGeometry(ogr.CreateGeometryFromWkt("LINESTRING (500000 5999850, 500360 5999850)"))
    layer.CreateFeature(feat)
    ds = None
    return path


def _dn_reflectance(path):
    with rasterio.open(path) as ds:
        return ds.read(1).astype("float32") * 1e-4


def test_compare_runs_both_checkpoints_and_fills_the_table(dock, scene_files, checkpoints, qh, tmp_path):
    from qgis.core import QgsProject, QgsVectorLayer

    from core.evaluation.metrics import SegCounts, cpsnr_cssim
    from core.inference.segment import segment

    dock_mod = qh.ui("dock")
    compare_mod = qh.ui("dock.compare_tab")
    layers = [qh.load_raster(p, f"revisit {i}") for i, p in enumerate(scene_files["revisits"])]
    hr = qh.load_raster(scene_files["reference"], "HR reference")
    bmask = qh.load_raster(scene_files["masks"]["buildings"], "OSM buildings raster")
    roads = QgsVectorLayer(f"{_roads_gpkg(tmp_path / 'osm.gpkg', scene_files)}|layername=roads", "OSM roads", "ogr")
    assert roads.isValid()
    QgsProject.instance().addMapLayer(roads)
    dock.mode_combo.setCurrentIndex(dock_mod.REVISITS)
    dock.set_revisits(layers)
    for key in ("baseline", "taskdriven", "buildings", "roads"):
        dock.add_checkpoint(str(checkpoints[key]))
    dock.out_dir.setFilePath(str(tmp_path / "out"))
    panel = dock.compare
    # the pair is guessed from the recipes: the task-driven one has Dice losses
    assert panel.baseline_combo.currentData().endswith("tiny_baseline.safetensors")
    assert panel.taskdriven_combo.currentData().endswith("tiny_taskdriven.safetensors")
    panel.reference_combo.setLayer(hr)
    panel.buildings_combo.setLayer(bmask)
    panel.roads_combo.setLayer(roads)
    panel.more["trust"].setChecked(True)  # the trust rows too (off by default: the slow part)
    done = []
    panel.compared.connect(done.append)
    panel.compare_button.click()
    assert qh.wait_until(lambda: not dock.runner.busy(), 120)
    assert done, dock.log_view.toPlainText()
    result = done[0]

    # one group, both outputs, one stretch (the input's)
    group = QgsProject.instance().layerTreeRoot().findGroup("Compare: revisit 0")
    assert group is not None
    all_layers = [n.layer() for n in group.findLayers()]
    out_layers = [lyr for lyr in all_layers if not lyr.name().startswith("Trust")]
    assert len(out_layers) == 2
    # the trust maps and classes made for the table are kept beside the outputs as hidden layers
    trust_nodes = [n for n in group.findLayers() if n.layer().name().startswith("Trust map")]
    assert len(trust_nodes) == 2 and not any(n.isVisible() for n in trust_nodes)
    class_nodes = [n for n in group.findLayers() if n.layer().name().startswith("Trust classes")]
    assert len(class_nodes) == 2 and not any(n.isVisible() for n in class_nodes)
    assert sorted(result.trust_paths) == [compare_mod.BASELINE, compare_mod.TASK_DRIVEN]
    src_ce = layers[0].renderer().contrastEnhancement()
    for lyr in out_layers:
        ce = lyr.renderer().contrastEnhancement()
        assert (ce.minimumValue(), ce.maximumValue()) == pytest.approx((src_ce.minimumValue(), src_ce.maximumValue()))
        assert lyr.rasterUnitsPerPixelX() == pytest.approx(hr.rasterUnitsPerPixelX())

    # the synced second view shows the task-driven output and follows the main map
    view = panel.view
    assert view is not None
    task_layer = next(lyr for lyr in out_layers if lyr.name().startswith("Task-driven"))
    assert task_layer.id() in [lyr.id() for lyr in view.canvas.layers()]
    base_layer = next(lyr for lyr in out_layers if lyr.name().startswith("Baseline"))
    assert base_layer.id() not in [lyr.id() for lyr in view.canvas.layers()]
    main = dock.iface.mapCanvas()
    target = hr.extent().buffered(-60)
    main.setExtent(target)
    assert view.canvas.extent().center().x() == pytest.approx(main.extent().center().x(), abs=1e-6)
    assert view.canvas.extent().center().y() == pytest.approx(main.extent().center().y(), abs=1e-6)

    # the table holds the metrics of the files, computed independently here
    table = panel.table_values()
    hr_refl = _dn_reflectance(scene_files["reference"])
    bmask_arr = rasterio.open(scene_files["masks"]["buildings"]).read(1) > 0
    for column, key in ((compare_mod.BASELINE, "Baseline"), (compare_mod.TASK_DRIVEN, "Task-driven")):
        path = result.outputs[column]
        scores = cpsnr_cssim(_dn_reflectance(path), hr_refl, np.ones(hr_refl.shape, bool), border=3)
        assert table["cPSNR (dB)"][key] == f"{scores.cpsnr:.2f}"
        assert table["cSSIM"][key] == f"{scores.cssim:.3f}"
        seg = segment(path, [str(checkpoints["buildings"])], out_prob=str(tmp_path / f"{key}_prob.tif"))
        prob = rasterio.open(seg.prob_path).read(1)
        counts = SegCounts()
        counts.update(prob, bmask_arr, np.isfinite(prob))
        assert table["Building Dice"][key] == f"{counts.dice:.3f}"
        assert table["Road Dice"][key] not in ("", "n/a")
        trust = api_trust_summary(result.trust_paths[column])
        assert trust.sr_path == Path(path)
        assert table["Trust: mean disagreement"][key] == f"{trust.mean_disagreement:.4f}"
        assert table["Trust: % pixels flagged"][key] == f"{100 * trust.flagged_share:.1f} %"
        for name, share in trust.class_shares.items():  # the share of each trust class
            title = {"supported": "Trust: % supported", "uncertain": "Trust: % uncertain",
                     "invented": "Trust: % likely invented"}[name]
            assert table[title][key] == f"{100 * share:.1f} %"
    diff = result.metrics[compare_mod.TASK_DRIVEN]["cpsnr"] - result.metrics[compare_mod.BASELINE]["cpsnr"]
    assert table["cPSNR (dB)"]["Difference"].lstrip("+") == f"{diff:.2f}"


def test_compare_two_existing_layers_without_reference(dock, scene_files, checkpoints, qh, tmp_path):
    from qgis.core import QgsProject

    out = tmp_path / "sr"
    out.mkdir()
    from core.inference.sr import super_resolve

    a = super_resolve(scene_files["revisits"], out / "a.tif", str(checkpoints["baseline"])).path
    b = super_resolve(scene_files["revisits"], out / "b.tif", str(checkpoints["taskdriven"])).path
    la, lb = qh.load_raster(a, "run A"), qh.load_raster(b, "run B")
    panel = dock.compare
    panel.layer_mode.setChecked(True)
    panel.layer_a.setLayer(la)
    panel.layer_b.setLayer(lb)
    panel.more["trust"].setChecked(True)
    panel.compare_button.click()
    assert qh.wait_until(lambda: not dock.runner.busy(), 60)
    table = panel.table_values()
    assert table["cPSNR (dB)"]["Baseline"] == "n/a"
    # the trust rows need no reference: the revisits are read from the outputs' metadata
    from core.inference.trust import trust_map

    expected = trust_map(a, scene_files["revisits"], out_path=tmp_path / "a_check.tif")
    assert table["Trust: mean disagreement"]["Baseline"] == f"{expected.mean_disagreement:.4f}"
    assert table["Trust: mean disagreement"]["Task-driven"] not in ("", "n/a")
    assert sorted(p.name for p in out.iterdir()) == ["a.tif", "b.tif"]  # nothing written beside existing layers
    assert "no reference HR layer given" in panel.summary.text()
    group = QgsProject.instance().layerTreeRoot().findGroup("Compare: run A vs run B")
    assert group is not None and len(group.findLayers()) == 2
    # the user's own layers are left as they were
    assert QgsProject.instance().layerTreeRoot().findLayer(la.id()).parent() is QgsProject.instance().layerTreeRoot()
    panel.layer_b.setLayer(la)
    assert panel.start() is None  # same layer twice: refused with a message
    bar = dock.iface.messageBar()
    assert any("same layer" in m for level in range(4) for m in bar.get_messages(level))


def test_compare_without_trust_maps_is_quick_fills_the_summary_and_keeps_the_map(dock, scene_files, checkpoints, qh,
                                                                                tmp_path):
    """Issue 21, defect 2 (and 1 offscreen): no trust map unless asked; the summary says what changed and why
    the trust rows are empty; the main map keeps its place and scale."""
    from qgis.core import QgsProject, QgsRectangle

    dock_mod = qh.ui("dock")
    compare_mod = qh.ui("dock.compare_tab")
    layers = [qh.load_raster(p, f"revisit {i}") for i, p in enumerate(scene_files["revisits"])]
    hr = qh.load_raster(scene_files["reference"], "HR reference")
    dock.mode_combo.setCurrentIndex(dock_mod.REVISITS)
    dock.set_revisits(layers)
    for key in ("baseline", "taskdriven"):
        dock.add_checkpoint(str(checkpoints[key]))
    dock.out_dir.setFilePath(str(tmp_path / "out"))
    main = dock.iface.mapCanvas()
    main.setExtent(QgsRectangle(hr.extent().center().x() - 60, hr.extent().center().y() - 60,
                                hr.extent().center().x() + 60, hr.extent().center().y() + 60))
    scale = main.scale()
    panel = dock.compare
    assert panel.more["trust"].isChecked() is False  # off by default
    assert panel.options().trust is False and panel.options().device == dock.device()
    panel.reference_combo.setLayer(hr)
    done = []
    panel.compared.connect(done.append)
    panel.compare_button.click()
    assert qh.wait_until(lambda: not dock.runner.busy(), 120)
    assert done, dock.log_view.toPlainText()
    result = done[0]
    assert result.trust_paths == {}
    assert not any(p.name.endswith("_trust.tif") for p in (tmp_path / "out").rglob("*"))
    table = panel.table_values()
    assert table["Trust: mean disagreement"]["Baseline"] == "n/a"
    assert table["cPSNR (dB)"]["Baseline"] not in ("", "n/a")
    summary = panel.summary.text()
    assert summary.startswith("Task-driven vs baseline: cPSNR "), summary
    assert "trust maps not computed" in summary
    group = QgsProject.instance().layerTreeRoot().findGroup("Compare: revisit 0")
    assert [n.layer().name() for n in group.findLayers() if n.layer().name().startswith("Trust")] == []
    assert main.scale() == pytest.approx(scale, rel=1e-6), f"the main map went to 1:{main.scale():,.0f}"
    # the bar names each stage, and no trust map is among them (the job run again, its progress recorded)
    from core.jobs import CancelToken

    job, _label, _layer, _band = panel.build_job()
    stages = []
    job(lambda _f, text: stages.append(text), CancelToken())
    said = " | ".join(dict.fromkeys(stages))
    for stage in ("Baseline: super-resolving", "Task-driven: super-resolving", "scoring against the reference"):
        assert stage in said, said
    assert "trust map" not in said, said
    assert compare_mod.BASELINE in result.metrics
