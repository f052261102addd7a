"""Objects found on an SR output say whether the 10 m data support them (GeoPackage attributes, supported_only).

A flat land with one real bright roof is simulated to 4 LR revisits by the S-2
operator; the "SR output" is the HR image plus a second roof painted after the
simulation (no revisit saw it). A segmentation network that calls bright pixels
buildings finds both on the output; only the real one is also found on the
bicubic upsampling of the revisits, and the trust map calls the painted one
likely invented.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from core.api import segment, trust_map
from core.data.degrade import simulate_frames
from core.io.geo import apply, compose
from core.io.polygons import RasterStat, write_mask_vectors
from core.options import SegmentOptions
from tests.helpers import T0, make_card, write_geotiff

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SCALE = 3
REAL = (slice(30, 45), slice(30, 48))  # HR pixels of the real roof
FAKE = (slice(100, 112), slice(110, 122))  # the painted one


class Bright(torch.nn.Module):
    """'Buildings' = reflectance above 0.45 (logits of a steep ramp)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 60.0 * (x[:, :1] - 0.45)


def _vectors(path: Path, layer: str):
    from osgeo import ogr

    ds = ogr.Open(str(path))
    try:
        lyr = ds.GetLayerByName(layer)
        names = [lyr.GetLayerDefn().GetFieldDefn(i).GetName() for i in range(lyr.GetLayerDefn().GetFieldCount())]
        return [({n: f.GetField(n) for n in names}, json.loads(f.GetGeometryRef().ExportToJson())) for f in lyr]
    finally:
        ds = None


def _centre(geom) -> tuple:
    xy = np.asarray(geom["coordinates"][0])
    return xy[:, 0].mean(), xy[:, 1].mean()


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("support")
    rng = np.random.default_rng(0)
    hr = (0.3 + 0.01 * rng.standard_normal((144, 144))).astype(np.float32)
    hr[REAL] = 0.6
    lr, _valid, _shifts = simulate_frames(hr[None], None, frames=4, seed=1, max_shift_lr=0.5)
    lr_paths = [write_geotiff(root / f"t{t}.tif", np.round(lr[t, 0] * 1e4).astype(np.uint16), nodata=0,
                              descriptions=["B08"]) for t in range(4)]
    sr = hr.copy()
    sr[FAKE] = 0.6
    tags = {"SR_INPUTS": json.dumps([str(p) for p in lr_paths]), "SR_BAND": "B08", "SR_SCALE": "3"}
    sr_path = write_geotiff(root / "sr.tif", np.round(sr * 1e4).astype(np.uint16), transform=compose(T0, Affine.scale(
        1 / SCALE)), nodata=0, descriptions=["B08"], tags=tags)
    model = (Bright(), make_card(arch="unetpp", task="segmentation", target="buildings", bands=["B8"]))
    return {"root": root, "lr": lr_paths, "sr": sr_path, "model": model}


def _on(geom_centre, rows: slice, cols: slice) -> bool:
    t = compose(T0, Affine.scale(1 / SCALE))
    col, row = apply(~t, *geom_centre)
    return rows.start <= row < rows.stop and cols.start <= col < cols.stop


def test_polygons_carry_support_and_supported_only_drops_the_painted_roof(case, tmp_path):
    res = segment(case["sr"], case["model"], out_mask=tmp_path / "m.tif", vectors=tmp_path / "v.gpkg")
    assert res.polygons == {"buildings": 2}
    assert any("bicubic upsampling of the mean of its 4 recorded input" in m for m in res.messages)
    feats = _vectors(tmp_path / "v.gpkg", "buildings")
    real = next(a for a, g in feats if _on(_centre(g), REAL[0], REAL[1]))
    fake = next(a for a, g in feats if _on(_centre(g), FAKE[0], FAKE[1]))
    assert real["prob_mean"] > 0.9 and fake["prob_mean"] > 0.9
    assert real["bicubic_share"] > 0.5 and real["on_bicubic"] == 1 and real["supported"] == 1
    assert fake["bicubic_share"] == 0.0 and fake["on_bicubic"] == 0 and fake["supported"] == 0
    assert real["trust_class"] is None  # no trust map beside the output yet
    only = segment(case["sr"], case["model"], out_mask=tmp_path / "m2.tif", vectors=tmp_path / "v2.gpkg",
                   options=SegmentOptions(supported_only=True))
    assert only.polygons == {"buildings": 1}
    (kept, geom), = _vectors(tmp_path / "v2.gpkg", "buildings")
    assert _on(_centre(geom), REAL[0], REAL[1]) and kept["supported"] == 1
    # no temporary raster is left beside the vectors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tif", "m2.tif", "v.gpkg", "v2.gpkg"]


