"""The Processing algorithms through processing.run, and one through the real qgis_process command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from core.data.synthetic.towns import make_dataset

    root = tmp_path_factory.mktemp("synthetic")
    make_dataset(root, n_scenes=3, size_hr=72, seed=0, frames=3)
    return root


def test_provider_lists_nine_algorithms(provider):
    ids = sorted(a.id() for a in provider.algorithms())
    assert ids == ["s2sr:compare", "s2sr:evaluate", "s2sr:exportproduct", "s2sr:finetunearea", "s2sr:segment",
                   "s2sr:stack", "s2sr:superresolve", "s2sr:train", "s2sr:trustmap"]


def test_compare_two_outputs_with_and_without_trust_maps(provider, scene_files, checkpoints, tmp_path):
    """Issue 21, defect 2: the same ``CompareOptions`` as the dock and the CLI; no trust map unless asked."""
    import math

    import processing

    from core.inference.sr import super_resolve

    a = super_resolve(scene_files["revisits"], tmp_path / "a.tif", str(checkpoints["baseline"])).path
    b = super_resolve(scene_files["revisits"], tmp_path / "b.tif", str(checkpoints["taskdriven"])).path
    params = {"BASELINE": str(a), "TASKDRIVEN": str(b), "REFERENCE": str(scene_files["reference"])}
    res = processing.run("s2sr:compare", params)
    assert 10 < res["CPSNR_BASELINE"] < 80 and 10 < res["CPSNR_TASKDRIVEN"] < 80
    assert math.isnan(res["TRUST_MEAN_BASELINE"]) and math.isnan(res["BUILDINGS_DICE_BASELINE"])
    assert not list(tmp_path.glob("*trust*"))  # no trust map made (or left behind)
    res = processing.run("s2sr:compare", {**params, "TRUST": True})
    assert 0 <= res["TRUST_MEAN_BASELINE"] < 1 and 0 <= res["TRUST_MEAN_TASKDRIVEN"] < 1


def test_superresolve_with_revisits(provider, scene_files, checkpoints, tmp_path):
    import processing

    out = tmp_path / "sr.tif"
    first, *others = [str(p) for p in scene_files["revisits"]]
    res = processing.run("s2sr:superresolve", {"INPUT": first, "REVISITS": others, "BAND": 1,
                                               "CHECKPOINT": str(checkpoints["baseline"]), "OUTPUT": str(out)})
    assert Path(res["OUTPUT"]) == out and out.is_file()
    assert res["FRAMES_USED"].count("revisit_") == 3
    h, w = scene_files["size"]
    with rasterio.open(out) as ds, rasterio.open(first) as src:
        assert (ds.height, ds.width) == (3 * h, 3 * w)
        assert ds.bounds == pytest.approx(src.bounds)
        assert ds.crs == src.crs
        assert ds.tags()["SR_ANCHOR"].startswith("revisit mean")  # the default
    raw = processing.run("s2sr:superresolve", {"INPUT": first, "BAND": 1, "ANCHOR": False,
                                               "CHECKPOINT": str(checkpoints["baseline"]),
                                               "OUTPUT": str(tmp_path / "raw.tif")})
    with rasterio.open(raw["OUTPUT"]) as ds:
        assert ds.tags()["SR_ANCHOR"].startswith("none")


def test_superresolve_bad_checkpoint_is_worded(provider, scene_files, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x00" * 20)
    with pytest.raises(QgsProcessingException, match="broken.safetensors"):
        processing.run("s2sr:superresolve", {"INPUT": str(scene_files["revisits"][0]), "BAND": 1,
                                             "CHECKPOINT": str(bad), "OUTPUT": str(tmp_path / "x.tif")})
    assert not (tmp_path / "x.tif").exists()


def test_segment_writes_probability_mask_and_polygons(provider, scene_files, checkpoints, tmp_path):
    import processing

    res = processing.run("s2sr:segment", {
        "INPUT": str(scene_files["reference"]), "BAND": 1, "BUILDINGS": str(checkpoints["buildings"]),
        "ROADS": str(checkpoints["roads"]), "THRESHOLD": 0.5, "OUTPUT_PROB": str(tmp_path / "p.tif"),
        "OUTPUT_MASK": str(tmp_path / "m.tif"), "OUTPUT_VECTORS": str(tmp_path / "v.gpkg")})
    with rasterio.open(res["OUTPUT_PROB"]) as p, rasterio.open(res["OUTPUT_MASK"]) as m:
        prob, mask = p.read(), m.read()
    assert prob.shape[0] == 2 and mask.shape == prob.shape
    assert np.array_equal(mask == 1, prob > 0.5)
    assert Path(res["OUTPUT_VECTORS"]).is_file()


def test_evaluate_reports_metrics_and_json(provider, dataset, checkpoints, tmp_path):
    import processing

    out = tmp_path / "metrics.json"
    res = processing.run("s2sr:evaluate", {"CHECKPOINT": str(checkpoints["baseline"]), "DATA": str(dataset),
                                           "SPLIT": 0, "SEG_BUILDINGS": str(checkpoints["buildings"]),
                                           "OUTPUT_JSON": str(out)})
    saved = json.loads(out.read_text())
    assert saved["split"] == "test" and saved["scenes"] == 1
    assert res["CPSNR"] == pytest.approx(saved["cpsnr"]) and np.isfinite(res["CPSNR"])
    assert 0.0 <= res["BUILDINGS_DICE"] <= 1.0


def test_train_tiny_recipe(provider, dataset, tmp_path):
    import processing

    from core.models.zoo import read_card

    run = tmp_path / "run"
    res = processing.run("s2sr:train", {
        "CONFIG": str(ROOT / "resources" / "configs" / "tiny_rams_baseline.yaml"), "DATA": str(dataset),
        "EPOCHS": 1, "DEVICE": 1, "RESUME": False, "OUT_DIR": str(run)})
    assert Path(res["CHECKPOINT"]) == run / "best.safetensors"
    card = read_card(res["CHECKPOINT"])
    assert card.arch == "rams" and card.recipe["epochs"] == 1


def _qgis_process() -> str:
    exe = shutil.which("qgis_process")
    if exe is None:
        pytest.skip("qgis_process is not installed (QGIS's command-line Processing runner); "
                    "install the qgis package to run this test")
    # Debian's /usr/bin/qgis_process wrapper passes --noversioncheck, which the 3.22 binary rejects;
    # the real executable sits beside it.
    binary = Path(exe).with_name("qgis_process.bin")
    return str(binary) if binary.is_file() else exe


def test_superresolve_through_qgis_process(scene_files, checkpoints, tmp_path):
    exe = _qgis_process()
    for part in ("metadata.txt", "__init__.py"):  # what QGIS needs to load the repository as a plugin
        assert (ROOT / part).is_file(), f"{part} is missing at the repository root: QGIS cannot load the plugin"
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "s2_taskdriven_sr").symlink_to(ROOT, target_is_directory=True)
    site = [p for p in sys.path if p.endswith("site-packages") and str(Path(sys.prefix)) in p]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_PLUGINPATH=str(plugins),
               QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "profile"),
               PYTHONPATH=os.pathsep.join(site + [os.environ.get("PYTHONPATH", "")]).strip(os.pathsep))
    enable = subprocess.run([exe, "plugins", "enable", "s2_taskdriven_sr"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert enable.returncode == 0, enable.stdout + enable.stderr
    out = tmp_path / "cli_sr.tif"
    proc = subprocess.run(
        [exe, "--json", "run", "s2sr:superresolve", "--",
         f"INPUT={scene_files['revisits'][0]}", f"REVISITS={scene_files['revisits'][1]}",
         f"REVISITS={scene_files['revisits'][2]}", "BAND=1", f"CHECKPOINT={checkpoints['baseline']}",
         f"OUTPUT={out}"],
        env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    payload = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert Path(payload["results"]["OUTPUT"]) == out
    h, w = scene_files["size"]
    with rasterio.open(out) as ds:
        assert (ds.height, ds.width) == (3 * h, 3 * w)
