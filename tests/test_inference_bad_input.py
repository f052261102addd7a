"""Bad input to georeferenced inference: a clear message naming the problem, and no partial file."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from rasterio.transform import from_origin

from core.api import segment, super_resolve
from core.io import writer as raster_io
from core.jobs import InputError, OutputError
from core.options import SuperResolveOptions
from tests.helpers import make_card, write_geotiff

T0 = from_origin(500000.0, 6000000.0, 10, 10)


class MeanUpsampler(torch.nn.Module):
    def __init__(self, frames: int = 1, scale: int = 3) -> None:
        super().__init__()
        self.frames, self.scale, self.calls = frames, scale, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return F.interpolate(x.mean(1, keepdim=True), scale_factor=self.scale, mode="nearest")





def dn(h=40, w=52) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return (2000 + 500 * np.sin(x / 4.0) + 300 * np.cos(y / 6.0)).astype(np.uint16)


def files(folder: Path):
    return sorted(p.name for p in folder.iterdir())


def pair(frames=1):
    return MeanUpsampler(frames), make_card(frames=frames)


def test_geographic_crs_is_warped_to_its_utm_zone(tmp_path):
    # 40 x 52 pixels of ~10 m in degrees near 15E, 52N (UTM zone 33N)
    lr = write_geotiff(tmp_path / "geo.tif", dn(), transform=from_origin(15.0, 52.0, 0.000146, 0.00009), crs="EPSG:4326")
    res = super_resolve([lr], tmp_path / "sr.tif", pair(), options=SuperResolveOptions(tile=16, overlap=2))
    msg = " ".join(res.messages)
    assert "geographic" in msg and "UTM zone 33N" in msg and "EPSG:32633" in msg and "bilinear" in msg
    with rasterio.open(res.path) as ds:
        assert ds.crs.to_epsg() == 32633
        assert ds.res[0] == pytest.approx(ds.res[1], rel=1e-6) and 2.5 < ds.res[0] < 4.5
        assert (ds.read(1) > 0).mean() > 0.5


def test_raster_without_crs_is_refused(tmp_path):
    lr = write_geotiff(tmp_path / "nocrs.tif", dn(), crs=None)
    with pytest.raises(InputError, match=r"nocrs\.tif.*no coordinate reference system"):
        super_resolve([lr], tmp_path / "sr.tif", pair(), options=SuperResolveOptions(tile=16, overlap=2))
    assert files(tmp_path) == ["nocrs.tif"]


def test_missing_band_lists_the_available_ones(tmp_path):
    lr = write_geotiff(tmp_path / "bands.tif", np.stack([dn(), dn()]), descriptions=["B4", "B8"])
    with pytest.raises(InputError, match=r"bands\.tif.*band 3 does not exist.*1 'B4', 2 'B8'"):
        super_resolve([lr], tmp_path / "sr.tif", pair(), options=SuperResolveOptions(band=3, tile=16, overlap=2))
    with pytest.raises(InputError, match=r"no band named 'B11'.*1 'B4', 2 'B8'"):
        super_resolve([lr], tmp_path / "sr.tif", pair(), options=SuperResolveOptions(band="B11", tile=16, overlap=2))
    res = super_resolve([lr], tmp_path / "sr.tif", pair(), options=SuperResolveOptions(band="b8", tile=16, overlap=2))
    assert res.frames_used == ["bands.tif:band 2 (B8)"]


def test_input_smaller_than_one_tile_is_padded_and_works(tmp_path):
    small = dn(5, 7)
    lr = write_geotiff(tmp_path / "small.tif", small)
    res = super_resolve([lr], tmp_path / "sr.tif", pair(), options=SuperResolveOptions(tile=64, overlap=8))
    with rasterio.open(res.path) as ds:
        np.testing.assert_array_equal(ds.read(1), np.repeat(np.repeat(small, 3, 0), 3, 1))
    one = write_geotiff(tmp_path / "one.tif", np.full((1, 1), 1234, np.uint16))
    res = super_resolve([one], tmp_path / "sr1.tif", pair(), options=SuperResolveOptions(tile=16, overlap=4))
    with rasterio.open(res.path) as ds:
        assert (ds.read(1) == 1234).all() and ds.shape == (3, 3)


def test_all_nodata_is_refused(tmp_path):
    lr = write_geotiff(tmp_path / "empty.tif", np.zeros((40, 52), np.uint16), nodata=0)
    net, card = pair()
    with pytest.raises(InputError, match=r"no valid pixels"):
        super_resolve([lr], tmp_path / "sr.tif", (net, card), options=SuperResolveOptions(tile=16, overlap=2))
    assert net.calls == 0 and files(tmp_path) == ["empty.tif"]


def test_unwritable_output_is_refused_before_computing(tmp_path):
    lr = write_geotiff(tmp_path / "lr.tif", dn())
    net, card = pair()
    with pytest.raises(OutputError, match=r"does not exist"):
        super_resolve([lr], tmp_path / "no" / "such" / "sr.tif", (net, card), options=SuperResolveOptions(tile=16, overlap=2))
    with pytest.raises(OutputError, match=r"is a folder"):
        super_resolve([lr], tmp_path, (net, card), options=SuperResolveOptions(tile=16, overlap=2))
    with pytest.raises(OutputError, match=r"also an input"):
        super_resolve([lr], lr, (net, card), options=SuperResolveOptions(tile=16, overlap=2))
    assert net.calls == 0 and files(tmp_path) == ["lr.tif"]


def test_not_a_raster_and_missing_file(tmp_path):
    txt = tmp_path / "notes.tif"
    txt.write_text("not a raster")
    with pytest.raises(InputError, match=r"notes\.tif: not a raster"):
        super_resolve([txt], tmp_path / "sr.tif", pair(), options=SuperResolveOptions(tile=16, overlap=2))
    with pytest.raises(InputError, match=r"missing\.tif: file not found"):
        super_resolve([tmp_path / "missing.tif"], tmp_path / "sr.tif", pair(), options=SuperResolveOptions(tile=16, overlap=2))


def test_revisit_that_does_not_overlap_is_refused(tmp_path):
    a = write_geotiff(tmp_path / "a.tif", dn())
    b = write_geotiff(tmp_path / "far.tif", dn(), transform=from_origin(600000.0, 6000000.0, 10, 10))
    with pytest.raises(InputError, match=r"far\.tif: does not overlap the first input a\.tif"):
        super_resolve([a, b], tmp_path / "sr.tif", pair(2), options=SuperResolveOptions(tile=16, overlap=2))
    assert files(tmp_path) == ["a.tif", "far.tif"]


def test_extent_outside_the_raster_is_refused(tmp_path):
    lr = write_geotiff(tmp_path / "lr.tif", dn())
    with pytest.raises(InputError, match=r"does not overlap the raster"):
        super_resolve([lr], tmp_path / "sr.tif", pair(), options=SuperResolveOptions(extent=(0, 0, 10, 10), tile=16, overlap=2))


def test_wrong_kind_of_model_and_bad_tiling_are_refused(tmp_path):
    lr = write_geotiff(tmp_path / "lr.tif", dn())
    seg = (MeanUpsampler(), make_card(task="segmentation", target="buildings"))
    with pytest.raises(InputError, match=r"segmentation model, not a super-resolution model"):
        super_resolve([lr], tmp_path / "sr.tif", seg)
    with pytest.raises(InputError, match=r"not a segmentation model"):
        segment(lr, pair(), out_mask=tmp_path / "m.tif")
    with pytest.raises(InputError, match=r"overlap 8 must be"):
        super_resolve([lr], tmp_path / "sr.tif", pair(), options=SuperResolveOptions(tile=16, overlap=8))
    assert files(tmp_path) == ["lr.tif"]


def test_disk_full_halfway_leaves_no_partial_file(tmp_path, monkeypatch):
    lr = write_geotiff(tmp_path / "lr.tif", dn(200, 30))  # 600 output rows: two block rows, two writes
    calls = []
    original = raster_io.GeoTiffSink.write_window

    def full_disk(self, window, data):
        calls.append(window)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        original(self, window, data)

    monkeypatch.setattr(raster_io.GeoTiffSink, "write_window", full_disk)
    with pytest.raises(OutputError, match=r"sr\.tif: writing failed: the disk is full"):
        super_resolve([lr], tmp_path / "sr.tif", pair(), options=SuperResolveOptions(tile=32, overlap=4))
    assert len(calls) == 2
    assert files(tmp_path) == ["lr.tif"]


# --------------------------------------------------------------------------- input checks inside the jobs


def _textured(seed: int, h=40, w=52) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.05, 0.4, (h, w)).astype(np.float32)


def test_bands_of_one_date_given_as_revisits_are_refused_before_any_work(tmp_path):
    base = _textured(0)
    bands = {"B02": 0.3 * base + 0.02, "B03": 0.35 * base + 0.03, "B04": 0.4 * base + 0.02,
             "B08": 0.5 - 0.9 * base}  # NIR of vegetation runs against the visible bands
    paths = [write_geotiff(tmp_path / f"T34UDA_20230512T095559_{b}_10m.tif", (v * 1e4).astype(np.uint16),
                           descriptions=[b]) for b, v in bands.items()]
    net, card = pair(4)
    with pytest.raises(InputError, match=r"(?i)band"):
        super_resolve(paths, tmp_path / "sr.tif", (net, card), options=SuperResolveOptions(tile=16, overlap=2))
    assert net.calls == 0 and not (tmp_path / "sr.tif").exists()


def test_a_band_the_model_was_not_trained_on_is_refused_for_multi_image_unless_forced(tmp_path):
    paths = [write_geotiff(tmp_path / f"S2B_MSIL2A_2023051{d}_B04.tif", (_textured(0) * 1e4 + d).astype(np.uint16),
                           descriptions=["B04"]) for d in (1, 2)]
    with pytest.raises(InputError, match="B04"):
        super_resolve(paths, tmp_path / "sr.tif", pair(2), options=SuperResolveOptions(tile=16, overlap=2))
    res = super_resolve(paths, tmp_path / "sr.tif", pair(2), options=SuperResolveOptions(tile=16, overlap=2,
                                                                                         force=True))
    assert res.path.exists() and any("B04" in m for m in res.messages)


def test_a_super_resolved_output_fed_back_in_is_refused(tmp_path):
    lr = write_geotiff(tmp_path / "lr.tif", dn())
    first = super_resolve([lr], tmp_path / "sr.tif", pair(), options=SuperResolveOptions(tile=16, overlap=2))
    with pytest.raises(InputError, match=r"super-resolved output \(3\.33 m\)"):
        super_resolve([first.path], tmp_path / "sr2.tif", pair(), options=SuperResolveOptions(tile=16, overlap=2))
