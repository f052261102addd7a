"""Georeferenced tiled inference on real GeoTIFFs with real (tiny) torch models.

The models here are "identity up to upsampling" (nearest or bicubic upsampling
of the mean of the frames) so the expected output is known exactly; the
checkpoint tests at the end use the zoo's real RAMS / HAT / UNet++ networks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from rasterio.transform import from_origin
from rasterio.warp import Resampling, calculate_default_transform, reproject

from core.api import segment, super_resolve
from core.inference.frames import select_frames
from core.jobs import Cancelled, CancelToken, InputError
from core.options import SegmentOptions, SuperResolveOptions
from tests.helpers import make_card, write_geotiff

ORIGIN = (500000.0, 6000000.0)
T0 = from_origin(*ORIGIN, 10, 10)


class MeanUpsampler(torch.nn.Module):
    """Upsample the mean of the T frames: the identity, up to upsampling."""

    def __init__(self, frames: int = 1, scale: int = 3, mode: str = "nearest") -> None:
        super().__init__()
        self.frames, self.scale, self.mode = frames, scale, mode
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] == self.frames
        self.calls += 1
        kw = {"align_corners": False} if self.mode == "bicubic" else {}
        return F.interpolate(x.mean(1, keepdim=True), scale_factor=self.scale, mode=self.mode, **kw)


class ThresholdNet(torch.nn.Module):
    """Logits that are positive where the reflectance is above ``level``."""

    def __init__(self, level: float) -> None:
        super().__init__()
        self.level = level

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.level) * 40.0





def smooth_dn(h=40, w=52, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = 2000 + 800 * np.sin(x / 5.0) * np.cos(y / 7.0) + rng.normal(0, 60, (h, w))
    return base.astype(np.uint16)


def leftovers(folder: Path):
    return sorted(p.name for p in folder.iterdir() if "partial" in p.name or p.name.startswith("."))


def card_for(**fields):
    """A real card with this file's test units: model = (reflectance - 0.05) / 0.5."""
    return make_card(**{"normalization": {"offset": 0.05, "scale": 0.5}, **fields})


def model(frames=1, mode="nearest", **card):
    return MeanUpsampler(frames, mode=mode), card_for(frames=frames, **card)


# --------------------------------------------------------------------------- blending, no seams


def test_constant_in_constant_out_across_tiles(tmp_path):
    lr = write_geotiff(tmp_path / "lr.tif", np.full((40, 52), 0.3125, np.float32))
    seen = []
    res = super_resolve([lr], tmp_path / "sr.tif", model(mode="bicubic"), progress=lambda f, m: seen.append(m), options=SuperResolveOptions(tile=16, overlap=3))
    tiles = [m for m in seen if "tile" in m]
    assert tiles[-1].endswith("/20")  # 4 x 5 tiles: several tiles in both directions
    with rasterio.open(res.path) as ds:
        out = ds.read(1)
    assert out.shape == (120, 156)
    np.testing.assert_allclose(out, 0.3125, atol=1e-6)


def test_tiled_nearest_is_exact_and_bicubic_matches_untiled(tmp_path):
    dn = smooth_dn()
    lr = write_geotiff(tmp_path / "lr.tif", dn)
    res = super_resolve([lr], tmp_path / "near.tif", model(), options=SuperResolveOptions(tile=16, overlap=2))
    with rasterio.open(res.path) as ds:
        near = ds.read(1)
    np.testing.assert_array_equal(near, np.repeat(np.repeat(dn, 3, 0), 3, 1))

    res = super_resolve([lr], tmp_path / "cubic.tif", model(mode="bicubic"), options=SuperResolveOptions(tile=20, overlap=4))
    with rasterio.open(res.path) as ds:
        tiled = ds.read(1).astype(np.float64)
    whole = F.interpolate(torch.from_numpy(dn.astype(np.float32))[None, None], scale_factor=3, mode="bicubic",
                          align_corners=False)[0, 0].numpy()
    inner = (slice(6, -6), slice(6, -6))  # the model's own border handling differs from our reflect padding
    err = np.abs(tiled[inner] - whole[inner])
    # A seam would show as errors of the order of the local contrast (hundreds of DN).
    assert err.max() <= 12, err.max()
    assert err.mean() < 1.0


