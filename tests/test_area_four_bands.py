"""The area workflows with the shipped 4-band networks (B02, B03, B04, B08), on a tiny world-v2 stand-in area.

Why: every shipped network takes four bands jointly, and the area fine-tune and
the Wald adaptation used to refuse them (they cut one band). These tests run
both end to end with the shipped RAMS and UNet++ files on real GeoTIFFs and
GeoPackages written from a world-v2 scene, and check that the bands are read
by *name* (a raster whose bands are stored B08, B04, B03, B02 gives the
network B02 first). The area is one row of four 24-px tiles (one held out), so
each run takes seconds; whether Dice rises needs minutes of training and is
not asserted here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.area.tiles import prepare_area
from core.data.scene import list_scenes, read_scene
from core.io.geo import compose

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "resources" / "models"
RAMS = MODELS / "rams_taskdriven.safetensors"
SEG = {"buildings": MODELS / "unetpp_buildings.safetensors", "roads": MODELS / "unetpp_roads.safetensors"}
BANDS = ["B02", "B03", "B04", "B08"]
TILE = 24  # LR px; the stand-in is 4 tiles wide and 1 tall
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py: one intra-op thread for the module


def strip_with_objects(scene):
    """The 1-tile-tall row of the scene whose held-out (eastern) tile and training tiles hold the most buildings.

    The east tile must hold buildings and roads, or the held-out Dice is undefined (0/0).
    """
    hr = TILE * 3
    b, r = np.asarray(scene.masks["buildings"], bool), np.asarray(scene.masks["roads"], bool)
    best, row = -1, 0
    for y in range(0, b.shape[0] - hr + 1, 3):
        east = (slice(y, y + hr), slice(3 * hr, 4 * hr))
        score = min(b[east].sum(), 200) + min(r[east].sum(), 200) + min(b[y:y + hr, : 2 * hr].sum(), 100)
        if b[east].any() and r[east].any() and score > best:
            best, row = score, y
    y0 = row // 3
    lr_rows, hr_rows = slice(y0, y0 + TILE), slice(row, row + hr)
    from affine import Affine

    shift_lr = Affine.translation(0, y0)
    shift_hr = Affine.translation(0, row)
    roads = [dict(s, y0=float(s["y0"]) - row, y1=float(s["y1"]) - row) for s in scene.extra["_roads"]]
    return dataclasses.replace(
        scene, lr=scene.lr[:, :, lr_rows], lr_valid=scene.lr_valid[:, lr_rows],
        hr=None if scene.hr is None else scene.hr[:, hr_rows], hr_valid=None if scene.hr_valid is None
        else scene.hr_valid[hr_rows], masks={k: m[hr_rows] for k, m in scene.masks.items()},
        lr_transform=compose(scene.lr_transform, shift_lr), hr_transform=compose(scene.hr_transform, shift_hr),
        extra={**scene.extra, "_roads": roads})


@pytest.fixture(scope="module")
def area_files(tmp_path_factory):
    """Revisit GeoTIFFs (bands B02..B08 named) and GeoPackages of a 96 x 24 LR px world-v2 strip."""
    from core.data.synthetic.area import write_area_files
    from core.data.synthetic.world_v2 import make_world_scene

    scene = make_world_scene(size_hr=288, frames=3, seed=3, object_free=False)
    assert list(scene.bands) == BANDS
    strip = strip_with_objects(scene)
    return write_area_files(strip, tmp_path_factory.mktemp("standin"), vector_crs="EPSG:4326")


def _reordered(paths, folder: Path, order):
    """The same revisits written with their bands stored in another order (descriptions follow the bands)."""
    import rasterio

    from core.data.geotiff import write_geotiff

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for p in paths:
        with rasterio.open(p) as ds:
            data = ds.read()
            names = list(ds.descriptions)
            crs, transform = ds.crs.to_string(), ds.transform
        idx = [names.index(b) for b in order]
        out.append(write_geotiff(folder / Path(p).name, data[idx], crs, transform, nodata=0,
                                 descriptions=[names[i] for i in idx]))
    return out


def test_bands_are_read_by_name_whatever_their_order_in_the_file(area_files, tmp_path):
    straight = prepare_area(area_files.revisits, None, area_files.buildings, area_files.roads, tmp_path / "a",
                            tile_lr=TILE, bands=BANDS)
    flipped_files = _reordered(area_files.revisits, tmp_path / "flipped", ["B08", "B04", "B03", "B02"])
    flipped = prepare_area(flipped_files, None, area_files.buildings, area_files.roads, tmp_path / "b",
                           tile_lr=TILE, bands=BANDS)
    assert straight.bands == flipped.bands == BANDS
    assert straight.held_out == flipped.held_out and len(straight.held_out) == 1
    for name in straight.train + straight.held_out:
        a, b = read_scene(tmp_path / "a" / name), read_scene(tmp_path / "b" / name)
        assert a.bands == b.bands == BANDS and a.lr.shape == (3, 4, TILE, TILE)
        np.testing.assert_array_equal(a.lr, b.lr)  # B02 first in both, though stored last in the flipped files
        np.testing.assert_array_equal(a.masks["roads"], b.masks["roads"])
    # and not merely equal: band 0 of the tile is the file's B02, not the flipped file's band 1 (B08)
    import rasterio

    tile = read_scene(tmp_path / "b" / straight.train[0])
    with rasterio.open(flipped_files[0]) as ds:
        b08 = ds.read(1, window=((0, TILE), (0, TILE))).astype(np.float32) * 1e-4
    assert not np.allclose(tile.lr[0, 0], b08) and np.allclose(tile.lr[0, 3], b08, atol=1e-6)
    record = json.loads((tmp_path / "b" / "area.json").read_text())
    assert record["bands"] == BANDS


def test_a_revisit_without_a_wanted_band_or_without_names_is_refused(area_files, tmp_path):
    from core.jobs import InputError

    three = _reordered(area_files.revisits[:1], tmp_path / "three", ["B02", "B03", "B04"])
    with pytest.raises(InputError, match="B08 missing"):
        prepare_area(list(three) + list(area_files.revisits[1:]), None, area_files.buildings, area_files.roads,
                     tmp_path / "x", tile_lr=TILE, bands=BANDS)
    assert not (tmp_path / "x").exists()
    unnamed = []
    for i, p in enumerate(area_files.revisits):  # the same pixels, band descriptions dropped
        import rasterio

        from core.data.geotiff import write_geotiff

        with rasterio.open(p) as ds:
            unnamed.append(write_geotiff(tmp_path / f"plain_{i}.tif", ds.read(), ds.crs.to_string(), ds.transform,
                                         nodata=0))
    with pytest.raises(InputError, match="no band of the revisits is named"):
        prepare_area(unnamed, None, area_files.buildings, area_files.roads, tmp_path / "y", tile_lr=TILE, bands=BANDS)


def test_cli_area_synth_writes_a_four_band_stand_in(tmp_path):
    import rasterio

    out = tmp_path / "standin"
    run = subprocess.run([sys.executable, "-m", "core.cli", "area", "synth", "--world", "v2", "--out", str(out),
                          "--size", "216", "--frames", "2"], cwd=ROOT, env=ENV, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    tifs = sorted(out.glob("S2_*.tif"))
    assert len(tifs) == 2 and (out / "buildings.gpkg").is_file() and (out / "roads.gpkg").is_file()
    with rasterio.open(tifs[0]) as ds:
        assert list(ds.descriptions) == BANDS and (ds.width, ds.height) == (72, 72)


def test_four_band_area_finetune_runs_headless_with_the_shipped_rams(area_files, tmp_path):
    """`area run` with the shipped 4-band RAMS: tiles of four named bands, Dice before/after, a 4-band card."""
    from core.models.zoo import read_card

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "core.cli", "area", "run", "--revisits", *map(str, area_files.revisits),
           "--buildings", str(area_files.buildings), "--roads", str(area_files.roads), "--checkpoint", str(RAMS),
           "--seg-buildings", str(SEG["buildings"]), "--seg-roads", str(SEG["roads"]), "--out", str(out),
           "--tile", str(TILE), "--epochs", "1", "--samples", "2", "--batch-size", "2", "--patch", "16",
           "--device", "cpu", "--progress", "none", "--set", "val_tile=24", "val_overlap=4"]
    run = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = {line.split(" before")[0].strip(): line for line in run.stdout.splitlines() if " before " in line}
    for label in ("Dice buildings", "Dice roads", "consistency cPSNR (dB)", "consistency cPSNR B02 (dB)",
                  "consistency cPSNR B08 (dB)"):
        assert label in lines and "n/a" not in lines[label], run.stdout
    report = json.loads((out / "area_report.json").read_text())
    assert report["area"]["bands"] == BANDS
    for when in ("before", "after"):
        r = report[when]
        assert r["bands"] == BANDS and 0.0 <= r["buildings_dice"] <= 1.0 and 0.0 <= r["roads_dice"] <= 1.0
        assert all(math.isfinite(r[f"consistency_cpsnr_{b}"]) for b in BANDS)
    tile = read_scene(list_scenes(out / "area")[0])
    assert tile.bands == BANDS and tile.lr.shape[1] == 4
    card = read_card(out / "area_finetuned.safetensors")
    assert card.bands == BANDS and card.in_chans == 4 and card.frames == 9
    assert card.recipe["area_finetune"]["bands"] == BANDS
    md = (out / "area_report.md").read_text()
    assert "| consistency cPSNR B04 (dB) |" in md and "| Dice roads |" in md


def test_four_band_wald_adaptation_runs_with_the_shipped_rams(area_files, tmp_path):
    from core import api
    from core.models.zoo import read_card
    from core.options import WaldOptions

    opts = WaldOptions(tile_lr=TILE, gap_tiles=1, epochs=1, samples_per_epoch=2, batch_size=2, lr_patch=8,
                       device="cpu", overrides=("val_tile=8", "val_overlap=2"))
    res = api.adapt_area(area_files.revisits, RAMS, tmp_path / "wald", buildings=area_files.buildings,
                         roads=area_files.roads, seg_buildings=SEG["buildings"], seg_roads=SEG["roads"],
                         options=opts)
    for when in (res.before, res.after):
        wald, up = when["wald"], when["upscaled"]
        assert wald["bands"] == up["bands"] == BANDS
        for key in ["cpsnr", "cpsnr_bicubic", "consistency_cpsnr"] + [f"cpsnr_{b}" for b in BANDS]:
            value = wald.get(key, up.get(key))
            assert value is not None and math.isfinite(value), key
        assert up["roads_dice"] is not None
    pairs = read_scene(list_scenes(tmp_path / "wald" / "wald")[0])
    assert pairs.bands == BANDS and pairs.lr.shape[1] == 4 and pairs.hr.shape[0] == 4
    record = json.loads((tmp_path / "wald" / "wald" / "wald.json").read_text())
    assert len(record["psf_sigma_10m_px"]) == 4  # each band degraded with its own PSF
    card = read_card(res.checkpoint)
    assert card.bands == BANDS and card.in_chans == 4
    assert "| cPSNR 30 m -> 10 m B02 (dB)" in res.report_md.read_text()
