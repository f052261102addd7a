"""Whole-scene evaluation through the plugin's own tiled passes.

What is checked: seam-free tiling, per-scene image metrics, Dice from counts
summed over scenes, the anchored Dice, the object-free false-positive share
against bicubic, and that evaluation scores exactly the pixels ``super_resolve``
writes for the same scene.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from torch import nn

from core.evaluation.evaluate import evaluate_checkpoint, evaluate_hr_reference, evaluate_sr
from core.evaluation.metrics import SegCounts, cpsnr
from core.evaluation.scene_predict import object_free, predict_seg_image, predict_sr_scene
from core.inference.loading import LoadedModel
from core.inference.planning import TilePlan
from core.options import EvaluateOptions
from tests.helpers import make_card

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = torch.device("cpu")


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


class PixelWise(nn.Module):
    """Each output pixel depends on its own LR pixel only: every tile layout must give the same result."""

    scale, frames = 3, 3

    def forward(self, x):
        return (x.mean(dim=1, keepdim=True) * 2 + 0.01).repeat_interleave(3, -1).repeat_interleave(3, -2)


class Threshold(nn.Module):
    """A fixed 'segmentation network': bright pixels are objects (logits in reflectance units)."""

    def forward(self, x):
        return (x - 0.3) * 50.0


class Everything(nn.Module):
    """A segmentation 'network' that flags every pixel: Dice rewards it wherever objects are dense."""

    def forward(self, x):
        return torch.full_like(x, 10.0)


def sr_model(net, offset=0.0, scale=1.0):
    return LoadedModel(net, make_card(frames=3, normalization={"offset": offset, "scale": scale}), "test", None, CPU)


def seg_model(net, target="buildings"):
    return LoadedModel(net, make_card(arch="unetpp", task="segmentation", target=target), "test", None, CPU)


def test_tiling_is_seam_free_for_pixel_wise_networks(scenes):
    _, sc = scenes
    m = sr_model(PixelWise(), 0.0, 0.5)
    whole = predict_sr_scene(m, sc[0], TilePlan(1000, 0, 1), anchor=False, bands=[0], quantize=False).image
    for plan in (TilePlan(16, 4, 3), TilePlan(13, 2, 1)):
        tiled = predict_sr_scene(m, sc[0], plan, anchor=False, bands=[0], quantize=False).image
        np.testing.assert_allclose(tiled, whole, atol=1e-6, rtol=0)
    assert whole.shape == (1, *sc[0].hr.shape[-2:])


def test_tiled_sr_matches_whole_image_model(scenes):
    _, sc = scenes
    m = sr_model(Bicubic(), 0.0, 0.5)
    whole = predict_sr_scene(m, sc[0], TilePlan(1000, 0, 1), anchor=False, bands=[0]).image[0]
    tiled = predict_sr_scene(m, sc[0], TilePlan(16, 6, 1), anchor=False, bands=[0]).image[0]
    inner = (slice(12, -12), slice(12, -12))  # bicubic reads 2 px around: tile borders blend away
    assert np.abs(whole - tiled)[inner].max() < 5e-3


def test_evaluate_sr_accumulates_counts_over_whole_scenes(scenes):
    _, sc = scenes
    m = sr_model(Bicubic())
    seg = {"buildings": seg_model(Threshold()), "roads": seg_model(Threshold(), "roads")}
    plan, seg_plan = TilePlan(16, 4, 1), TilePlan(48, 12, 1)
    res = evaluate_sr(m, sc, [0], seg, plan, seg_plan)
    assert res["scenes"] == len(sc) and len(res["per_scene"]) == len(sc)
    # per-scene cPSNR averaged over scenes, each from the whole SR image
    preds = [predict_sr_scene(m, s, plan, anchor=False, bands=[0]) for s in sc]
    psnrs = [cpsnr(p.image, s.hr[:1], s.hr_valid & p.valid) for p, s in zip(preds, sc)]
    assert res["cpsnr"] == pytest.approx(np.mean(psnrs))
    assert 10 < res["cpsnr"] < 60 and 0 < res["cssim"] <= 1
    # Dice from counts summed over all scenes (not a mean of per-scene Dice)
    counts = SegCounts()
    for p, s in zip(preds, sc):
        prob = predict_seg_image([seg["buildings"]], p.image, s.hr_valid & p.valid, seg_plan)[0]
        counts = counts.merge(SegCounts().update(prob, s.masks["buildings"], s.hr_valid & p.valid))
    assert res["buildings_dice"] == pytest.approx(counts.dice)
    assert res["buildings_precision"] == pytest.approx(counts.precision)
    assert res["task_dice"] == pytest.approx((res["buildings_dice"] + res["roads_dice"]) / 2)


def test_object_free_false_positives_compare_with_bicubic(scenes):
    _, sc = scenes
    m = sr_model(Bicubic())
    res = evaluate_sr(m, sc, [0], {"buildings": seg_model(Everything())}, TilePlan(32, 4, 1), TilePlan(96, 12, 1))
    # a network flagging every pixel flags all object-free land, on SR and bicubic alike
    assert res["buildings_fp_share"] == pytest.approx(1.0) and res["buildings_fp_share_bicubic"] == pytest.approx(1.0)
    # bicubic 'SR' stamps no 3-px grid: like bicubic's own, its grid score stays below 2 (quantised to the
    # output's integer values, its flat parts carry a little white noise, which lifts it towards 1)
    assert res["grid_score"] < 2 and res["grid_score_bicubic"] < 2
    thr = evaluate_sr(m, sc, [0], {"buildings": seg_model(Threshold())}, TilePlan(32, 4, 1), TilePlan(96, 12, 1))
    # the SR 'network' here is bicubic itself: both shares agree closely, and land is not all flagged
    assert thr["buildings_fp_share"] == pytest.approx(thr["buildings_fp_share_bicubic"], abs=0.02)
    assert thr["buildings_fp_share"] < 0.5


def test_object_free_keeps_a_margin_around_objects():
    mask = np.zeros((20, 20), bool)
    mask[10, 10] = True
    free = object_free([mask], 3)
    assert not free[7:14, 7:14].any() and free[6, 10] and free[10, 14] and free.sum() == 400 - 49


def test_hr_reference_and_undefined_scores(scenes):
    _, sc = scenes

    class Nothing(nn.Module):
        def forward(self, x):
            return torch.full_like(x, -10.0)

    res = evaluate_hr_reference(sc, {"buildings": seg_model(Nothing())}, [0], TilePlan(96, 12, 1))
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
    opts = EvaluateOptions(split="all", tile=16, overlap=4, max_scenes=2, hr_reference=True)
    res = evaluate_checkpoint(sr_path, root, seg_buildings=seg_path, options=opts)
    assert res["task"] == "sr" and res["scenes"] == 2 and math.isfinite(res["cpsnr"])
    assert "buildings_dice" in res and "hr_buildings_dice" in res and "roads_dice" not in res
    assert 0.0 <= res["buildings_fp_share"] <= 1.0 and 0.0 <= res["buildings_fp_share_bicubic"] <= 1.0
    assert res["lpips"] is not None or "not available" in res["lpips_note"]
    seg_res = evaluate_checkpoint(seg_path, root, options=opts.replace(max_scenes=1))
    assert seg_res["task"] == "segmentation" and seg_res["target"] == "buildings"
    with pytest.raises(ValueError, match="segments 'buildings', expected 'roads'"):
        evaluate_checkpoint(sr_path, root, seg_roads=seg_path, options=opts.replace(max_scenes=1))


class BrightBicubic(Bicubic):
    """Bicubic SR a constant 0.15 reflectance too bright: cPSNR cannot tell, Dice of a fixed threshold can.

    (Too bright rather than too dark: a dark drift would go below zero, where the
    integer output the plugin writes clips it, and cPSNR would rightly see that.)
    """

    def forward(self, x):
        return super().forward(x) + 0.15


def test_anchored_dice_separates_a_brightness_drift_from_lost_objects(scenes):
    _, sc = scenes
    seg = {"buildings": seg_model(Threshold())}
    plan, seg_plan = TilePlan(32, 4, 1), TilePlan(96, 12, 1)
    good = evaluate_sr(sr_model(Bicubic()), sc, [0], seg, plan, seg_plan)
    dark = evaluate_sr(sr_model(BrightBicubic()), sc, [0], seg, plan, seg_plan)
    assert dark["cpsnr"] == pytest.approx(good["cpsnr"], abs=2e-3)  # bias-corrected: blind to the drift
    assert dark["buildings_dice"] < 0.8 * good["buildings_dice"]  # raw output: the threshold flags ground
    assert dark["buildings_dice_anchored"] == pytest.approx(good["buildings_dice_anchored"], abs=0.02)
    assert dark["anchor_offset"] == pytest.approx(good["anchor_offset"] - 0.15, abs=2e-3)
    quick = evaluate_sr(sr_model(BrightBicubic()), sc, [0], seg, plan, seg_plan, anchored=False)
    assert "buildings_dice_anchored" not in quick and quick["buildings_dice"] == pytest.approx(dark["buildings_dice"])


def test_evaluation_scores_the_pixels_super_resolve_writes(scenes, tmp_path):
    """One engine path: the in-memory prediction equals the plugin's GeoTIFF, value for value."""
    from core import api
    from core.models.zoo import ModelCard, build, save_checkpoint
    from core.options import SuperResolveOptions

    root, sc = scenes
    scene = sc[1]
    torch.manual_seed(0)
    net = build("rams", scale=3, frames=3, filters=8, N=1, r=4)
    ckpt = tmp_path / "rams.safetensors"
    save_checkpoint(ckpt, net, ModelCard(arch="rams", hparams=net.hparams, task="sr", scale=3, bands=["B8"],
                                         frames=3, normalization={"offset": 0.0, "scale": 0.5}))
    plan = TilePlan(16, 4, 1)
    lr_files = sorted((root / scene.name / "lr").glob("*.tif"))
    out = api.super_resolve(lr_files, tmp_path / "sr.tif", ckpt, SuperResolveOptions(tile=16, overlap=4, batch=1))
    with rasterio.open(out.path) as ds:
        written = ds.read(1).astype(np.float32) * np.float32(1e-4)
    from core.inference.loading import load_model

    loaded = load_model(ckpt, CPU)
    mine = predict_sr_scene(loaded, scene, plan, anchor=True, bands=[0]).image[0]
    np.testing.assert_array_equal(mine, written)