class DarkUpsampler(MeanUpsampler):
    """The mean upsampler, a constant 0.2 (normalized units) too dark: what a cL1-only network may learn."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) - 0.2


def test_anchor_restores_the_revisits_brightness_and_off_keeps_the_raw_output(tmp_path):
    dn = smooth_dn(48, 60)
    nodata_dn = dn.copy()
    nodata_dn[:10, :12] = 0  # nodata corner: it must not enter the offsets
    lr = write_geotiff(tmp_path / "lr.tif", nodata_dn, nodata=0)
    dark = (DarkUpsampler(1, mode="bicubic"), card_for(frames=1))  # card scale 0.5: 0.2 -> 0.1 reflectance
    res = super_resolve([lr], tmp_path / "anchored.tif", dark, options=SuperResolveOptions(tile=16, overlap=4))
    raw = super_resolve([lr], tmp_path / "raw.tif", dark, options=SuperResolveOptions(tile=16, overlap=4, anchor=False))
    truth = np.repeat(np.repeat(dn.astype(np.float64), 3, 0), 3, 1)
    with rasterio.open(res.path) as a, rasterio.open(raw.path) as r:
        anchored, rawv = a.read(1).astype(np.float64), r.read(1).astype(np.float64)
        assert a.tags()["SR_ANCHOR"].startswith("revisit mean") and r.tags()["SR_ANCHOR"].startswith("none")
    ok = np.repeat(np.repeat(nodata_dn > 0, 3, 0), 3, 1)
    assert abs((rawv[ok] - truth[ok]).mean() + 1000.0) < 15  # 0.1 reflectance = 1000 DN too dark
    assert abs((anchored[ok] - truth[ok]).mean()) < 15
    assert (anchored[~ok] == 0).all()  # nodata stays nodata
    note = [m for m in res.messages if m.startswith("brightness anchored")]
    assert note and "-0.0" not in note[0] and "+0.1" in note[0] and "--no-anchor" in note[0]
    assert not [m for m in raw.messages if m.startswith("brightness anchored")]


# --------------------------------------------------------------------------- georeferencing, nodata, tags


def test_output_georeferenced_to_the_pixel_with_tags_and_overviews(tmp_path):
    lr = write_geotiff(tmp_path / "lr.tif", smooth_dn(90, 100))
    res = super_resolve([lr], tmp_path / "sr.tif", model(), options=SuperResolveOptions(tile=32, overlap=4))
    with rasterio.open(lr) as a, rasterio.open(res.path) as b:
        assert b.crs == a.crs
        assert b.width == 3 * a.width and b.height == 3 * a.height
        np.testing.assert_allclose(b.bounds, a.bounds, atol=1e-6)
        assert b.res == pytest.approx((a.res[0] / 3, a.res[1] / 3))
        assert b.dtypes[0] == "uint16"
        prof = b.profile
        assert prof["tiled"] and prof["blockxsize"] == 512 and prof["compress"] == "deflate"
        assert b.overviews(1) == [2]
        tags = b.tags()
        assert json.loads(tags["SR_INPUTS"]) == [str(lr)]
        assert json.loads(tags["SR_FRAMES_USED"]) == res.frames_used == ["lr.tif:band 1"]
        assert tags["SR_CHECKPOINT"].startswith("in-memory")
    assert leftovers(tmp_path) == []


def test_nodata_carried_and_chosen(tmp_path):
    dn = smooth_dn()
    dn[10:14, 20:30] = 0
    lr = write_geotiff(tmp_path / "lr.tif", dn, nodata=0)
    res = super_resolve([lr], tmp_path / "sr.tif", model(), options=SuperResolveOptions(tile=16, overlap=2))
    with rasterio.open(res.path) as ds:
        out = ds.read(1)
        assert ds.nodata == 0
    hole = np.zeros((120, 156), bool)
    hole[30:42, 60:90] = True
    assert (out[hole] == 0).all() and (out[~hole] > 0).all()

    # float input without nodata but with NaN: NaN is picked as nodata and the hole stays nodata
    refl = (dn / 1e4).astype(np.float32)
    refl[dn == 0] = np.nan
    lr2 = write_geotiff(tmp_path / "lr2.tif", refl)
    res = super_resolve([lr2], tmp_path / "sr2.tif", model(), options=SuperResolveOptions(tile=16, overlap=2))
    with rasterio.open(res.path) as ds:
        out = ds.read(1)
        assert np.isnan(ds.nodata)
    assert np.isnan(out[hole]).all() and np.isfinite(out[~hole]).all()
    assert any("nodata" in m for m in res.messages)


def test_extent_processes_a_window_snapped_to_the_grid(tmp_path):
    lr = write_geotiff(tmp_path / "lr.tif", smooth_dn())
    x0, y0 = ORIGIN
    ext = (x0 + 104.0, y0 - 296.0, x0 + 301.0, y0 - 95.0)  # not on pixel edges: snapped outward
    res = super_resolve([lr], tmp_path / "sr.tif", model(), options=SuperResolveOptions(tile=16, overlap=2, extent=ext))
    with rasterio.open(res.path) as ds:
        np.testing.assert_allclose(ds.bounds, (x0 + 100, y0 - 300, x0 + 310, y0 - 90), atol=1e-6)
        out = ds.read(1)
    dn = smooth_dn()
    np.testing.assert_array_equal(out, np.repeat(np.repeat(dn[9:30, 10:31], 3, 0), 3, 1))


# --------------------------------------------------------------------------- MISR


def test_misr_half_pixel_shift_is_resampled_with_a_message(tmp_path):
    dn = smooth_dn()
    a = write_geotiff(tmp_path / "a.tif", dn)
    b = write_geotiff(tmp_path / "b.tif", dn, transform=from_origin(ORIGIN[0] + 5, ORIGIN[1], 10, 10))
    res = super_resolve([a, b], tmp_path / "sr.tif", model(frames=2), options=SuperResolveOptions(tile=16, overlap=2))
    assert any("b.tif" in m and "bilinear" in m for m in res.messages)
    assert res.frames_used == ["a.tif:band 1", "b.tif:band 1"] or res.frames_used == ["b.tif:band 1", "a.tif:band 1"]
    with rasterio.open(res.path) as ds:
        out = ds.read(1).astype(float)
        np.testing.assert_allclose(ds.bounds, rasterio.open(a).bounds, atol=1e-6)
    # the mean of two copies half a pixel apart stays close to the original
    assert np.median(np.abs(out - np.repeat(np.repeat(dn, 3, 0), 3, 1))) < 150


def test_misr_revisit_in_another_utm_zone_is_warped(tmp_path):
    dn = smooth_dn()
    a = write_geotiff(tmp_path / "a.tif", dn)
    # the same area in the neighbouring zone (EPSG:32634)
    with rasterio.open(a) as src:
        tr, w, h = calculate_default_transform(src.crs, "EPSG:32634", src.width, src.height, *src.bounds)
        warped = np.zeros((h, w), np.uint16)
        reproject(dn, warped, src_transform=src.transform, src_crs=src.crs, dst_transform=tr,
                  dst_crs="EPSG:32634", resampling=Resampling.bilinear, dst_nodata=0)
    b = write_geotiff(tmp_path / "b.tif", warped, transform=tr, crs="EPSG:32634", nodata=0)
    res = super_resolve([a, b], tmp_path / "sr.tif", model(frames=2), options=SuperResolveOptions(tile=16, overlap=2))
    assert any("b.tif" in m and "EPSG:32634" in m and "bilinear" in m for m in res.messages)
    with rasterio.open(res.path) as ds:
        assert ds.crs.to_epsg() == 32633
        out = ds.read(1)
    assert (out > 0).mean() > 0.95


def test_frames_fitted_to_t_clearest_chosen(tmp_path):
    dn = smooth_dn()
    paths = []
    for i in range(5):
        d = dn.copy()
        if i in (1, 3):  # cloudy revisits: mostly nodata
            d[: 30 + i] = 0
        paths.append(write_geotiff(tmp_path / f"r{i}.tif", d, nodata=0))
    res = super_resolve(paths, tmp_path / "sr.tif", model(frames=3), options=SuperResolveOptions(tile=16, overlap=2))
    assert sorted(res.frames_used) == ["r0.tif:band 1", "r2.tif:band 1", "r4.tif:band 1"]
    assert any("3 clearest of 5" in m for m in res.messages)


def test_frames_fitted_to_t_repeated_when_too_few(tmp_path):
    dn = smooth_dn()
    a, b = write_geotiff(tmp_path / "a.tif", dn), write_geotiff(tmp_path / "b.tif", dn)
    res = super_resolve([a, b], tmp_path / "sr.tif", model(frames=5), options=SuperResolveOptions(tile=16, overlap=2))
    assert len(res.frames_used) == 5 and set(res.frames_used) == {"a.tif:band 1", "b.tif:band 1"}
    assert any("repeated" in m for m in res.messages)


def test_cloudy_first_revisit_still_sets_grid_and_units(tmp_path):
    dn = smooth_dn()
    cloudy = write_geotiff(tmp_path / "cloudy.tif", np.zeros_like(dn), nodata=0)
    clear = write_geotiff(tmp_path / "clear.tif", dn, nodata=0)
    res = super_resolve([cloudy, clear], tmp_path / "sr.tif", model(frames=1), options=SuperResolveOptions(tile=16, overlap=2))
    assert res.frames_used == ["clear.tif:band 1"]
    with rasterio.open(res.path) as ds:
        np.testing.assert_array_equal(ds.read(1), np.repeat(np.repeat(dn, 3, 0), 3, 1))  # DN in, DN out


def test_one_raster_whose_bands_are_dates(tmp_path):
    stack = np.stack([smooth_dn(seed=s) for s in range(3)])
    lr = write_geotiff(tmp_path / "stack.tif", stack, descriptions=["B8_2023-05-01", "B8_2023-05-11", "B8_2023-05-21"])
    res = super_resolve([lr], tmp_path / "sr.tif", model(frames=3), options=SuperResolveOptions(band="B8", tile=24, overlap=4))
    assert sorted(res.frames_used) == [f"stack.tif:band {i} (B8_2023-05-{d})" for i, d in ((1, "01"), (2, "11"), (3, "21"))]
    with rasterio.open(res.path) as ds:
        out = ds.read(1).astype(float)
    expected = np.repeat(np.repeat(stack.astype(float).mean(0), 3, 0), 3, 1)
    assert np.abs(out - expected).max() <= 1.0


def test_select_frames_rules():
    assert select_frames([0.9, 0.2, 1.0, 0.5], 2)[0] == [2, 0]
    chosen, note = select_frames([0.5, 0.0, 0.9], 5)
    assert chosen == [2, 0, 2, 0, 2] and "repeated" in note and "left out" in note
    with pytest.raises(InputError):
        select_frames([0.0, 0.0], 3)


# --------------------------------------------------------------------------- trust, cancel


def test_trust_map_on_the_sr_grid(tmp_path):
    dn = smooth_dn()
    lr = write_geotiff(tmp_path / "lr.tif", dn)
    res = super_resolve([lr], tmp_path / "sr.tif", model(), options=SuperResolveOptions(tile=16, overlap=2, trust=True))
    assert res.trust_path == tmp_path / "sr_trust.tif"
    with rasterio.open(res.path) as a, rasterio.open(res.trust_path) as t:
        assert t.transform.almost_equals(a.transform) and t.shape == a.shape and t.crs == a.crs
        trust = t.read(1)
    assert np.isfinite(trust).all() and (trust >= 0).all()
    assert 0 < trust.mean() < 0.02  # a blurred nearest upsampling is close to, not equal to, the LR frame

    flat = write_geotiff(tmp_path / "flat.tif", np.full((40, 52), 2500, np.uint16))
    res = super_resolve([flat], tmp_path / "flat_sr.tif", model(), options=SuperResolveOptions(tile=16, overlap=2, trust=True))
    with rasterio.open(res.trust_path) as t:
        assert np.abs(t.read(1)).max() < 1e-5


def test_cancel_halfway_leaves_nothing(tmp_path):
    lr = write_geotiff(tmp_path / "lr.tif", smooth_dn())
    token = CancelToken()
    net, card = model()

    def progress(fraction, message):
        if fraction > 0.4:
            token.cancel()

    with pytest.raises(Cancelled):
        super_resolve([lr], tmp_path / "sr.tif", (net, card), progress=progress, cancel=token, options=SuperResolveOptions(tile=16, overlap=2, trust=True))
    assert 0 < net.calls < 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr.tif"]


# --------------------------------------------------------------------------- segmentation


def _buildings_raster(tmp_path: Path) -> Path:
    img = np.full((70, 80), 2000, np.uint16)
    img[10:25, 12:30] = 8000
    img[40:60, 50:72] = 8000
    img[0:3, 0:80] = 0
    return write_geotiff(tmp_path / "hr.tif", img, transform=from_origin(*ORIGIN, 10 / 3, 10 / 3), nodata=0)


def test_segment_writes_probabilities_mask_and_vectors(tmp_path):
    hr = _buildings_raster(tmp_path)
    b = (ThresholdNet(0.5), card_for(task="segmentation", target="buildings", frames=1, scale=1,
                                 normalization={"offset": 0.0, "scale": 1.0}))
    r = (ThresholdNet(0.9), card_for(task="segmentation", target="roads", frames=1, scale=1,
                                 normalization={"offset": 0.0, "scale": 1.0}))
    res = segment(hr, [b, r], out_prob=tmp_path / "prob.tif", out_mask=tmp_path / "mask.tif", vectors=tmp_path / "out.gpkg", options=SegmentOptions(tile=32, overlap=4))
    assert res.targets == ["buildings", "roads"]
    with rasterio.open(hr) as src, rasterio.open(res.mask_path) as m, rasterio.open(res.prob_path) as p:
        for ds in (m, p):
            assert ds.crs == src.crs and ds.transform.almost_equals(src.transform) and ds.shape == src.shape
        assert m.descriptions == ("buildings", "roads") and m.dtypes[0] == "uint8" and p.dtypes[0] == "float32"
        mask, prob = m.read(), p.read()
    expected = np.zeros((70, 80), np.uint8)
    expected[10:25, 12:30] = 1
    expected[40:60, 50:72] = 1
    expected[0:3] = 255
    np.testing.assert_array_equal(mask[0], expected)
    assert (mask[1][3:] == 0).all()
    assert np.isnan(prob[:, 0:3]).all() and prob[0, 12, 14] > 0.99 and prob[0, 30, 5] < 0.01
    assert res.polygons == {"buildings": 2, "roads": 0}

    from osgeo import ogr

    vds = ogr.Open(str(res.vectors_path))
    assert sorted(vds.GetLayer(i).GetName() for i in range(vds.GetLayerCount())) == ["buildings", "roads"]
    layer = vds.GetLayerByName("buildings")
    envs = sorted(f.GetGeometryRef().GetEnvelope() for f in layer)
    px = 10 / 3
    x0, y0 = ORIGIN
    np.testing.assert_allclose(envs[0], (x0 + 12 * px, x0 + 30 * px, y0 - 25 * px, y0 - 10 * px), atol=1e-6)
    assert layer.GetSpatialRef().GetAuthorityCode(None) == "32633"
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------------- real checkpoints and the CLI


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Tiny real networks of the zoo, saved as checkpoints (random weights: geometry, not quality)."""
    from core.models.zoo import ModelCard, build, save_checkpoint

    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    out = {}
    for key, net, fields_ in (
        ("rams", build("rams", preset="rams-tiny", frames=3), {}),
        ("hat", build("hat", preset="hat-tiny"), {}),
        ("buildings", build("unetpp", preset="unetpp-tiny"), {"target": "buildings"}),
    ):
        card = ModelCard.for_model(net, name=f"tiny {key}", normalization={"offset": 0.2, "scale": 0.1}, **fields_)
        save_checkpoint(folder / f"{key}.safetensors", net, card)
        out[key] = folder / f"{key}.safetensors"
    return out


