"""Fine-tuning on the analyst's own area, end to end on a synthetic stand-in (no HR image used).

The "area" is a synthetic scene written the way an analyst has it: LR revisit
GeoTIFFs and buildings/roads GeoPackages (in EPSG:4326, as QuickOSM exports).
Real files, real rasterization through OGR, real (tiny) PyTorch training. These
tests check the mechanics; whether held-out Dice *rises* needs minutes of
training and is shown by ``scripts/area_finetune_demo.py`` (docs/results/area_finetune.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core.area.tiles import AreaError, plan_layout, prepare_area
from core.data.scene import list_scenes, load_split, read_scene
from core.io.geo import compose
from core.training.config import load_config
from core.training.trainer import train

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "resources" / "configs"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py: one intra-op thread for the module


@pytest.fixture(scope="module")
def scene():
    from core.data.synthetic.towns import make_scene

    return make_scene(size_hr=288, frames=3, seed=5)  # 96 x 96 LR px: 3 x 3 tiles of 32 px


@pytest.fixture(scope="module")
def files(scene, tmp_path_factory):
    from core.data.synthetic.area import write_area_files

    return write_area_files(scene, tmp_path_factory.mktemp("inputs"), vector_crs="EPSG:4326")


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """A tiny untrained RAMS (the starting point) and tiny UNet++ trained briefly on synthetic HR."""
    from core.data.synthetic.towns import make_dataset
    from core.models.zoo import ModelCard, build, save_checkpoint

    tmp = tmp_path_factory.mktemp("nets")
    data = tmp / "synth"
    make_dataset(data, n_scenes=3, size_hr=96, seed=0, frames=3)
    out = {}
    for target in ("buildings", "roads"):
        cfg = load_config(CONFIGS / f"tiny_segmentation_{target}.yaml",
                          [f"data.root={data}", f"out_dir={tmp / target}", "epochs=1"])
        out[target] = train(cfg)
    torch.manual_seed(0)
    model = build("rams", filters=8, N=1, r=4, frames=3)
    out["sr"] = tmp / "start.safetensors"
    save_checkpoint(out["sr"], model, ModelCard.for_model(model, normalization={"offset": 0.0, "scale": 0.5},
                                                          bands=["B8"], name="tiny start"))
    return out


# --------------------------------------------------------------------------- preparing the area


def test_layout_holds_out_a_separate_strip():
    wide = plan_layout(rows=3, cols=6, val_fraction=0.2, gap_tiles=1)
    assert wide.side == "east"
    assert {c for (_r, c) in wide.tiles("held_out")} == {5}
    assert {c for (_r, c) in wide.tiles("gap")} == {4}
    assert {c for (_r, c) in wide.tiles("train")} == {0, 1, 2, 3}
    tall = plan_layout(rows=5, cols=2, val_fraction=0.2, gap_tiles=1)
    assert tall.side == "south" and {r for (r, _c) in tall.tiles("held_out")} == {4}
    with pytest.raises(AreaError, match="leaves nothing to train on"):
        plan_layout(rows=2, cols=2, val_fraction=0.5, gap_tiles=1)


def test_prepare_writes_disjoint_tiles_with_masks_from_the_vectors(scene, files, tmp_path):
    out = tmp_path / "area"
    res = prepare_area(files.revisits, 1, files.buildings, files.roads, out, tile_lr=32)
    assert res.side == "east" and res.band_name == "B8"  # the band's description in the GeoTIFFs
    split = load_split(out)
    assert split["val"] == split["test"] == res.held_out and split["train"] == res.train
    assert len(res.train) == 3 and len(res.held_out) == 3
    # spatially disjoint, and not touching: a whole tile column between them
    train_x = [read_scene(out / n).lr_transform.c for n in res.train]
    held_x = [read_scene(out / n).lr_transform.c for n in res.held_out]
    assert min(held_x) - (max(train_x) + 32 * 10.0) >= 32 * 10.0 - 1e-6
    assert not set(res.train) & set(res.held_out)
    assert any("reprojected from EPSG:4326" in m for m in res.messages)
    # masks rasterized from the GeoPackages (reprojected) match the scene's own masks; no HR is written
    tile = read_scene(out / "tile_r01_c02")
    assert tile.hr is None and not (out / "tile_r01_c02" / "hr.tif").exists()
    ys, xs = slice(96, 192), slice(192, 288)
    for key in ("buildings", "roads"):
        truth = scene.masks[key][ys, xs]
        assert truth.any()
        assert (tile.masks[key] == truth).mean() > 0.995, key
    np.testing.assert_allclose(tile.lr[:, 0], scene.lr[:, 0, 32:64, 64:96], atol=1e-4)  # DN round trip
    area = json.loads((out / "area.json").read_text())
    assert area["held_out"] == res.held_out and len(area["tiles"]) == 6  # the gap column is not written


def test_scene_without_hr_gives_dice_labels_where_revisits_see(files, tmp_path):
    """The task Dice must train on HR-less tiles: its valid mask is the LR coverage, not the (empty) HR mask."""
    from core.data.patches import SRPatchDataset

    prepare_area(files.revisits, 1, files.buildings, files.roads, tmp_path / "area", tile_lr=32)
    tile = read_scene(tmp_path / "area" / "tile_r00_c00")
    tile.lr_valid[:, :10, :] = False  # a cloud over the top rows in every revisit
    item = SRPatchDataset([tile], lr_patch=32, frames=3, samples_per_epoch=1, augment=False)[0]
    assert not item["hr_valid"].any()
    mv = item["mask_valid"].numpy()
    assert not mv[:30].any() and mv[30:].all()


def test_bad_inputs_are_refused_clearly(scene, files, tmp_path):
    from core.data.synthetic.area import write_area_files, write_vector_layer
    from core.jobs import InputError

    empty = write_area_files(scene, tmp_path / "empty", empty_roads=True)
    with pytest.raises(AreaError, match="roads.gpkg: the roads layer holds no features"):
        prepare_area(empty.revisits, 1, empty.buildings, empty.roads, tmp_path / "a1", tile_lr=32)
    assert not (tmp_path / "a1").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".a1")]

    far = write_vector_layer(tmp_path / "far.gpkg", [({"type": "Polygon", "coordinates": [[
        [10.0, 50.0], [10.001, 50.0], [10.001, 50.001], [10.0, 50.001], [10.0, 50.0]]]}, {"building": "yes"})],
        "EPSG:4326", "buildings")
    with pytest.raises(AreaError, match="none of its 1 feature"):
        prepare_area(files.revisits, 1, far, files.roads, tmp_path / "a2", tile_lr=32)

    from core.data.scene import to_dn, write_geotiff

    moved = write_geotiff(tmp_path / "elsewhere.tif", to_dn(scene.lr[0], scene.lr_valid[0], 1e-4), scene.crs,
                          compose(scene.lr_transform, __import__("affine").Affine.translation(5000, 0)), nodata=0)
    with pytest.raises(InputError, match="does not overlap"):
        prepare_area([files.revisits[0], moved], 1, files.buildings, files.roads, tmp_path / "a3", tile_lr=32)

    with pytest.raises(AreaError, match="smaller than one tile"):
        prepare_area(files.revisits, 1, files.buildings, files.roads, tmp_path / "a4", tile_lr=128)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(AreaError, match="not empty"):
        prepare_area(files.revisits, 1, files.buildings, files.roads, tmp_path / "busy", tile_lr=32)


# --------------------------------------------------------------------------- fine-tuning


def test_run_area_end_to_end_registers_and_reports(files, nets, tmp_path):
    from core.area.finetune import run_area
    from core.models.zoo import load_checkpoint
    from core.options import AreaOptions

    events = []
    opts = AreaOptions(samples_per_epoch=8, batch_size=4, device="cpu", lr=1e-3, epochs=2, tile_lr=32)
    res = run_area(files.revisits, files.buildings, files.roads, nets["sr"], nets["buildings"], nets["roads"],
                   tmp_path / "run", options=opts, progress=events.append)
    # before/after numbers on the held-out tiles
    for r in (res.before, res.after):
        assert r["tiles"] == 3
        for key in ("buildings_dice", "roads_dice"):
            assert r[key] is not None and 0.0 <= r[key] <= 1.0
        assert np.isfinite(r["consistency_cpsnr"]) and r["consistency_cpsnr"] > 10
    # the task Dice really trained on tiles without HR: its loss is neither 0 (no labelled pixel) nor NaN,
    # and dynamic weighting gave it a weight
    epochs = [e for e in events if e["event"] == "epoch"]
    assert len(epochs) == 2
    for e in epochs:
        assert 0.0 < e["train"]["dice_buildings"] < 1.0 and 0.0 < e["train"]["dice_roads"] < 1.0
        assert e["val"]["buildings_dice"] is not None  # the held-out strip is monitored
    assert epochs[-1]["weights"]["dice_buildings"] > 0
    # registered: a loadable checkpoint whose card says what it is and holds both measurements
    model, card = load_checkpoint(res.checkpoint)
    start, _ = load_checkpoint(nets["sr"])
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), start.state_dict().values()))
    assert card.recipe["kind"] == "area fine-tune"
    assert card.recipe["area_finetune"]["held_out_tiles"] == 3
    held = card.metrics["area_held_out"]
    assert held["before"]["buildings_dice"] == pytest.approx(res.before["buildings_dice"])
    assert held["after"]["roads_dice"] == pytest.approx(res.after["roads_dice"])
    done = events[-1]
    assert done["event"] == "done" and done["checkpoint"] == str(res.checkpoint)
    assert [e for e in events if e["event"] == "done"] == [done]  # the trainer's own 'done' is not forwarded
    # the reports
    report = json.loads(res.report_json.read_text())
    assert report["before"]["roads_dice"] == pytest.approx(res.before["roads_dice"])
    md = res.report_md.read_text()
    assert "| Dice buildings |" in md and "consistency cPSNR" in md
    assert res.plot is not None and res.plot.stat().st_size > 1000

    # started again with the same inputs: the area is reused and training resumes (already complete)
    again = []
    res2 = run_area(files.revisits, files.buildings, files.roads, nets["sr"], nets["buildings"], nets["roads"],
                    tmp_path / "run", options=opts, progress=again.append)
    messages = [e.get("message", "") for e in again]
    assert any("using the area already prepared" in m for m in messages)
    assert any("run already complete" in m for m in messages)
    assert res2.after["buildings_dice"] == pytest.approx(res.after["buildings_dice"])


def test_finetune_refuses_a_band_the_checkpoint_was_not_trained_on(files, nets, tmp_path):
    from core.area.finetune import finetune_area
    from core.options import AreaOptions

    one = AreaOptions(epochs=1)
    prepare_area(files.revisits, 1, files.buildings, files.roads, tmp_path / "area", tile_lr=32, band_name="B4")
    with pytest.raises(ValueError, match="trained on band B8 but the area was prepared as B4"):
        finetune_area(tmp_path / "area", nets["sr"], nets["buildings"], nets["roads"], tmp_path / "out", one)
    with pytest.raises(AreaError, match="not a prepared area"):
        finetune_area(tmp_path, nets["sr"], nets["buildings"], nets["roads"], tmp_path / "out", one)


def test_segmentation_networks_on_other_bands_are_refused_before_any_work(files, nets, tmp_path):
    """A one-band (B8) network with the shipped 4-band UNet++: refused in one sentence, nothing cut."""
    from core import api
    from core.area.finetune import run_area
    from core.jobs import InputError
    from core.options import AreaOptions, WaldOptions

    shipped = api.shipped_models_dir()
    four = {t: shipped / f"unetpp_{t}.safetensors" for t in ("buildings", "roads")}
    jobs = (lambda out: run_area(files.revisits, files.buildings, files.roads, nets["sr"], four["buildings"],
                                 four["roads"], out, options=AreaOptions(tile_lr=32)),
            lambda out: api.adapt_area(files.revisits, nets["sr"], out, files.buildings, files.roads,
                                       four["buildings"], four["roads"], options=WaldOptions(tile_lr=48)))
    for i, job in enumerate(jobs):
        out = tmp_path / f"out{i}"
        with pytest.raises(InputError, match="segments B02, B03, B04, B08 but the SR network gives B8"):
            job(out)
        assert not out.exists() or not any(out.iterdir())


def test_cli_prepare_jsonl_and_clear_errors(files, tmp_path):
    out = tmp_path / "area"
    cmd = [sys.executable, "-m", "core.cli", "area", "prepare", "--revisits", *map(str, files.revisits),
           "--band", "B8", "--buildings", str(files.buildings), "--roads", str(files.roads), "--out", str(out),
           "--tile", "32", "--progress", "jsonl"]
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert events[-1]["event"] == "done" and len(events[-1]["held_out"]) == 3
    assert len(list_scenes(out)) == 6
    bad = subprocess.run(cmd[:-6] + ["--out", str(tmp_path / "b"), "--tile", "512"], cwd=ROOT, env=ENV,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "error:" in bad.stderr and "smaller than one tile" in bad.stderr
    assert "Traceback" not in bad.stderr
