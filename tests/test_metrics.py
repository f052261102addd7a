"""cPSNR / cSSIM / LPIPS / segmentation counts pinned on hand-computed cases."""

from __future__ import annotations

import math
import urllib.request

import numpy as np
import pytest
import torch

from core.evaluation.metrics import (
    ALEXNET_FILE,
    LPIPSMetric,
    SegCounts,
    aligned_pair,
    cpsnr,
    cpsnr_cssim,
    cssim,
)


def scene(size=48, seed=0) -> np.ndarray:
    """A smooth-ish random image in [0.1, 0.9] (SSIM needs structure, not white noise)."""
    rng = np.random.default_rng(seed)
    x = rng.random((size, size))
    k = np.ones(3) / 3
    for axis in (0, 1):
        x = np.apply_along_axis(lambda r: np.convolve(r, k, mode="same"), axis, x)
    return 0.1 + 0.8 * (x - x.min()) / (x.max() - x.min())


def shifted(hr: np.ndarray, du: int, dv: int, bias: float) -> np.ndarray:
    """sr[y, x] = hr[y + du, x + dv] + bias: the best shift is (3 + du, 3 + dv)."""
    return np.roll(hr, (-du, -dv), axis=(0, 1)) + bias


def checker(shape, sigma):
    yy, xx = np.indices(shape)
    return sigma * (1 - 2 * ((yy + xx) % 2))


@pytest.mark.parametrize("size", [48, 132])  # 132: above the size where the FFT shift search takes over
def test_cpsnr_exact_value_for_planted_shift_bias_and_noise(size):
    hr = scene(size)
    sigma = 0.01
    sr = shifted(hr, 1, 2, 0.04) + checker(hr.shape, sigma)  # even-sized crop: zero-mean noise, variance sigma^2
    want = -10 * math.log10(sigma**2)  # = 40 dB
    assert cpsnr(sr, hr) == pytest.approx(want, abs=1e-9)
    scores = cpsnr_cssim(torch.from_numpy(sr)[None], torch.from_numpy(hr)[None])  # torch, [C, H, W]
    assert scores.cpsnr == pytest.approx(want, abs=1e-9)
    assert scores.shift == (4, 5)
    assert scores.bias[0] == pytest.approx(-0.04, abs=1e-12)
    assert scores.cmse == pytest.approx(sigma**2, rel=1e-9)


def test_cpsnr_perfect_match_is_inf_and_float32_is_accepted():
    hr = scene().astype(np.float32)
    assert cpsnr(shifted(hr, 0, -1, 0.0), hr) == math.inf
    # float32 rounding of a biased copy leaves only a tiny error
    assert 100 < cpsnr(shifted(hr, 0, -1, 0.1), hr) < math.inf


def test_cpsnr_border_and_mask():
    hr = scene(seed=1)
    sr = shifted(hr, 1, 0, 0.0) + checker(hr.shape, 0.02)
    # with border 0 the 1-px displacement cannot be undone: much worse than the planted noise
    assert cpsnr(sr, hr, border=0) < cpsnr(sr, hr) - 5
    valid = np.ones_like(hr, dtype=bool)
    valid[10:20, 5:30] = False
    bad = hr.copy()
    bad[~valid] = np.nan
    a, b = cpsnr(sr, hr, valid), cpsnr(sr, bad, valid)
    assert math.isfinite(b) and b == pytest.approx(a, abs=1e-9)
    with pytest.raises(ValueError, match="no clear pixel"):
        cpsnr(sr, hr, np.zeros_like(valid))
    with pytest.raises(ValueError, match="same shape"):
        cpsnr(sr[:40], hr)


def test_cssim_identical_is_one_blurred_is_lower():
    hr = scene(seed=2)
    assert cssim(hr, hr) == pytest.approx(1.0, abs=1e-6)
    blurred = hr.copy()
    for axis in (0, 1):
        blurred = np.apply_along_axis(lambda r: np.convolve(r, np.ones(5) / 5, mode="same"), axis, blurred)
    s = cssim(blurred, hr)
    assert 0.0 < s < 0.95


def test_cssim_is_torchmetrics_ssim_on_the_aligned_crop():
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim

    hr = scene(seed=3)
    sr = shifted(hr, -1, 1, 0.03) + 0.02 * np.random.default_rng(0).standard_normal(hr.shape)
    scores = cpsnr_cssim(sr, hr)
    u, v = scores.shift
    hc = torch.from_numpy(hr[u : u + 42, v : v + 42])[None, None]
    sc = torch.from_numpy(sr[3:45, 3:45])[None, None] + scores.bias[0]
    assert scores.cssim == pytest.approx(float(ssim(sc, hc, data_range=1.0)), abs=1e-6)


