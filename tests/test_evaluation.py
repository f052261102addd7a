"""Whole-scene evaluation: seam-free tiling, per-scene image metrics, Dice from counts summed over scenes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.evaluation.evaluate import (
    FrozenSegNet,
    Normalization,
    evaluate_checkpoint,
    evaluate_hr_reference,
    evaluate_sr,
    predict_seg_scene,
    predict_sr_scene,
    tiled_predict,
)
from core.evaluation.metrics import SegCounts, cpsnr

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    from core.data.scene import list_scenes, read_scene
    from core.data.synthetic.towns import make_dataset

    root = tmp_path_factory.mktemp("synth")
    make_dataset(root, n_scenes=3, size_hr=96, seed=7, frames=3)
    return root, [read_scene(p) for p in list_scenes(root)]


class Bicubic(nn.Module):
    """A real (parameter-free) SR 'network': bicubic upsampling of the frame mean."""

    scale, frames, in_chans = 3, 3, 1

    def forward(self, x):
        return F.interpolate(x.mean(dim=1, keepdim=True), scale_factor=3, mode="bicubic", align_corners=False)


class Threshold(nn.Module):
    """A fixed 'segmentation network': bright pixels are objects (logits in reflectance units)."""

    def forward(self, x):
        return (x - 0.3) * 50.0


@pytest.mark.parametrize("size,tile,overlap", [((40, 52), 16, 4), ((10, 7), 16, 4), ((33, 33), 32, 0)])
def test_tiling_is_seam_free_for_local_operators(size, tile, overlap):
    x = torch.rand(2, *size)

    def up(t):  # pixel-wise: every tile layout must give exactly the direct result
        return t.repeat_interleave(3, -1).repeat_interleave(3, -2)[:, :1] * 2 + 1

    out = tiled_predict(up, x, tile, overlap, scale=3, batch=3)
    torch.testing.assert_close(out, up(x[None])[0], atol=1e-6, rtol=0)


def test_tiled_sr_matches_whole_image_model(scenes):
    _, sc = scenes
    model = Bicubic()
    norm = Normalization(0.0, 0.5)
    whole = predict_sr_scene(model, sc[0], norm, frames=3, tile=1000, overlap=0)
    tiled = predict_sr_scene(model, sc[0], norm, frames=3, tile=16, overlap=6)
    inner = (slice(12, -12), slice(12, -12))  # bicubic reads 2 px around: tile borders blend away
    assert np.abs(whole - tiled)[inner].max() < 5e-3
    assert whole.shape == sc[0].hr.shape[-2:]


def test_evaluate_sr_accumulates_counts_over_whole_scenes(scenes):
    _, sc = scenes
    model = Bicubic()
    norm = Normalization()
    seg = {"buildings": FrozenSegNet(Threshold(), Normalization()), "roads": FrozenSegNet(Threshold(), Normalization())}
    res = evaluate_sr(model, sc, norm, frames=3, seg_nets=seg, tile=16, overlap=4)
    assert res["scenes"] == len(sc) and len(res["per_scene"]) == len(sc)
    # per-scene cPSNR averaged over scenes, each from the whole SR image
    psnrs = [cpsnr(predict_sr_scene(model, s, norm, 3, tile=16, overlap=4), s.hr[0], s.hr_valid) for s in sc]
    assert res["cpsnr"] == pytest.approx(np.mean(psnrs))
    assert 10 < res["cpsnr"] < 60 and 0 < res["cssim"] <= 1
    # Dice from counts summed over all scenes (not a mean of per-scene Dice)
    counts = SegCounts()
    per_scene = []
    for s in sc:
        sr = predict_sr_scene(model, s, norm, 3, tile=16, overlap=4)
        prob = predict_seg_scene(seg["buildings"], sr, tile=48, overlap=12)
        c = SegCounts().update(prob, s.masks["buildings"], s.hr_valid)
        counts = counts.merge(c)
        per_scene.append(c.dice)
    assert res["buildings_dice"] == pytest.approx(counts.dice)
    assert res["buildings_precision"] == pytest.approx(counts.precision)
    assert res["task_dice"] == pytest.approx((res["buildings_dice"] + res["roads_dice"]) / 2)


def test_hr_reference_and_undefined_scores(scenes):
    _, sc = scenes

    class Nothing(nn.Module):
        def forward(self, x):
            return torch.full_like(x, -10.0)

    res = evaluate_hr_reference(sc, {"buildings": FrozenSegNet(Nothing(), Normalization())})
    # no predicted pixel: precision is 0/0 (reported as None, never a made-up number), recall is 0
    assert res["buildings_precision"] is None and res["buildings_recall"] == 0.0
    assert res["buildings_dice"] == 0.0


def test_evaluate_checkpoint_of_untrained_networks(scenes, tmp_path):
    from core.models.zoo import ModelCard, build, save_checkpoint

    root, _ = scenes
    sr = build("rams", scale=3, frames=3, filters=8, N=1, r=4)
    sr_path = tmp_path / "sr.safetensors"
    save_checkpoint(sr_path, sr, ModelCard(arch="rams", hparams=sr.hparams, task="sr", target=None, scale=3,
                                           bands=["B8"], frames=3, normalization={"offset": 0.0, "scale": 0.5}))
    seg = build("unetpp", preset="unetpp-tiny")
    seg_path = tmp_path / "seg.safetensors"
    save_checkpoint(seg_path, seg, ModelCard(arch="unetpp", hparams=seg.hparams, task="segmentation",
                                             target="buildings", scale=1, bands=["B8"], frames=1,
                                             normalization={"offset": 0.0, "scale": 0.5}))
    res = evaluate_checkpoint(sr_path, root, None, seg_buildings=seg_path, tile=16, overlap=4,
                              max_scenes=2, hr_reference=True)
    assert res["task"] == "sr" and res["scenes"] == 2 and math.isfinite(res["cpsnr"])
    assert "buildings_dice" in res and "hr_buildings_dice" in res and "roads_dice" not in res
    assert res["lpips"] is not None or "not available" in res["lpips_note"]
    seg_res = evaluate_checkpoint(seg_path, root, None, tile=16, overlap=4, max_scenes=1)
    assert seg_res["task"] == "segmentation" and seg_res["target"] == "buildings"
    with pytest.raises(ValueError, match="segments 'buildings', expected 'roads'"):
        evaluate_checkpoint(sr_path, root, None, seg_roads=seg_path, tile=16, overlap=4, max_scenes=1)


class DarkBicubic(Bicubic):
    """Bicubic SR a constant 0.15 reflectance too dark: cPSNR cannot tell, Dice of a fixed threshold can."""

    def forward(self, x):
        return super().forward(x) - 0.15


def test_anchored_dice_separates_a_brightness_drift_from_lost_objects(scenes):
    _, sc = scenes
    seg = {"buildings": FrozenSegNet(Threshold(), Normalization())}
    good = evaluate_sr(Bicubic(), sc, Normalization(), frames=3, seg_nets=seg, tile=32, overlap=4)
    dark = evaluate_sr(DarkBicubic(), sc, Normalization(), frames=3, seg_nets=seg, tile=32, overlap=4)
    assert dark["cpsnr"] == pytest.approx(good["cpsnr"], abs=1e-3)  # bias-corrected: blind to the drift
    assert dark["buildings_dice"] < 0.8 * good["buildings_dice"]  # raw output: the threshold misses roofs
    assert dark["buildings_dice_anchored"] == pytest.approx(good["buildings_dice_anchored"], abs=0.02)
    assert dark["anchor_offset"] == pytest.approx(good["anchor_offset"] + 0.15, abs=1e-3)
    quick = evaluate_sr(DarkBicubic(), sc, Normalization(), frames=3, seg_nets=seg, tile=32, overlap=4,
                        anchored=False)
    assert "buildings_dice_anchored" not in quick and quick["buildings_dice"] == pytest.approx(dark["buildings_dice"])
