"""Trust map on real GeoTIFFs of a synthetic scene: consistent outputs stay supported, invented detail lights up.

The scene's LR revisits are simulated from its HR image by the S-2 operator
(PSF, sub-pixel shifts up to one LR pixel, 3x3 area mean, noise), so the HR
image is an SR output that is exactly consistent with them; pasting bright
buildings, painting a road or stamping a 3-px checkerboard into it *after* the
simulation makes an output that invents detail no revisit saw. The map is on
the SR grid (each 10 m value over its 3x3 block); the classes go to a second
file.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from affine import Affine

from core.api import super_resolve
from core.data.scene import write_scene
from core.data.synthetic.towns import make_scene
from core.inference.trust import (
    BAND_DESCRIPTIONS,
    CLASS_DESCRIPTION,
    read_summary,
    trust_map,
)
from core.inference.trust_classes import CLASS_COLOURS
from core.inference.trust_consistency import masked_median, masked_std
from core.io.geo import compose
from core.io.writer import GeoTiffSink
from core.jobs import Cancelled, CancelToken, InputError, OutputError
from core.options import SuperResolveOptions
from tests.helpers import make_card

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SCALE = 3


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A 192 px HR scene (64 px LR) with 9 shifted revisits, written as GeoTIFFs (uint16 DN, nodata 0)."""
    sc = make_scene(size_hr=192, frames=9, seed=3)
    folder = write_scene(sc, tmp_path_factory.mktemp("trust") / "scene")
    return {"scene": sc, "hr": folder / "hr.tif", "lr": sorted((folder / "lr").glob("*.tif"))}


def _write_like(src: Path, dst: Path, data: np.ndarray, **changes) -> Path:
    with rasterio.open(src) as ds:
        profile = ds.profile
    profile.update(changes)
    with rasterio.open(dst, "w", **profile) as ds:
        ds.write(data if data.ndim == 3 else data[None])
    return dst


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def _planted(scene, path: Path, seed: int = 0):
    """HR image with 8 bright 'buildings' pasted after the LR simulation; returns (path, HR mask of them)."""
    hr = _read(scene["hr"])
    mask = np.zeros(hr.shape, bool)
    rng = np.random.default_rng(seed)
    for _ in range(8):
        y, x = rng.integers(12, 168, 2)
        h, w = rng.integers(6, 13, 2)
        mask[y : y + h, x : x + w] = True
    out = np.where(mask, np.uint16(6000), hr)  # reflectance 0.6: a bright roof
    return _write_like(scene["hr"], path, out), mask


def _read_band(path: Path, band: int) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(band)