def test_mean_trust_class_per_polygon_when_a_trust_map_exists(case, tmp_path):
    import shutil

    sr = Path(shutil.copy(case["sr"], tmp_path / "sr.tif"))
    summary = trust_map(sr)
    assert summary.class_path == tmp_path / "sr_trust_class.tif"
    res = segment(sr, case["model"], out_mask=tmp_path / "m.tif", vectors=tmp_path / "v.gpkg")
    assert any("mean trust class" in m for m in res.messages)
    feats = _vectors(tmp_path / "v.gpkg", "buildings")
    real = next(a for a, g in feats if _on(_centre(g), REAL[0], REAL[1]))
    fake = next(a for a, g in feats if _on(_centre(g), FAKE[0], FAKE[1]))
    assert fake["trust_class"] > 1.5 and fake["supported"] == 0  # the trust map does not vouch for it
    assert real["trust_class"] < 0.5 and real["supported"] == 1


def test_without_the_inputs_the_reference_is_the_output_at_10_m(case, tmp_path):
    """Recorded inputs gone: the output degraded to 10 m and upsampled back (said in the messages)."""
    with rasterio.open(case["sr"]) as ds:
        data, profile = ds.read(), ds.profile
    profile.update(count=1)
    lonely = tmp_path / "lonely.tif"
    with rasterio.open(lonely, "w", **profile) as ds:
        ds.write(data)
        ds.update_tags(SR_INPUTS=json.dumps([str(tmp_path / "gone.tif")]), SR_SCALE="3")
    res = segment(lonely, case["model"], out_mask=tmp_path / "m.tif", vectors=tmp_path / "v.gpkg")
    assert any("inputs are gone" in m and "degraded to 3x coarser pixels" in m for m in res.messages)
    # a 12 px roof painted at 3.33 m is a 4 px roof at 10 m: this weaker reference still shows it
    assert all(a["on_bicubic"] == 1 for a, _g in _vectors(tmp_path / "v.gpkg", "buildings"))


def test_polygon_statistics_are_the_pixels_of_each_polygon(tmp_path):
    mask = np.zeros((40, 50), np.uint8)
    mask[5:10, 5:20] = 1
    mask[25:35, 30:33] = 1
    values = np.arange(40 * 50, dtype=np.float32).reshape(40, 50) / 2000.0
    values[6, 6] = np.nan  # left out
    write_geotiff(tmp_path / "mask.tif", mask)
    write_geotiff(tmp_path / "values.tif", np.stack([values, values * 0 + 0.7]))
    stats = [RasterStat("mean_v", tmp_path / "values.tif", {"obj": 1}),
             RasterStat("share", tmp_path / "values.tif", {"obj": 1}, above=0.5),
             RasterStat("const", tmp_path / "values.tif", {"obj": 2})]
    counts = write_mask_vectors(tmp_path / "mask.tif", tmp_path / "v.gpkg", ["obj"], stats=stats,
                                derive=lambda s: {"big": int((s["mean_v"] or 0) > 0.5)},
                                keep=lambda a: a["const"] is not None)
    assert counts == {"obj": 2}
    got = sorted((a["mean_v"], a["share"], a["const"], a["big"]) for a, _g in _vectors(tmp_path / "v.gpkg", "obj"))
    first = values[5:10, 5:20]
    second = values[25:35, 30:33]
    assert got[0][0] == pytest.approx(float(np.nanmean(first)), rel=1e-6)
    assert got[1][0] == pytest.approx(float(second.mean()), rel=1e-6)
    assert got[0][1] == 0.0 and got[1][1] == pytest.approx(float((second > 0.5).mean()))
    assert got[0][2] == pytest.approx(0.7) and [g[3] for g in got] == [0, 1]
    none = write_mask_vectors(tmp_path / "mask.tif", tmp_path / "none.gpkg", ["obj"], stats=stats,
                              keep=lambda a: False)
    assert none == {"obj": 0}
