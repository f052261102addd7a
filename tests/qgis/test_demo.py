"""``make demo`` end to end on a small scene: every file it names exists, and the project opens in QGIS.

Uses the shipped starter checkpoints (what a user runs) on a 96 px scene so the
test takes seconds; ``make demo`` runs the same code on a 384 px scene.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import rasterio

from core.api import shipped_models_dir
from core.evaluation.showcase import BICUBIC, BICUBIC_TITLE, SR_TITLES, DemoNotReady, missing_models, run_demo

ROOT = Path(__file__).resolve().parents[2]


def _demo_script():
    spec = importlib.util.spec_from_file_location("demo_script", ROOT / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    models = shipped_models_dir()
    assert not missing_models(models), "the starter checkpoints are missing: run `make weights`"
    return run_demo(tmp_path_factory.mktemp("demo"), models, seed=3, size_hr=96, say=lambda _msg: None)


def test_demo_writes_georeferenced_outputs_and_metrics(demo):
    assert set(demo.outputs) == {BICUBIC, *SR_TITLES}
    with rasterio.open(demo.scene_dir / "lr" / "t00.tif") as lr:
        lr_bounds, lr_res = lr.bounds, lr.res
    for role, path in demo.outputs.items():
        with rasterio.open(path) as sr:
            assert sr.bounds == pytest.approx(lr_bounds), role
            assert sr.res == pytest.approx((lr_res[0] / 3, lr_res[1] / 3)), role
        for target in ("buildings", "roads"):
            assert demo.masks[role][target].is_file()
    rows = json.loads((demo.out_dir / "metrics.json").read_text())
    assert [r["id"] for r in rows] == [BICUBIC, *SR_TITLES, "hr"]
    for row in rows[:-1]:
        assert math.isfinite(row["cPSNR"]) and row["cPSNR"] > 15
    for row in rows:  # phantom objects: shares of the object-free land of this scene
        assert 0.0 <= row["fp_buildings"] <= 1.0 and 0.0 <= row["fp_roads"] <= 1.0
    assert rows[0]["grid_score"] < 3.0  # bicubic upsampling stamps no 3-px grid
    assert demo.figure.stat().st_size > 10_000
    table = demo.table_md.read_text()
    assert "Building Dice" in table and "Phantom roads" in table and "grid score" in table


def test_demo_project_opens_with_every_layer(demo, tmp_path):
    from qgis.core import QgsProject, QgsRasterLayer

    project_path = _demo_script().write_project(demo, tmp_path / "demo.qgz")
    project = QgsProject()
    assert project.read(str(project_path))
    layers = list(project.mapLayers().values())
    assert all(isinstance(layer, QgsRasterLayer) and layer.isValid() for layer in layers)
    # bicubic + 4 SR outputs, each image + 2 masks; HR + 2 true masks; every LR revisit
    n_lr = len(list((demo.scene_dir / "lr").glob("*.tif")))
    assert len(layers) == 5 * 3 + 3 + n_lr
    groups = [g.name() for g in project.layerTreeRoot().children()]
    assert groups[:5] == [BICUBIC_TITLE, *SR_TITLES.values()]
    hr = next(layer for layer in layers if layer.name() == "HR image")
    assert hr.renderer().type() == "multibandcolor"  # opens in true colour


def test_demo_without_weights_says_how_to_get_them(tmp_path):
    with pytest.raises(DemoNotReady, match="make weights"):
        run_demo(tmp_path / "out", tmp_path / "no_models", size_hr=96, say=lambda _msg: None)
    assert not (tmp_path / "out").exists()
