"""Real Sentinel-2 products in the QGIS face: Processing's stack and export, the dock's product dialog, the
engine's input checks in the check lines, and the chain product -> 4-band SR -> true colour -> polygons.

The products are real ``.SAFE`` folders (and a zip) with JPEG 2000 bands and an SCL, written by
``tests.s2_fixtures``; the networks are tiny real checkpoints (``conftest``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
import rasterio

from tests.s2_fixtures import ORIGIN, make_safe, zip_safe


@pytest.fixture
def products(tmp_path) -> Dict[str, Path]:
    """Three L2A dates of one 60 x 60 px tile: clear, a quarter under cloud (as a zip), all cloud."""
    folder = tmp_path / "products"
    folder.mkdir()
    scl = np.full((30, 30), 4, np.uint8)
    scl[:15, :15] = 9  # cloud (high probability) over the top-left quarter
    return {
        "clear": make_safe(folder, date="2023-05-12"),
        "cloudy": zip_safe(make_safe(folder, date="2023-06-01", time="100031", scl=scl)),
        "hidden": make_safe(folder, date="2023-06-21", time="100559", scl=np.full((30, 30), 9, np.uint8)),
    }


class Feedback:
    """A Processing feedback that keeps what the algorithm logged."""

    def __new__(cls):
        from qgis.core import QgsProcessingFeedback

        class _Feedback(QgsProcessingFeedback):
            def __init__(self) -> None:
                super().__init__()
                self.lines: List[str] = []

            def pushInfo(self, info: str) -> None:  # noqa: N802 - QGIS API
                self.lines.append(info)
                super().pushInfo(info)

        return _Feedback()


def _messages(dock: Any) -> List[str]:
    bar = dock.iface.messageBar()
    return [m for level in range(4) for m in bar.get_messages(level)]


# --------------------------------------------------------------------------- Processing


def test_stack_algorithm_keeps_the_clear_dates_and_logs_why(provider, products, tmp_path):
    import processing
    from qgis.core import QgsRasterLayer

    out = tmp_path / "stack.tif"
    feedback = Feedback()
    res = processing.run("s2sr:stack", {"INPUTS": [str(products["clear"]), str(products["cloudy"]),
                                                   str(products["hidden"])], "OUTPUT": str(out)}, feedback=feedback)
    assert res["DATES"] == "2023-05-12, 2023-06-01" and res["DATES_KEPT"] == 2
    log = "\n".join(feedback.lines)
    assert "dropped 2023-06-21: only 0.0 % clear" in log  # the cloudy date and why
    assert "kept 2023-05-12 (100 % clear), 2023-06-01 (75 % clear)" in log
    assert "BOA_ADD_OFFSET -1000 DN" in log  # the offset rule applied
    with rasterio.open(out) as ds:
        assert ds.count == 8
        assert ds.descriptions[:2] == ("B02_2023-05-12", "B02_2023-06-01")
        cloudy_b08 = ds.read(8)
    assert (cloudy_b08[:30, :30] == 0).all() and (cloudy_b08[30:, 30:] > 0).all()  # SCL cloud -> nodata
    layer = QgsRasterLayer(str(out), "stack")  # as Processing loads it: the default style beside it applies
    assert layer.isValid() and layer.bandCount() == 8
    renderer = layer.renderer()  # true colour of the clearest date
    assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (5, 3, 1)
    assert "wrote stack.qml" in log

    # an extent in another CRS is converted into the products' UTM grid
    x0, y0 = ORIGIN
    part = tmp_path / "part.tif"
    processing.run("s2sr:stack", {"INPUTS": [str(products["clear"]), str(products["cloudy"])],
                                  "EXTENT": f"{x0},{x0 + 300},{y0 - 200},{y0} [EPSG:32634]", "FRAMES": 1,
                                  "OUTPUT": str(part)})
    with rasterio.open(part) as ds:
        assert (ds.width, ds.height, ds.count) == (30, 20, 4)
        assert ds.descriptions[0] == "B02_2023-05-12"


def test_export_algorithm_writes_four_named_bands_with_clouds_as_nodata(provider, products, tmp_path):
    import processing
    from qgis.core import QgsProcessingException, QgsRasterLayer

    out = tmp_path / "export.tif"
    feedback = Feedback()
    res = processing.run("s2sr:exportproduct", {"PRODUCT": str(products["cloudy"]), "OUTPUT": str(out)},
                         feedback=feedback)
    assert "BOA_ADD_OFFSET -1000 DN" in res["OFFSET_RULE"]
    log = "\n".join(feedback.lines)
    assert "SCL classes masked as nodata: 0 no data" in log and "75.0 % of the area is clear" in log
    plain = QgsRasterLayer(str(out), "export")
    assert (plain.renderer().redBand(), plain.renderer().greenBand(), plain.renderer().blueBand()) == (3, 2, 1)
    with rasterio.open(out) as ds:
        assert ds.descriptions == ("B02", "B03", "B04", "B08") and ds.count == 4
        assert ds.scales[0] == pytest.approx(1e-4) and ds.offsets[0] == pytest.approx(-0.1)
        data = ds.read()
    assert (data[:, :30, :30] == 0).all() and (data[:, 30:, 30:] > 0).all()

    # no class masked: the cloud stays; a folder works as well as the zip
    processing.run("s2sr:exportproduct", {"PRODUCT": str(products["clear"]), "SCL_NODATA": "",
                                          "OUTPUT": str(tmp_path / "all.tif")})
    with rasterio.open(tmp_path / "all.tif") as ds:
        assert (ds.read() > 0).all()
    with pytest.raises(QgsProcessingException, match="does not exist|not found|cannot"):
        processing.run("s2sr:exportproduct", {"PRODUCT": str(tmp_path / "nothing.zip"),
                                              "OUTPUT": str(tmp_path / "x.tif")})
    assert not (tmp_path / "x.tif").exists()


# --------------------------------------------------------------------------- the dock


def test_dock_builds_a_stack_from_products_and_super_resolves_it(dock, products, checkpoints, checkpoints4, qh,
                                                                 tmp_path):
    from qgis.core import QgsMultiBandColorRenderer, QgsProject

    dock_mod = qh.ui("dock")
    dialogs = qh.ui("dock.product_dialog")
    dock.select_checkpoint(str(checkpoints["baseline"]))  # a one-band RAMS taking T = 3 dates of B8
    out_dir = tmp_path / "out"
    dock.out_dir.setFilePath(str(out_dir))
    dialog = dock.product_dialog(dialogs.STACK)
    assert dialog.frames_spin.value() == 3  # the model's T
    assert dialog.scl_classes() == (0, 1, 3, 8, 9, 10, 11)  # core.options' default
    dialog.add_inputs([products["clear"], products["cloudy"], products["hidden"], products["clear"]])
    assert len(dialog.inputs()) == 3  # each once
    job = dialog.job()
    assert job.options.frames == 3 and job.options.extent is None
    assert Path(job.out_path).parent == out_dir
    before = set(QgsProject.instance().mapLayers())
    task = dock.run_product_job(job)
    assert task is not None and qh.wait_until(lambda: not dock.runner.busy(), 60)
    added = [lyr for lid, lyr in QgsProject.instance().mapLayers().items() if lid not in before]
    assert len(added) == 1, dock.log_view.toPlainText()
    stack = added[0]
    assert stack.bandCount() == 8 and "2 dates" in stack.name()
    renderer = stack.renderer()  # true colour of the clearest date: B04, B03, B02 of 2023-05-12
    assert isinstance(renderer, QgsMultiBandColorRenderer)
    assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (5, 3, 1)
    log = dock.log_view.toPlainText()
    assert "dropped 2023-06-21" in log and "BOA_ADD_OFFSET" in log
    # chosen as the input: one raster whose bands are dates, read as the dates of the model's band
    assert dock.mode_combo.currentIndex() == dock_mod.DATES and dock.layer_combo.currentLayer() is stack
    spec = dock.input_spec()
    assert spec.band == "B08"
    text = dock.check_label.text()
    assert "reads the dates of B08" in text and "gets 2" in text and "#b42318" not in text
    assert dock.run_button.isEnabled()
    dock.run_button.click()
    assert qh.wait_until(lambda: not dock.runner.busy(), 60)
    out = dock.last_output
    assert out is not None and out.bandCount() == 1, dock.log_view.toPlainText()
    with rasterio.open(out.source()) as ds:
        assert ds.width == 180 and "2023-06-01" in ds.tags()["SR_FRAMES_USED"]

    # the same stack, all four bands at once with a 4-band RAMS: one date's bands are found by name in a
    # band-major stack (B02 of every date, then B03...), so the band check passes and the run goes
    assert not dock.sr.more["all_bands"].isChecked()  # 'All 10 m bands' follows the network: one band
    dock.select_checkpoint(str(checkpoints4["rams"]))
    assert dock.sr.more["all_bands"].isChecked()  # ... and four bands
    assert "#b42318" not in dock.check_label.text(), dock.check_label.text()
    assert "matches the model (B02, B03, B04, B08)" in dock.check_label.text()
    dock.run_button.click()
    assert qh.wait_until(lambda: not dock.runner.busy(), 90)
    four = dock.last_output
    assert four is not None and four is not out and four.bandCount() == 4, dock.log_view.toPlainText()
    assert (four.renderer().redBand(), four.renderer().greenBand(), four.renderer().blueBand()) == (3, 2, 1)


def test_dock_opens_a_product_super_resolves_all_bands_and_segments_them(dock, products, checkpoints4, qh,
                                                                         tmp_path):
    from qgis.core import (
        QgsCoordinateReferenceSystem,
        QgsMultiBandColorRenderer,
        QgsProject,
        QgsRectangle,
        QgsRuleBasedRenderer,
    )

    dock_mod = qh.ui("dock")
    dialogs = qh.ui("dock.product_dialog")
    styles = qh.ui("styles")
    out_dir = tmp_path / "out"
    dock.out_dir.setFilePath(str(out_dir))
    canvas = dock.iface.mapCanvas()
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:32634"))
    x0, y0 = ORIGIN
    canvas.setExtent(QgsRectangle(x0 + 150, y0 - 450, x0 + 450, y0 - 150))
    dialog = dock.product_dialog(dialogs.EXPORT)
    dialog.add_inputs([products["clear"]])
    dialog.add_inputs([products["cloudy"]])  # one product: the last one chosen
    assert dialog.inputs() == [str(products["cloudy"])]
    dialog.area_combo.setCurrentIndex(dialogs.MAP_EXTENT)
    job = dialog.job()
    shown = canvas.extent()
    assert job.options.extent == pytest.approx((shown.xMinimum(), shown.yMinimum(), shown.xMaximum(), shown.yMaximum()))
    dock.run_product_job(job)
    assert qh.wait_until(lambda: not dock.runner.busy(), 60)
    product = dock.layer_combo.currentLayer()
    assert product is not None and product.bandCount() == 4, dock.log_view.toPlainText()
    assert dock.mode_combo.currentIndex() == dock_mod.SINGLE
    assert isinstance(product.renderer(), QgsMultiBandColorRenderer) and product.renderer().redBand() == 3
    assert product.width() * product.height() < 60 * 60  # the map view's part of the tile (its aspect decides)
    assert product.extent().contains(QgsRectangle(x0 + 160, y0 - 440, x0 + 440, y0 - 160))
    assert "SCL classes masked" in dock.log_view.toPlainText()

    # all four bands in one pass with a 4-band RAMS
    dock.select_checkpoint(str(checkpoints4["rams"]))
    dock.sr.more["all_bands"].setChecked(True)
    dock.trust_check.setChecked(True)
    assert "#b42318" not in dock.check_label.text() and dock.run_button.isEnabled()
    dock.run_button.click()
    assert qh.wait_until(lambda: not dock.runner.busy(), 120)
    sr = dock.last_output
    assert sr is not None and sr.bandCount() == 4, dock.log_view.toPlainText()
    with rasterio.open(dock.last_trust.source()) as ds:  # a 4-band output is judged on its NIR band
        assert ds.tags()["TRUST_BAND"] == "B08"
    assert dock.last_trust_classes is not None and dock.last_trust_classes.isValid()
    renderer = sr.renderer()
    assert isinstance(renderer, QgsMultiBandColorRenderer)
    assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (3, 2, 1)
    assert set(sr.styleManager().styles()) == {styles.TRUE_COLOUR_STYLE, styles.FALSE_COLOUR_STYLE}
    assert Path(sr.source()).with_suffix(".qml").is_file()  # the engine's style for drag-and-drop

    # segment the 4-band output: the networks read their bands by name, no band to pick
    for key in ("buildings", "roads"):
        dock.add_checkpoint(str(checkpoints4[key]))
    assert dock.seg_layer_combo.currentLayer() is sr
    dock.seg.update_check()
    assert not dock.seg_band_combo.isEnabled()
    assert "reads B02, B03, B04, B08 by name" in dock.seg_check_label.text()
    dock.vectors_check.setChecked(True)
    before = set(QgsProject.instance().mapLayers())
    dock.segment_button.click()
    assert qh.wait_until(lambda: not dock.runner.busy(), 90)
    added = [lyr for lid, lyr in QgsProject.instance().mapLayers().items() if lid not in before]
    polygons = [lyr for lyr in added if lyr.name().endswith("polygons")]
    assert len(polygons) == 2, [lyr.name() for lyr in added] + [dock.log_view.toPlainText()]
    for layer in polygons:
        assert layer.fields().indexOf("supported") >= 0
        assert isinstance(layer.renderer(), QgsRuleBasedRenderer)
        assert '"supported" = 1' in layer.renderer().rootRule().children()[0].filterExpression()


def test_check_line_refuses_bands_given_as_revisits(dock, products, checkpoints, qh):
    dock_mod = qh.ui("dock")
    bands = {p.name.split("_")[2]: p for p in sorted(products["clear"].rglob("*_10m.jp2"))}
    layers = [qh.load_raster(bands[b], f"{b} of 2023-05-12") for b in ("B04", "B08")]
    dock.select_checkpoint(str(checkpoints["baseline"]))
    dock.mode_combo.setCurrentIndex(dock_mod.REVISITS)
    dock.set_revisits(layers)
    text = dock.check_label.text()
    assert "different bands (B04, B08)" in text and "color:#b42318" in text
    assert not dock.run_button.isEnabled()
    dock.sr.advanced["force"].setChecked(True)  # "Run despite refused checks"
    assert dock.run_button.isEnabled() and "overridden" in dock.check_label.text()
    dock.sr.advanced["force"].setChecked(False)
    # the right band of one date is not refused (a warning at most)
    dock.mode_combo.setCurrentIndex(dock_mod.SINGLE)
    dock.layer_combo.setLayer(layers[1])
    assert "#b42318" not in dock.check_label.text() and dock.run_button.isEnabled()


def test_segment_check_line_warns_about_a_10m_raster(dock, scene_files, checkpoints, qh):
    for key in ("buildings", "roads"):
        dock.add_checkpoint(str(checkpoints[key]))
    layer = qh.load_raster(scene_files["revisits"][0], "S-2 B8 at 10 m")
    dock.seg_layer_combo.setLayer(layer)
    text = dock.seg_check_label.text()
    assert "10.0 m pixels" in text and "color:#b54708" in text and "super-resolve it first" in text
    assert dock.seg_band_combo.isEnabled()  # one band, unnamed: the analyst picks it
    hr = qh.load_raster(scene_files["reference"], "HR")
    dock.seg_layer_combo.setLayer(hr)
    assert "#b54708" not in dock.seg_check_label.text()


def test_a_job_cancelled_after_it_finished_leaves_none_of_the_files_its_result_lists(qh, tmp_path):
    """The UI predicts no side-car names: what a finished job wrote comes from its result (``written``)."""
    from types import SimpleNamespace

    tasks = qh.ui("tasks")
    written = [tmp_path / "sr.tif", tmp_path / "sr.qml", tmp_path / "sr_trust.tif", tmp_path / "sr_trust_class.tif"]
    kept = tmp_path / "earlier.tif"
    kept.write_text("an earlier analyst's file")

    def job(progress, cancel):
        for p in written:
            p.write_text("x")
        cancel.cancel()  # the analyst pressed Cancel just as the job ended
        return SimpleNamespace(written=written)

    task = tasks.CoreTask("test", job)
    assert task.run() is True and task.outcome == tasks.CANCELLED
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier.tif"]


# --------------------------------------------------------------------------- comparing 4-band outputs


def _four_bands(path: Path, data: np.ndarray, names=("B02", "B03", "B04", "B08")) -> Path:
    from rasterio.transform import from_origin

    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype="uint16", crs="EPSG:32633", transform=from_origin(500000, 6000000, 10 / 3, 10 / 3),
                       nodata=0) as ds:
        ds.write(data)
        ds.descriptions = tuple(names)
    return path


def test_compare_scores_four_band_outputs_on_the_bands_the_reference_shares(qh, tmp_path):
    from core import api

    rng = np.random.default_rng(0)
    ref = np.stack([(qh.smooth_image(90, 90, s) * 1e4) for s in range(4)]).astype("uint16")
    reference = _four_bands(tmp_path / "hr.tif", ref)
    noisy = {"Baseline": 300, "Task-driven": 60}
    outputs = {k: str(_four_bands(tmp_path / f"{k}.tif", np.clip(ref + rng.normal(0, s, ref.shape), 1, 60000)
                                  .astype("uint16"))) for k, s in noisy.items()}
    res = api.compare_outputs(outputs, str(reference))
    base, task = res.metrics["Baseline"], res.metrics["Task-driven"]
    assert task["cpsnr"] > base["cpsnr"] + 5
    assert sorted(k for k in base if k.startswith("cpsnr_")) == ["cpsnr_B02", "cpsnr_B03", "cpsnr_B04", "cpsnr_B08"]
    assert base["cpsnr"] == pytest.approx(np.mean([base[f"cpsnr_{b}"] for b in ("B02", "B03", "B04", "B08")]))
    assert res.metric_bands["cpsnr"].startswith("mean of B02, B03, B04, B08")
    table = qh.ui("dock.metric_table").MetricTable()
    table.fill(res)
    assert "mean of B02, B03, B04, B08" in table.titles()["cPSNR (dB)"]
    assert table.values()["cPSNR (dB)"]["Task-driven"] == f"{task['cpsnr']:.2f}"
    assert "B08:" in table.item(1, 0).toolTip()  # the per-band values behind the mean
    assert table.values()["Trust: % supported"]["Baseline"] == "n/a"  # no revisits recorded: no trust rows

    # a one-band NIR reference: scored on B08 only, and said so
    nir = tmp_path / "hr_b08.tif"
    _four_bands(nir, ref[3:], names=("B08",))
    res = api.compare_outputs(outputs, str(nir))
    assert res.metric_bands["cpsnr"].startswith("on B08")
    assert "cpsnr_B08" not in res.metrics["Baseline"]