def test_real_rams_and_hat_checkpoints(tmp_path, checkpoints):
    from core.models.zoo import file_sha256

    dn = smooth_dn()
    a, b = write_geotiff(tmp_path / "a.tif", dn), write_geotiff(tmp_path / "b.tif", smooth_dn(seed=1))
    res = super_resolve([a, b], tmp_path / "rams.tif", checkpoints["rams"], options=SuperResolveOptions(tile=32, overlap=4))  # 2 x 2 tiles
    assert len(res.frames_used) == 3 and any("repeated" in m for m in res.messages)
    res_h = super_resolve([a], tmp_path / "hat.tif", checkpoints["hat"], options=SuperResolveOptions(tile=64, overlap=4))
    for r, key in ((res, "rams"), (res_h, "hat")):
        with rasterio.open(r.path) as ds, rasterio.open(a) as src:
            assert ds.shape == (120, 156) and ds.crs == src.crs
            np.testing.assert_allclose(ds.bounds, src.bounds, atol=1e-6)
            assert ds.tags()["SR_CHECKPOINT_SHA256"] == file_sha256(checkpoints[key]) == r.checkpoint_sha256
            assert ds.tags()["SR_MODEL"] == f"tiny {key}"
            out = ds.read(1)
        assert out.dtype == np.uint16 and (out > 0).all()