def test_ssim_strips_equal_the_whole_image_map():
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim

    from core.evaluation.metrics import _ssim_clear

    hr = torch.from_numpy(scene(size=60, seed=6))[None]
    sr = hr + 0.05 * torch.from_numpy(np.random.default_rng(3).standard_normal((1, 60, 60)))
    m = torch.ones(60, 60, dtype=torch.bool)
    whole = float(ssim(sr[None].float(), hr[None].float(), data_range=1.0))
    assert _ssim_clear(sr, hr, m, strip_pixels=60 * 32) == pytest.approx(whole, abs=1e-6)  # two strips
    assert _ssim_clear(sr, hr, m) == pytest.approx(whole, abs=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_fft_shift_search_matches_the_direct_one(channels):
    from core.evaluation.metrics import _best_shift, _cmse_fft
    from core.models.losses import shift_errors

    rng = np.random.default_rng(channels)
    hr = torch.from_numpy(rng.random((channels, 40, 44)))
    sr = torch.roll(hr, (1, -2), (1, 2)) + 0.05 * torch.from_numpy(rng.standard_normal((channels, 40, 44)))
    clear = torch.from_numpy(rng.random((40, 44)) > 0.3)
    hr[:, ~clear] = float("nan")  # garbage where not clear
    direct = shift_errors(sr[None], hr[None], clear[None], border=3, power=2)[0]
    assert torch.allclose(_cmse_fft(sr, hr, clear, 3), direct, rtol=1e-9, atol=1e-12)
    assert _best_shift(sr, hr, clear, 3, "fft") == _best_shift(sr, hr, clear, 3, "direct")
    assert _best_shift(sr, hr, clear, 3, "fft")[1] == (2, 5)


def test_cssim_with_mask_is_finite_and_ignores_garbage():
    hr = scene(seed=4)
    sr = shifted(hr, 0, 0, 0.0) + 0.01 * np.random.default_rng(1).standard_normal(hr.shape)
    valid = np.ones_like(hr, dtype=bool)
    valid[:, :12] = False
    bad = hr.copy()
    bad[~valid] = np.nan
    a, b = cssim(sr, hr, valid), cssim(sr, bad, valid)
    assert math.isfinite(b) and b == pytest.approx(a, abs=1e-9)
    sc, hc, m, shift, bias = aligned_pair(sr, bad, valid)
    assert torch.isfinite(sc).all() and torch.isfinite(hc).all()
    assert torch.equal(sc[:, ~m], hc[:, ~m])  # equal on both sides where not clear


# ----------------------------------------------------------------------- LPIPS


@pytest.fixture
def no_network(monkeypatch):
    """Every way torch/torchvision could fetch weights raises and is recorded."""
    calls = []

    def forbid(name):
        def _f(*a, **k):
            calls.append(name)
            raise AssertionError(f"{name} called: LPIPSMetric must never download")

        return _f

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", forbid("load_state_dict_from_url"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", forbid("download_url_to_file"))
    monkeypatch.setattr(urllib.request, "urlopen", forbid("urlopen"))
    import torchvision.models._api as tv_api

    monkeypatch.setattr(tv_api, "load_state_dict_from_url", forbid("torchvision load_state_dict_from_url"))
    return calls


def test_lpips_unavailable_names_the_missing_file(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    m = LPIPSMetric()
    assert not m.available
    assert ALEXNET_FILE in m.reason and "not found" in m.reason
    assert str(tmp_path) in m.reason
    assert m.compute_or_none(scene(), scene()) is None
    with pytest.raises(RuntimeError, match="not available"):
        m(scene(), scene())
    m2 = LPIPSMetric(alexnet_weights=tmp_path / "mine.pth", lpips_weights=tmp_path / "heads.pth")
    assert not m2.available and "mine.pth" in m2.reason
    assert no_network == []


def _fake_alexnet_features(path, seed=0):
    """A stand-in AlexNet feature extractor state dict (random weights, the real key names/shapes)."""
    g = torch.Generator().manual_seed(seed)
    shapes = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3), 10: (256, 256, 3, 3)}
    state = {}
    for i, s in shapes.items():
        state[f"features.{i}.weight"] = 0.05 * torch.randn(s, generator=g)
        state[f"features.{i}.bias"] = 0.01 * torch.randn(s[0], generator=g)
    torch.save(state, path)
    return state


