"""Real images labelled as a whole (core.data.weak_labels): the folder format, the loss, and training with them.

The folder is real GeoTIFFs with named bands and a labels.json, as
scripts/weak_labels_from_eurosat.py writes it; training runs the real trainer on a
tiny synthetic world with the real images riding along.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import write_geotiff

pytestmark = pytest.mark.usefixtures("one_torch_thread")
BANDS = ["B02", "B03", "B04", "B08"]


def _image(path, seed, bright_roofs):
    """A 60 px 4-band image: vegetation, with bright square roofs where buildings are present."""
    rng = np.random.default_rng(seed)
    dn = np.stack([np.full((60, 60), v, np.float32) for v in (300, 600, 400, 3000)])
    dn += rng.normal(0, 30, dn.shape).astype(np.float32)
    if bright_roofs:
        for r, c in rng.integers(0, 52, (12, 2)):
            dn[:3, r:r + 6, c:c + 6] = 2200
            dn[3, r:r + 6, c:c + 6] = 2500
    write_geotiff(path, np.clip(dn, 1, 10000).astype(np.uint16), descriptions=BANDS, nodata=0)


@pytest.fixture(scope="module")
def weak_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("weak")
    images = []
    for i in range(3):
        for group, present in (("Residential", True), ("Forest", False)):
            rel = f"images/{group}/{group}_{i}.tif"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            _image(root / rel, i + 10 * present, present)
            images.append({"path": rel, "group": group, "buildings": "present" if present else "absent"})
    (root / "images/River").mkdir()
    _image(root / "images/River/River_0.tif", 99, False)
    images.append({"path": "images/River/River_0.tif", "group": "River", "buildings": "unknown"})
    (root / "labels.json").write_text(json.dumps({"format": "weak-labels-1", "radiometric_scale": 1e-4,
                                                  "images": images}))
    return root


def _rewrite(root, tmp_path, change):
    meta = json.loads((root / "labels.json").read_text())
    change(meta)
    dest = tmp_path / "w"
    import shutil

    shutil.copytree(root, dest)
    (dest / "labels.json").write_text(json.dumps(meta))
    return dest


def test_weak_images_read_labels_and_skip_unknown(weak_folder):
    from core.data.weak_labels import WeakImages

    images = WeakImages(weak_folder, "buildings", BANDS, patch=48)
    assert images.counts() == {"present": 3, "absent": 3}  # the River image is unknown for buildings
    item = images.draw(np.random.default_rng(0))
    assert item["weak_image"].shape == (4, 48, 48) and item["weak_valid"].all()
    assert 0.02 < float(item["weak_image"][0].mean()) < 0.25  # reflectance, not DN
    # the bands are taken by name, whatever their order in the file
    assert float(item["weak_image"][3].mean()) > float(item["weak_image"][0].mean())


@pytest.mark.parametrize("change, message", [
    (lambda m: m["images"][0].update(path="../outside.tif"), "leaves its folder"),
    (lambda m: m["images"][0].update(path="/etc/passwd"), "absolute path"),
    (lambda m: m["images"][0].update(buildings="maybe"), "use one of"),
    (lambda m: [e.update(buildings="present") for e in m["images"]], "every image is labelled present"),
    (lambda m: m.update(format="other"), "not a weak-label index"),
])
def test_weak_images_refuse_bad_folders_in_one_line(weak_folder, tmp_path, change, message):
    from core.data.scene import SceneError
    from core.data.weak_labels import WeakImages

    with pytest.raises(SceneError, match=message):
        WeakImages(_rewrite(weak_folder, tmp_path, change), "buildings", BANDS, patch=48)


def test_weak_images_refuse_missing_band_and_small_images(weak_folder):
    from core.data.scene import SceneError
    from core.data.weak_labels import WeakImages

    with pytest.raises(SceneError, match="has no band B05"):
        WeakImages(weak_folder, "buildings", ["B02", "B05"], patch=48)
    with pytest.raises(SceneError, match="smaller than the 96 px"):
        WeakImages(weak_folder, "buildings", BANDS, patch=96)


def test_weak_label_loss_reads_only_the_most_object_like_pixels():
    from core.data.weak_labels import weak_label_loss

    logits = torch.full((2, 1, 10, 10), -6.0)
    logits[:, :, :2, :5] = 6.0  # 10 % of each image looks like an object
    labels = torch.tensor([1.0, 0.0])
    present_ok = weak_label_loss(logits[:1], labels[:1], None, 0.08, 0.02)
    absent_bad = weak_label_loss(logits[1:], labels[1:], None, 0.08, 0.02)
    assert float(present_ok) < 0.01 and float(absent_bad) > 5.0
    # a present image asked for more than it shows is pushed up on its next-best pixels, not all of them
    logits.requires_grad_(True)
    weak_label_loss(logits[:1], labels[:1], None, 0.2, 0.02).backward()
    touched = (logits.grad[0] != 0).sum().item()
    assert touched == 20
    # invalid pixels are never read: an image whose only object-like pixels are nodata counts as empty land
    valid = torch.ones(2, 10, 10, dtype=torch.bool)
    valid[1, :2, :5] = False
    assert float(weak_label_loss(logits.detach()[1:], labels[1:], valid[1:], 0.08, 0.02)) < 0.01


def test_training_with_real_weak_labels_moves_the_network_and_records_it(weak_folder, tmp_path):
    from core.data.synthetic.world_v2 import make_world_dataset
    from core.models.zoo import read_card
    from core.training.config import ConfigError, load_config
    from core.training.trainer import train
    from tests.helpers import ROOT

    world = tmp_path / "world"
    make_world_dataset(world, n_scenes=3, size_hr=96, seed=5, frames=2, object_free_share=0.0)
    recipe = ROOT / "resources/configs/tiny_segmentation_buildings.yaml"
    common = [f"data.root={world}", "data.bands=[B02,B03,B04,B08]", "epochs=1", "data.val_scenes=1"]
    with pytest.raises(ConfigError, match="needs data.weak.root"):
        load_config(recipe, common + ["loss.terms=[{name: dice}, {name: weak_real, weight: 1.0}]"])
    with pytest.raises(ConfigError, match="add the loss term weak_real"):
        load_config(recipe, common + [f"data.weak.root={weak_folder}"])
    events = []
    ckpt = train(load_config(recipe, common + [
        f"out_dir={tmp_path / 'run'}", f"data.weak.root={weak_folder}",
        "loss.terms=[{name: dice, weight: 1.0}, {name: weak_real, weight: 1.0}]"]), progress=events.append)
    steps = [e for e in events if e["event"] == "step"]
    assert steps and all(np.isfinite(e["losses"]["weak_real"]) and e["losses"]["weak_real"] > 0 for e in steps)
    assert any("3 with buildings, 3 without" in e.get("message", "") for e in events)
    card = read_card(ckpt)
    assert card.recipe["data"]["weak"]["root"] == str(weak_folder)
    assert [t["name"] for t in card.recipe["losses"]] == ["dice", "weak_real"]


def _eurosat_patch(path, seed, built, x0=500000.0):
    """A 13-band 64 x 64 uint16 GeoTIFF laid out as EuroSAT MS (B01..B12, B8A last), UTM 33N, 10 m."""
    from rasterio.transform import from_origin

    rng = np.random.default_rng(seed)
    dn = rng.normal(900, 40, (13, 64, 64))
    dn[7] = 2600  # B08: vegetation
    if built:
        dn[1:4, 20:40, 20:40] = 1800
        dn[7, 20:40, 20:40] = 1900
    path.parent.mkdir(parents=True, exist_ok=True)
    write_geotiff(path, np.clip(dn, 1, 10000).astype(np.uint16), transform=from_origin(x0, 5800000.0, 10, 10))


def test_eurosat_weak_labels_and_held_out_scores_from_the_scripts(tmp_path, capsys):
    """The EuroSAT script splits, skips patches near an evaluation scene, super-resolves with the shipped HAT
    and writes a folder the trainer reads; the patch evaluation scores the held-out half per class."""
    import importlib

    from core.data.weak_labels import WeakImages

    src = tmp_path / "eurosat"
    for i in range(6):
        _eurosat_patch(src / "Residential" / f"Residential_{i}.tif", i, True, x0=500000.0 + 1000 * i)
        _eurosat_patch(src / "Forest" / f"Forest_{i}.tif", 50 + i, False, x0=500000.0 + 1000 * i)
    near = tmp_path / "eval_scene.tif"  # an evaluation scene 100 km east of them, and one patch beside it
    _eurosat_patch(near, 99, False, x0=600000.0)
    _eurosat_patch(src / "Forest" / "Forest_near.tif", 98, False, x0=600500.0)
    prep = importlib.import_module("scripts.weak_labels_from_eurosat")
    out = tmp_path / "weak"
    assert prep.main(["--eurosat", str(src), "--out", str(out), "--holdout", "0.3", "--levels", "L1C",
                      "--exclude-near", str(near)]) == 0
    said = capsys.readouterr().out
    assert "1 left out within 5 km of an evaluation scene" in said
    meta = json.loads((out / "labels.json").read_text())
    held = json.loads((out / "holdout.json").read_text())["images"]
    names = {Path(e["path"]).name for e in meta["images"]} | {Path(e["path"]).name for e in held}
    assert len(names) == 12 and "Forest_near.tif" not in names and held and meta["images"]
    assert not {Path(e["path"]).name for e in meta["images"]} & {Path(e["path"]).name for e in held}
    import rasterio

    with rasterio.open(out / meta["images"][0]["path"]) as ds:  # SR output: 3x finer, bands named
        assert (ds.width, ds.height) == (192, 192) and ds.descriptions == tuple(BANDS)
    images = WeakImages(out, "buildings", BANDS, patch=96)
    assert sum(images.counts().values()) == len(meta["images"])
    assert prep.main(["--eurosat", str(src), "--out", str(out)]) == 1  # never writes into a folder that exists
    assert "exists already" in capsys.readouterr().err

    ev = importlib.import_module("scripts.evaluate_labelled_patches")
    table = tmp_path / "table.md"
    assert ev.main(["--patches", str(out), "--work", str(tmp_path / "work"), "--methods", "bicubic",
                    "--levels", "L1C", "L2A~", "--out", str(table), "--pictures", str(tmp_path / "held_out.png")]) == 0
    text = table.read_text()
    assert "| L1C | Bicubic (no network) |" in text and "| L2A~ | Bicubic (no network) |" in text
    shares = json.loads(table.with_suffix(".json").read_text())["shares"]
    assert set(shares["L1C|bicubic"]) <= {"Residential", "Forest"}
    from PIL import Image

    with Image.open(tmp_path / "held_out.png") as im:  # the held-out patches drawn, one panel each
        assert im.width > 400 and im.height > 100