def _lr_blocks(mask: np.ndarray) -> np.ndarray:
    """SR pixels whose whole 10 m pixel is at least half inside ``mask`` (the map's resolution for bands 1-3)."""
    h, w = mask.shape
    lr = mask.reshape(h // SCALE, SCALE, w // SCALE, SCALE).mean(axis=(1, 3)) > 0.5
    return np.repeat(np.repeat(lr, SCALE, 0), SCALE, 1)


# --------------------------------------------------------------------------- what the map says


def test_consistent_output_is_supported_and_recovers_the_shifts(scene, tmp_path):
    s = trust_map(scene["hr"], scene["lr"], out_path=tmp_path / "t.tif")
    # noise of the simulated revisits is ~0.002 reflectance: the output agrees with S-2 to that level
    assert s.mean_disagreement < 0.003 and s.p95_disagreement < 0.006
    assert s.flagged_share == 0.0
    assert s.mean_spread is not None and s.mean_spread < 0.004
    true = np.array(scene["scene"].extra["shifts_hr"])
    np.testing.assert_allclose(np.array(s.shifts_hr), true, atol=0.1)  # HR px; the largest true shift is ~3
    assert np.abs(s.offsets).max() < 0.001
    assert s.valid_pixels == 192 * 192 and s.scale == SCALE and len(s.frames) == 9
    # nothing invented: no pixel is likely invented; the HR image has no 3-px grid
    assert s.invented_share == 0.0 and s.supported_share > 0.97, s.class_shares
    assert s.median_grid_score < 1.5
    assert sum(s.class_shares.values()) == pytest.approx(1.0)
    # no checkpoint recorded: no instability band, and the messages say why
    assert s.mean_instability is None and s.augmentations == []
    assert any("instability (band 4) not computed" in m for m in s.messages)
    assert np.isnan(_read_band(s.path, 4)).all()


def test_planted_buildings_light_up(scene, tmp_path):
    sr, mask = _planted(scene, tmp_path / "planted.tif")
    s = trust_map(sr, scene["lr"])
    dis, spread, beyond = (_read_band(s.path, b) for b in (1, 2, 3))
    inside = _lr_blocks(mask)
    assert dis[inside].mean() / dis[~inside].mean() > 20, (dis[inside].mean(), dis[~inside].mean())  # measured ~80
    assert np.median(dis[inside]) > 0.1  # in reflectance: most of the pasted 0.6 - background
    # the revisits agree among themselves there: the disagreement, not the spread, dominates
    assert np.median(spread[inside]) < 0.5 * np.median(dis[inside])
    # and a plain bicubic upsampling of the revisits fits them much better than this output
    assert np.median(beyond[inside]) > 0.05
    cls = _read_band(s.class_path, 1)
    assert (cls[inside] == 2).mean() > 0.9
    assert s.flagged_share > 0.5 * inside.mean()
    # without the planted objects the same pixels are quiet
    clean = trust_map(scene["hr"], scene["lr"], out_path=tmp_path / "clean_trust.tif")
    assert _read_band(clean.path, 1)[inside].mean() < dis[inside].mean() / 20
    assert (_read_band(clean.class_path, 1)[inside] == 0).mean() > 0.95
    assert s.mean_disagreement > 5 * clean.mean_disagreement


def test_checkerboard_and_painted_road_are_likely_invented_clean_land_is_supported(scene, tmp_path):
    """The issue's test: a stamped 3-px checkerboard (invisible at 10 m) and a painted road (visible)."""
    hr = _read(scene["hr"]).astype(np.float64)
    yy, xx = np.indices(hr.shape)
    pattern = np.array([[1.0, -0.6, -0.4], [-0.8, 0.9, -0.1], [0.2, -0.5, 0.3]])
    pattern -= pattern.mean()
    pattern *= 300 / np.sqrt((pattern ** 2).mean())  # RMS 0.03 reflectance, zero mean over every 10 m pixel
    checker = np.zeros(hr.shape, bool)
    checker[24:84, 102:168] = True
    road = np.zeros(hr.shape, bool)
    road[141:144, 18:180] = True  # a 3-px (10 m) wide dark road across the scene
    out = hr.copy()
    out[checker] += pattern[yy % 3, xx % 3][checker]
    out[road] = 700
    sr = _write_like(scene["hr"], tmp_path / "invented.tif", np.clip(out, 1, 65535).astype(np.uint16))
    s = trust_map(sr, scene["lr"])
    cls = _read_band(s.class_path, 1)
    dis, amp, score = (_read_band(s.path, b) for b in (1, 6, 5))
    # the checkerboard averages out at 10 m: the comparison with the revisits cannot see it ...
    assert np.median(dis[checker]) < 0.004
    # ... the grid bands do: amplitude up to the stamped RMS (windows over the patch's edge see part of it),
    # score far above natural images (~1)
    assert amp[checker].max() == pytest.approx(0.03, rel=0.15) and np.median(amp[checker]) > 0.015
    assert np.median(score[checker]) > 10
    assert (cls[checker] == 2).mean() > 0.95
    assert (cls[road] == 2).mean() > 0.95
    far = np.ones(hr.shape, bool)
    far[0 : 84 + 30, 102 - 30 : 168 + 30] = False  # the grid windows are 36 px: they see it from 18 px away
    far[141 - 15 : 144 + 15] = False
    assert (cls[far] == 0).mean() > 0.97, np.bincount(cls[far].ravel())
    assert 0.0 < s.invented_share < 0.35


def test_a_cloud_in_two_revisits_raises_the_spread_not_the_disagreement(scene, tmp_path):
    """One of the two things the map must tell apart: the revisits disagree among themselves."""
    lr = []
    for i, p in enumerate(scene["lr"]):
        data = _read(p)
        if i in (2, 5):
            data = data.copy()
            data[20:36, 24:44] = np.minimum(data[20:36, 24:44].astype(np.int32) + 3000, 65535).astype(np.uint16)
        lr.append(_write_like(p, tmp_path / p.name, data))
    s = trust_map(scene["hr"], lr, out_path=tmp_path / "cloud_trust.tif")
    dis, spread = (_read_band(s.path, b) for b in (1, 2))
    cloud = np.zeros(dis.shape, bool)
    cloud[66:102, 78:126] = True  # inside the cloud (LR rows 22-34, cols 26-42), away from its edges
    assert dis[cloud].mean() < 2.5 * dis[~cloud].mean() < 0.01  # the median over 9 revisits ignores 2
    assert spread[cloud].mean() > 5 * spread[~cloud].mean()
    # S-2 disagrees with itself there: uncertain at most, never blamed on the output
    cls = _read_band(s.class_path, 1)
    assert (cls[cloud] == 2).mean() < 0.05 and (cls[cloud] >= 1).mean() > 0.5


def test_single_revisit_has_no_spread(scene, tmp_path):
    s = trust_map(scene["hr"], scene["lr"][:1], out_path=tmp_path / "one.tif")
    assert s.mean_spread is None and s.mean_disagreement < 0.003
    assert np.isnan(_read_band(s.path, 2)).all()


# --------------------------------------------------------------------------- the file


def test_file_grid_bands_nodata_and_summary(scene, tmp_path):
    hr = _read(scene["hr"]).copy()
    hr[0:9, 0:30] = 0  # SR nodata: LR rows 0-2, cols 0-9
    sr = _write_like(scene["hr"], tmp_path / "sr.tif", hr)
    lr = []
    for p in scene["lr"]:
        data = _read(p).copy()
        data[60:, 60:] = 0  # every revisit nodata there
        lr.append(_write_like(p, tmp_path / p.name, data))
    s = trust_map(sr, lr)
    assert s.path == tmp_path / "sr_trust.tif" and s.class_path == tmp_path / "sr_trust_class.tif"
    with rasterio.open(s.path) as t, rasterio.open(sr) as src:
        # documented grid: the SR output's own grid
        assert t.transform.almost_equals(src.transform) and t.crs == src.crs and t.shape == src.shape
        assert t.count == 6 and set(t.dtypes) == {"float32"}
        assert t.descriptions == BAND_DESCRIPTIONS
        assert np.isnan(t.nodata)
        assert t.profile["tiled"] and t.profile["compress"].lower() == "deflate"
        bands = t.read()
    with rasterio.open(s.class_path) as c, rasterio.open(sr) as src:
        assert c.transform.almost_equals(src.transform) and c.shape == src.shape
        assert c.count == 1 and c.dtypes == ("uint8",) and c.nodata == 255
        assert c.descriptions == (CLASS_DESCRIPTION,)
        assert c.colormap(1)[2][:3] == CLASS_COLOURS[2][:3]  # red: QGIS draws it styled
        cls = c.read(1)
    nodata = np.zeros(cls.shape, bool)
    nodata[0:9, 0:30] = True
    nodata[180:, 180:] = True
    assert np.isnan(bands[:, nodata]).all() and (cls[nodata] == 255).all()
    assert np.isfinite(bands[[0, 2, 4, 5]][:, ~nodata]).all() and (cls[~nodata] != 255).all()
    assert s.valid_pixels == int((~nodata).sum())
    # the stored summary is what was returned, and matches the files
    for stored in (read_summary(s.path), read_summary(s.class_path)):
        assert stored.mean_disagreement == pytest.approx(s.mean_disagreement)
        assert stored.shifts_hr == s.shifts_hr and stored.frames == s.frames
        assert stored.class_shares == pytest.approx(s.class_shares) and stored.class_path == s.class_path
    dis = bands[0]
    assert s.mean_disagreement == pytest.approx(float(np.nanmean(dis.astype(np.float64))), rel=1e-4)
    assert abs(s.p95_disagreement - np.nanpercentile(dis, 95)) <= 2e-4
    assert s.flagged_share == pytest.approx(float((dis[~nodata] > s.threshold).mean()))
    shares = np.bincount(cls[~nodata].ravel(), minlength=3)[:3] / (~nodata).sum()
    assert [s.supported_share, s.uncertain_share, s.invented_share] == pytest.approx(shares.tolist())


def test_summary_of_an_older_map_still_reads(scene, tmp_path):
    """A map written before the classes existed: its tags lack the new keys and hold none this one drops."""
    old = {"path": "x_trust.tif", "sr_path": "x.tif", "mean_disagreement": 0.01, "p95_disagreement": 0.02,
           "flagged_share": 0.1, "threshold": 0.02, "mean_spread": None, "valid_pixels": 10, "scale": 3,
           "frames": ["a"], "shifts_hr": [[0.0, 0.0]], "offsets": [0.0], "seconds": 1.0, "retired_key": 1}
    path = _write_like(scene["hr"], tmp_path / "old_trust.tif", _read(scene["hr"]))
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(TRUST_SUMMARY=json.dumps(old))
    s = read_summary(path)
    assert s.flagged_share == 0.1 and s.class_path is None and s.mean_instability is None
    assert s.class_shares == {"supported": 0.0, "uncertain": 0.0, "invented": 0.0}


def test_subwindow_output_sits_on_its_own_lr_window(scene, tmp_path):
    """An SR output of a preview extent (whole LR pixels inside the LR grid) gets the map of that window."""
    hr = _read(scene["hr"])
    with rasterio.open(scene["hr"]) as ds:
        t = ds.transform
    crop = hr[30:150, 60:174]  # LR rows 10..50, cols 20..58
    sr = _write_like(scene["hr"], tmp_path / "crop.tif", crop, width=crop.shape[1], height=crop.shape[0],
                     transform=compose(t, Affine.translation(60, 30)))
    s = trust_map(sr, scene["lr"])
    with rasterio.open(s.path) as out, rasterio.open(sr) as src:
        assert out.shape == (120, 114)
        assert out.transform.almost_equals(src.transform)
    assert s.mean_disagreement < 0.003


def test_blocks_and_strips_do_not_change_the_values(scene, tmp_path, monkeypatch):
    """Strip-by-strip processing: the PSF halo and the grid windows make seams exact."""
    import core.inference.trust as trust_mod
    import core.inference.trust_consistency as cons_mod

    sr, _ = _planted(scene, tmp_path / "planted.tif")
    one = trust_map(sr, scene["lr"], out_path=tmp_path / "one_block.tif")
    monkeypatch.setattr(trust_mod, "_STRIP", 13)
    monkeypatch.setattr(cons_mod, "BLOCK", 17)
    many = trust_map(sr, scene["lr"], out_path=tmp_path / "many_blocks.tif")
    for band in (1, 2, 3, 5, 6):
        # values are stored rounded to 1e-5: a float difference may flip one rounding step
        np.testing.assert_allclose(_read_band(many.path, band), _read_band(one.path, band), atol=1.1e-5, rtol=0)
    np.testing.assert_array_equal(_read_band(many.class_path, 1), _read_band(one.class_path, 1))


def test_cancel_leaves_no_file(scene, tmp_path):
    sr, _ = _planted(scene, tmp_path / "planted.tif")
    token = CancelToken()
    seen = []

    def progress(fraction, message):
        seen.append(message)
        if fraction > 0.01:
            token.cancel()

    with pytest.raises(Cancelled):
        trust_map(sr, scene["lr"], progress=progress, cancel=token)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["planted.tif"]  # neither the map nor its classes
    assert any("shift" in m for m in seen)


def test_write_failure_leaves_no_partial_file(scene, tmp_path, monkeypatch):
    def full_disk(self, window, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(GeoTiffSink, "write_window", full_disk)
    with pytest.raises(OutputError, match="disk is full"):
        trust_map(scene["hr"], scene["lr"], out_path=tmp_path / "t.tif")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- refusals


def test_misaligned_sr_is_refused_with_the_offset(scene, tmp_path):
    with rasterio.open(scene["hr"]) as ds:
        t = ds.transform
    half = _write_like(scene["hr"], tmp_path / "half.tif", _read(scene["hr"]),
                       transform=compose(t, Affine.translation(1.5, 0)))  # half an LR pixel to the east
    with pytest.raises(InputError, match=r"not aligned to the LR grid.*0\.500 LR pixel across"):
        trust_map(half, scene["lr"])
    coarse = _write_like(scene["hr"], tmp_path / "coarse.tif", _read(scene["hr"]),
                         transform=Affine(4.0, 0, t.c, 0, -4.0, t.f))
    with pytest.raises(InputError, match="whole scale factor"):
        trust_map(coarse, scene["lr"])
    other_crs = _write_like(scene["hr"], tmp_path / "crs.tif", _read(scene["hr"]), crs="EPSG:32633")
    with pytest.raises(InputError, match="EPSG:32633"):
        trust_map(other_crs, scene["lr"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coarse.tif", "crs.tif", "half.tif"]


def test_missing_inputs_and_files_are_worded(scene, tmp_path):
    with pytest.raises(InputError, match="give the LR revisits"):
        trust_map(scene["hr"], None, out_path=tmp_path / "t.tif")  # hr.tif records no inputs
    with pytest.raises(InputError, match="not found"):
        trust_map(tmp_path / "nope.tif", scene["lr"])
    with pytest.raises(OutputError, match="does not exist"):
        trust_map(scene["hr"], scene["lr"], out_path=tmp_path / "missing" / "t.tif")


# --------------------------------------------------------------------------- with inference, API, CLI


class MeanUpsampler(torch.nn.Module):
    """Bicubic upsampling of the mean of the frames: a plausible, not exactly consistent SR output."""

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.frames, self.scale = frames, SCALE

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x.mean(1, keepdim=True), scale_factor=SCALE, mode="bicubic", align_corners=False)



def test_super_resolve_with_trust_and_inputs_from_metadata(scene, tmp_path):
    res = super_resolve(scene["lr"][:3], tmp_path / "sr.tif", (MeanUpsampler(3), make_card(frames=3, scale=SCALE, name="mean upsampler")), options=SuperResolveOptions(tile=32, overlap=4, trust=True))
    assert res.trust_path == tmp_path / "sr_trust.tif" and res.trust is not None
    # a blurry upsampling is close to, not equal to, what S-2 saw
    assert 0.002 < res.trust.mean_disagreement < 0.05
    from core import api

    again = api.trust_map(res.path, out_path=tmp_path / "again.tif")  # inputs from the SR output's tags
    assert again.frames == res.trust.frames and len(again.frames) == 3
    assert again.mean_disagreement == pytest.approx(res.trust.mean_disagreement, rel=1e-6)
    assert api.trust_summary(res.trust_path).flagged_share == pytest.approx(res.trust.flagged_share)


def test_cli_trust(scene, tmp_path, capsys):
    from core.cli.main import main

    sr, _ = _planted(scene, tmp_path / "planted.tif")
    rc = main(["trust", "--sr", str(sr), "--inputs", *map(str, scene["lr"]), "--band", "1",
               "--out", str(tmp_path / "map.tif"), "--threshold", "0.05"])
    out = capsys.readouterr().out
    assert rc == 0 and (tmp_path / "map.tif").is_file()
    assert "mean disagreement" in out and "above 0.05" in out
    rc = main(["trust", "--sr", str(scene["lr"][0]), "--inputs", *map(str, scene["lr"])])
    assert rc == 1 and "whole scale factor" in capsys.readouterr().err


def test_masked_std_matches_numpy():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(6, 4, 5))
    valid = rng.random((6, 4, 5)) > 0.3
    valid[:, 0, 0] = False
    valid[:, 0, 1] = False
    valid[2, 0, 1] = True  # one valid revisit: no spread
    std = masked_std(values, valid, valid.sum(0))
    ref = np.nanstd(np.where(valid, values, np.nan)[:, 1:], axis=0, ddof=1)
    np.testing.assert_allclose(std[1:], ref, rtol=1e-5)
    assert np.isnan(std[0, 0]) and np.isnan(std[0, 1])


def test_masked_median_matches_numpy():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(7, 5, 6)).astype(np.float32)
    valid = rng.random((7, 5, 6)) > 0.4
    valid[:, 0, 0] = False
    med, count = masked_median(values, valid)
    ref = np.nanmedian(np.where(valid, values, np.nan)[:, 1:], axis=0)
    np.testing.assert_allclose(med[1:], ref, rtol=1e-6)
    assert np.isnan(med[0, 0]) and count[0, 0] == 0
    np.testing.assert_array_equal(count, valid.sum(0))


def test_sr_job_lists_its_files_and_a_stop_in_the_trust_step_leaves_none(scene, tmp_path):
    model = (MeanUpsampler(3), make_card(frames=3, scale=SCALE, name="mean upsampler"))
    options = SuperResolveOptions(tile=32, overlap=4, trust=True)
    (tmp_path / "ok").mkdir()
    done = super_resolve(scene["lr"][:3], tmp_path / "ok" / "sr.tif", model, options=options)
    assert sorted(p.name for p in done.written) == sorted(p.name for p in (tmp_path / "ok").iterdir()
                                                          if not p.name.endswith(".aux.xml"))
    assert {p.name for p in done.written} >= {"sr.tif", "sr_trust.tif", "sr_trust_class.tif"}

    token = CancelToken()

    def progress(fraction, message):
        if message.startswith("trust map:") and fraction > 0.85:
            token.cancel()  # the SR output is complete by now: the job must take it back

    (tmp_path / "stop").mkdir()
    with pytest.raises(Cancelled):
        super_resolve(scene["lr"][:3], tmp_path / "stop" / "sr.tif", model, options=options, progress=progress,
                      cancel=token)
    assert list((tmp_path / "stop").iterdir()) == []
