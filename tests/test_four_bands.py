"""Sentinel-2's four 10 m bands end to end: 4-band networks trained, applied in one pass, and segmented.

A tiny world-v2 dataset (B02, B03, B04, B08) trains an RGBN building network
and a task-driven 4-band RAMS through the real trainer; ``super_resolve`` with
``all_bands`` then writes one 4-band GeoTIFF at a third of the pixel size with
the bands in order, named, with their wavelengths, and ``segment`` reads the
bands its card names from it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

pytestmark = pytest.mark.usefixtures("one_torch_thread")
BANDS = ["B02", "B03", "B04", "B08"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from core.data.synthetic.world_v2 import make_world_dataset

    root = tmp_path_factory.mktemp("world")
    make_world_dataset(root, n_scenes=3, size_hr=96, seed=3, frames=3, object_free_share=0.0)
    return root


@pytest.fixture(scope="module")
def trained(world, tmp_path_factory):
    from core.training.config import load_config
    from core.training.trainer import train
    from tests.helpers import ROOT

    runs = tmp_path_factory.mktemp("runs")
    bands = "data.bands=[B02,B03,B04,B08]"
    seg = train(load_config(ROOT / "resources/configs/tiny_segmentation_buildings.yaml",
                            [f"data.root={world}", f"out_dir={runs / 'seg'}", bands, "epochs=1",
                             "data.val_scenes=1"]))
    sr = train(load_config(ROOT / "resources/configs/tiny_rams_taskdriven.yaml",
                           [f"data.root={world}", f"out_dir={runs / 'sr'}", bands, "epochs=1",
                            f"seg_nets.buildings={seg}", "seg_nets.roads=null",
                            "loss.terms=[{name: cl1}, {name: dice_buildings, proportion: 0.25}]"]))
    return seg, sr


def test_four_band_networks_train_and_say_so_in_their_cards(trained):
    from core.models.zoo import load_checkpoint

    seg, sr = trained
    net, card = load_checkpoint(sr)
    assert card.bands == BANDS and net.in_chans == 4 and card.hparams["in_chans"] == 4
    seg_net, seg_card = load_checkpoint(seg)
    assert seg_card.bands == BANDS and seg_card.hparams["in_channels"] == 4


def test_all_bands_in_one_pass_lines_up_and_segments(world, trained, tmp_path):
    from core import api
    from core.options import SegmentOptions, SuperResolveOptions

    seg, sr = trained
    scene = sorted(p for p in world.iterdir() if p.is_dir())[0]
    lr = sorted((scene / "lr").glob("*.tif"))
    res = api.super_resolve(lr, tmp_path / "sr4.tif", sr, SuperResolveOptions(all_bands=True, tile=16, overlap=4))
    with rasterio.open(lr[0]) as src, rasterio.open(res.path) as out:
        assert out.count == 4 and out.descriptions == tuple(BANDS)
        assert out.width == 3 * src.width and out.height == 3 * src.height
        assert out.transform.a == pytest.approx(src.transform.a / 3) and out.bounds == pytest.approx(src.bounds)
        assert [out.tags(i + 1)["WAVELENGTH"] for i in range(4)] == ["490", "560", "665", "842"]
        assert json.loads(out.tags()["SR_BANDS"]) == BANDS
        data = out.read()
    assert (data > 0).all() and data.dtype == np.uint16
    mask = tmp_path / "buildings.tif"
    seg_res = api.segment(res.path, [seg], out_mask=mask, options=SegmentOptions(tile=48, overlap=8))
    assert any("by name" in m and "B08" in m for m in seg_res.messages)
    with rasterio.open(mask) as m:
        assert m.count == 1 and m.shape == data.shape[1:]


def test_a_four_band_network_refuses_a_single_band(world, trained, tmp_path):
    from core import api
    from core.jobs import InputError
    from core.options import SuperResolveOptions

    _seg, sr = trained
    scene = sorted(p for p in world.iterdir() if p.is_dir())[0]
    lr = sorted((scene / "lr").glob("*.tif"))
    with pytest.raises(InputError, match=r"takes 4 bands \(B02, B03, B04, B08\)"):
        api.super_resolve(lr, tmp_path / "one.tif", sr, SuperResolveOptions(band="B08", tile=16, overlap=4))