def test_lpips_builds_from_local_files_without_network(tmp_path, no_network):
    path = tmp_path / "alexnet.pth"
    state = _fake_alexnet_features(path)
    m = LPIPSMetric(alexnet_weights=path)
    assert m.available, m.reason
    # the backbone really holds the file's tensors
    conv0 = m.net.net.slice1[0]
    assert torch.equal(conv0.weight, state["features.0.weight"])
    hr = scene(size=64, seed=5)
    assert m(hr, hr) == pytest.approx(0.0, abs=1e-6)
    noisy = np.clip(hr + 0.1 * np.random.default_rng(2).standard_normal(hr.shape), 0, 1)
    assert m(noisy, hr) > 1e-4
    assert no_network == []


def test_lpips_refuses_a_foreign_file(tmp_path, no_network):
    path = tmp_path / "not_alexnet.pth"
    torch.save({"features.0.weight": torch.zeros(3, 3)}, path)
    m = LPIPSMetric(alexnet_weights=path)
    assert not m.available and "features.0.weight" in m.reason


# ----------------------------------------------------------------------- segmentation


def test_seg_counts_hand_values():
    prob = np.array([[0.9, 0.8, 0.2], [0.6, 0.4, 0.1], [0.7, 0.3, 0.5]])
    target = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 1]], dtype=bool)
    # P = prob > 0.5: (0,0) (0,1) (1,0) (2,0); 0.5 itself is not positive
    c = SegCounts().update(prob, target)
    assert (c.tp, c.fp, c.fn, c.tn) == (3, 1, 2, 3)
    assert c.dice == pytest.approx(6 / 9)
    assert c.accuracy == pytest.approx(6 / 9)
    assert c.precision == pytest.approx(3 / 4)
    assert c.recall == pytest.approx(3 / 5)
    d = c.as_dict()
    assert d["tp"] == 3 and d["dice"] == pytest.approx(6 / 9)


def test_seg_counts_valid_mask_and_torch_inputs():
    prob = torch.tensor([[[0.9, 0.8], [0.1, 0.7]]])
    target = torch.tensor([[[1.0, 0.0], [1.0, float("nan")]]])
    valid = torch.tensor([[[True, True], [True, False]]])
    c = SegCounts().update(prob, target, valid)
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 1, 1, 0)


def test_counts_accumulate_over_scenes_not_mean_of_dice():
    rng = np.random.default_rng(3)
    p1, g1 = rng.random((20, 20)), rng.random((20, 20)) > 0.9  # sparse scene
    p2, g2 = rng.random((20, 30)), rng.random((20, 30)) > 0.4  # dense scene
    acc = SegCounts().update(p1, g1).update(p2, g2)
    whole = SegCounts().update(np.concatenate([p1, p2], axis=1), np.concatenate([g1, g2], axis=1))
    assert (acc.tp, acc.fp, acc.fn, acc.tn) == (whole.tp, whole.fp, whole.fn, whole.tn)
    merged = SegCounts().update(p1, g1).merge(SegCounts().update(p2, g2))
    assert merged == acc
    per_scene_mean = (SegCounts().update(p1, g1).dice + SegCounts().update(p2, g2).dice) / 2
    assert abs(acc.dice - per_scene_mean) > 0.01


def test_seg_counts_match_smp_get_stats():
    import segmentation_models_pytorch as smp

    g = torch.Generator().manual_seed(0)
    prob = torch.rand(2, 1, 16, 16, generator=g)
    target = (torch.rand(2, 1, 16, 16, generator=g) > 0.6).long()
    tp, fp, fn, tn = smp.metrics.get_stats(prob, target, mode="binary", threshold=0.5)
    c = SegCounts().update(prob, target)
    assert (c.tp, c.fp, c.fn, c.tn) == (int(tp.sum()), int(fp.sum()), int(fn.sum()), int(tn.sum()))
    f1 = smp.metrics.f1_score(tp, fp, fn, tn, reduction="micro")
    assert c.dice == pytest.approx(float(f1))


def test_empty_scores_are_nan_not_made_up():
    c = SegCounts().update(np.zeros((4, 4)), np.zeros((4, 4), dtype=bool))
    assert c.tn == 16 and math.isnan(c.dice) and math.isnan(c.precision) and math.isnan(c.recall)
    assert c.accuracy == 1.0
    assert math.isnan(SegCounts().accuracy)
    with pytest.raises(ValueError, match="differ in size"):
        SegCounts().update(np.zeros((4, 4)), np.zeros((4, 5)))