def test_real_segmentation_checkpoint(tmp_path, checkpoints):
    hr = _buildings_raster(tmp_path)
    res = segment(hr, checkpoints["buildings"], out_prob=tmp_path / "p.tif", out_mask=tmp_path / "m.tif", options=SegmentOptions(tile=96, overlap=8))
    with rasterio.open(res.prob_path) as p, rasterio.open(res.mask_path) as m:
        prob, mask = p.read(1), m.read(1)
        assert p.descriptions == ("buildings",)
    valid = np.isfinite(prob)
    assert valid[3:].all() and not valid[:3].any()
    assert ((prob[valid] >= 0) & (prob[valid] <= 1)).all()
    np.testing.assert_array_equal(mask[valid], (prob[valid] > 0.5).astype(np.uint8))


def test_cli_predict_and_segment(tmp_path, checkpoints, capsys):
    from core.cli.main import main

    lr = write_geotiff(tmp_path / "lr.tif", smooth_dn())
    rc = main(["predict", "--checkpoint", str(checkpoints["hat"]), "--inputs", str(lr), "--band", "1",
               "--out", str(tmp_path / "sr.tif"), "--tile", "64", "--overlap", "4", "--trust"])
    assert rc == 0 and (tmp_path / "sr.tif").is_file() and (tmp_path / "sr_trust.tif").is_file()
    assert "wrote" in capsys.readouterr().out
    rc = main(["segment", "--checkpoint", str(checkpoints["buildings"]), "--input", str(tmp_path / "sr.tif"),
               "--out", str(tmp_path / "mask.tif"), "--prob", str(tmp_path / "prob.tif"),
               "--vectors", str(tmp_path / "v.gpkg"), "--tile", "192", "--overlap", "8"])
    assert rc == 0 and all((tmp_path / n).is_file() for n in ("mask.tif", "prob.tif", "v.gpkg"))
    rc = main(["predict", "--checkpoint", str(checkpoints["hat"]), "--inputs", str(lr), "--band", "B8",
               "--out", str(tmp_path / "x.tif")])
    assert rc == 1 and "no band named 'B8'" in capsys.readouterr().err
    rc = main(["predict", "--checkpoint", str(checkpoints["hat"]), "--inputs", str(lr),
               "--out", str(tmp_path / "nowhere" / "x.tif")])
    assert rc == 1 and "does not exist" in capsys.readouterr().err
