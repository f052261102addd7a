"""Patch datasets: task-aware selection, determinism, consistent augmentation, frame choice."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from affine import Affine

from core.data.patches import PatchSelection, SegPatchDataset, SRPatchDataset, choose_frames, coverage_map
from core.data.scene import Scene, SceneError
from core.data.synthetic.towns import make_scene
from core.io.geo import compose


def block_scene(h: int = 20, w: int = 24, t: int = 3, seed: int = 0, masks: bool = True) -> Scene:
    """LR = exact 3x3 block mean of HR, masks = HR > 0.5: lets a test check geometry after augmentation."""
    rng = np.random.default_rng(seed)
    hr = rng.random((1, 3 * h, 3 * w)).astype(np.float32)
    lr1 = hr[0].reshape(h, 3, w, 3).mean(axis=(1, 3))
    lr = np.stack([lr1 + 0.01 * k for k in range(t)])[:, None].astype(np.float32)
    lr_valid = np.ones((t, h, w), bool)
    lr_valid[0, :, : w // 2] = False  # frame 0 half clouded, frame 1 clear, frame 2 a bit clouded
    lr_valid[2, :2] = False
    lr[:, 0][~lr_valid] = 0.0
    hr_t = Affine(10 / 3, 0, 400_000, 0, -10 / 3, 5_500_000)
    m = {"buildings": hr[0] > 0.5, "roads": hr[0] > 0.9} if masks else {}
    return Scene("block", lr, lr_valid, hr, np.ones(hr.shape[1:], bool), m, "EPSG:32634",
                 compose(hr_t, Affine.scale(3)), hr_t, ["B8"])


def test_choose_frames_clearest_first_and_repeat() -> None:
    assert choose_frames([0.5, 1.0, 0.9], 2) == [1, 2]
    assert choose_frames([0.5, 1.0, 0.9], 5) == [1, 2, 0, 1, 2]
    assert choose_frames([1.0, 1.0, 1.0], 3) == [0, 1, 2]  # ties keep acquisition order
    with pytest.raises(ValueError):
        choose_frames([], 3)


def test_coverage_map_matches_brute_force() -> None:
    m = np.random.default_rng(0).random((30, 27)) > 0.7
    cov = coverage_map(m, 9, step=3)
    assert cov.shape == ((30 - 9) // 3 + 1, (27 - 9) // 3 + 1)
    for i in range(cov.shape[0]):
        for j in range(cov.shape[1]):
            assert cov[i, j] == pytest.approx(m[3 * i : 3 * i + 9, 3 * j : 3 * j + 9].mean())


def test_augmentation_is_consistent_across_arrays() -> None:
    ds = SRPatchDataset([block_scene()], lr_patch=6, frames=3, samples_per_epoch=40, augment=True, seed=1)
    seen = set()
    for i in range(len(ds)):
        it = ds[i]
        hr = it["hr"][0].numpy()
        lr = it["lr"][:, 0].numpy()
        valid = it["lr_valid"].numpy()
        clear = int(np.argmax(valid.reshape(3, -1).mean(1)))
        down = hr.reshape(6, 3, 6, 3).mean(axis=(1, 3))
        k = int(it["frames"][clear])
        np.testing.assert_allclose(lr[clear][valid[clear]], (down + 0.01 * k)[valid[clear]], atol=1e-5)
        np.testing.assert_array_equal(it["buildings"][0].numpy() > 0.5, hr > 0.5)
        np.testing.assert_array_equal(it["roads"][0].numpy() > 0.5, hr > 0.9)
        seen.add(tuple(valid[:, 0, :].any(axis=1)))  # orientation of the cloud edge varies
        assert it["hr_valid"].all()
    assert len(seen) > 1


def test_sr_patches_draw_one_radiometry_for_revisits_and_hr() -> None:
    """L1C-like radiometry for SR patches: one draw per patch, the same for its revisits and its HR image, so the
    revisit that was the exact block mean of the HR image still is (the change is affine per band)."""
    from core.data.radiometric import RadiometricJitter

    jitter = RadiometricJitter(prob=1.0)
    plain = SRPatchDataset([block_scene()], lr_patch=6, frames=3, samples_per_epoch=20, augment=True, seed=3)
    varied = SRPatchDataset([block_scene()], lr_patch=6, frames=3, samples_per_epoch=20, augment=True, seed=3,
                            radiometry=jitter)
    changed = 0
    for i in range(len(varied)):
        a, b = plain[i], varied[i]
        hr, lr, valid = b["hr"][0].numpy(), b["lr"][:, 0].numpy(), b["lr_valid"].numpy()
        t = int(np.where(b["frames"].numpy() == 0)[0][0])  # the revisit without the +0.01 offset
        down = hr.reshape(6, 3, 6, 3).mean(axis=(1, 3))
        np.testing.assert_allclose(lr[t][valid[t]], down[valid[t]], atol=1e-5)
        # the same patch (the draw comes after it; the augmentation's turn may differ): values changed, labels not
        changed += not np.allclose(np.sort(a["hr"].numpy(), None), np.sort(b["hr"].numpy(), None))
        assert a["buildings"].sum() == b["buildings"].sum() and a["roads"].sum() == b["roads"].sum()
    assert changed == len(varied)


def test_items_shapes_and_frame_padding() -> None:
    ds = SRPatchDataset([block_scene(t=3)], lr_patch=8, frames=5, samples_per_epoch=4, augment=False, seed=0)
    it = ds[0]
    assert it["lr"].shape == (5, 1, 8, 8) and it["lr"].dtype == torch.float32
    assert it["lr_valid"].shape == (5, 8, 8) and it["lr_valid"].dtype == torch.bool
    assert it["hr"].shape == (1, 24, 24) and it["hr_valid"].shape == (24, 24)
    assert it["buildings"].shape == (1, 24, 24) and it["buildings"].dtype == torch.float32
    assert it["frames"].tolist()[:3] == [1, 2, 0] and it["frames"].tolist()[3:] == [1, 2]
    assert bool(it["has_buildings"]) and bool(it["has_roads"])


def test_deterministic_per_seed_epoch_index() -> None:
    make = lambda seed: SRPatchDataset([block_scene()], lr_patch=6, frames=2, samples_per_epoch=8, seed=seed)  # noqa: E731
    a, b = make(3), make(3)
    for i in (0, 5):
        assert torch.equal(a[i]["hr"], b[i]["hr"]) and torch.equal(a[i]["lr"], b[i]["lr"])
    first = a[2]["hr"].clone()
    a.set_epoch(1)
    assert not torch.equal(a[2]["hr"], first)
    a.set_epoch(0)
    assert torch.equal(a[2]["hr"], first)
    assert not torch.equal(make(4)[2]["hr"], first)
    with pytest.raises(IndexError):
        a[8]


@pytest.mark.parametrize("share", [0.0, 0.3, 0.8])
def test_selection_share_is_met(share: float) -> None:
    scene = make_scene(size_hr=144, frames=2, seed=7)
    sel = PatchSelection(share=share, min_coverage=0.25)
    ds = SRPatchDataset([scene], lr_patch=8, frames=2, samples_per_epoch=400, selection=sel, augment=False, seed=0)
    union = scene.masks["buildings"] | scene.masks["roads"]
    base_rate = (coverage_map(union, 24, 3) >= 0.25).mean()
    assert 0.05 < base_rate < 0.7  # the rule has something to do
    selected, qualifying = 0, 0
    for i in range(len(ds)):
        it = ds[i]
        cov = float(((it["buildings"] + it["roads"]) > 0).float().mean())
        if bool(it["selected"]):
            selected += 1
            assert cov >= 0.25  # every selected patch meets the coverage threshold
        qualifying += cov >= 0.25
    assert selected / len(ds) == pytest.approx(share, abs=0.06)
    # patches meeting the threshold: the selected ones plus the uniform draws that happen to
    expected = share + (1 - share) * base_rate
    assert qualifying / len(ds) == pytest.approx(expected, abs=0.07)


def test_selection_falls_back_to_random_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    sc = block_scene()
    sc.masks = {"buildings": np.zeros_like(sc.masks["buildings"]), "roads": np.zeros_like(sc.masks["roads"])}
    ds = SRPatchDataset([sc], lr_patch=6, frames=2, samples_per_epoch=30, selection=PatchSelection(share=1.0), seed=0)
    with caplog.at_level(logging.WARNING, logger="core.data.patches"):
        items = [ds[i] for i in range(len(ds))]
    assert not any(bool(it["selected"]) for it in items)
    assert sum("drawing uniformly" in r.message for r in caplog.records) == 1


def test_scene_without_masks_or_hr() -> None:
    sc = block_scene(masks=False)
    sc.hr = sc.hr_valid = None
    it = SRPatchDataset([sc], lr_patch=6, frames=2, samples_per_epoch=2, selection=PatchSelection(share=0.5))[0]
    assert not bool(it["has_buildings"]) and float(it["buildings"].sum()) == 0
    assert not it["hr_valid"].any()


def test_small_scene_is_padded_as_invalid() -> None:
    sc = block_scene(h=5, w=7)
    it = SRPatchDataset([sc], lr_patch=8, frames=1, samples_per_epoch=1, augment=False)[0]
    assert it["lr"].shape == (1, 1, 8, 8)
    assert not it["lr_valid"][:, 5:].any() and not it["lr_valid"][:, :, 7:].any()
    assert not it["hr_valid"][15:].any() and it["hr_valid"][:15, :21].all()


def test_seg_patches() -> None:
    scene = make_scene(size_hr=144, frames=1, seed=3)
    ds = SegPatchDataset([scene], target="roads", patch=32, samples_per_epoch=200,
                         selection=PatchSelection(share=1.0, min_coverage=0.1), seed=0)
    assert ds.selection.classes == ("roads",)
    for i in range(0, 200, 7):
        it = ds[i]
        assert it["image"].shape == (1, 32, 32) and it["mask"].shape == (1, 32, 32) and it["valid"].shape == (32, 32)
        assert bool(it["selected"]) and float(it["mask"].mean()) >= 0.1
    no_roads = make_scene(size_hr=48, frames=1, seed=3)
    del no_roads.masks["roads"]
    with pytest.raises(SceneError, match="no 'roads' mask"):
        SegPatchDataset([no_roads], target="roads", patch=32)
    with pytest.raises(SceneError, match="band index 2"):
        SRPatchDataset([scene], band=2)
