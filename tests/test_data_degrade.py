"""S-2 degradation operator: PSF width, shifts, mean preservation, noise, dataset simulation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from affine import Affine

from core.data.degrade import (
    S2_NIR_MTF,
    Degradation,
    add_noise,
    psf_sigma_from_mtf,
    simulate_dataset,
    simulate_frames,
)
from core.data.scene import SceneError, list_scenes, load_split, read_scene
from core.data.synthetic.towns import make_dataset
from core.io.geo import compose


def test_sigma_from_mtf_inverts_gaussian_mtf() -> None:
    for mtf in (0.15, 0.26, 0.3):
        sigma_hr = psf_sigma_from_mtf(mtf, scale=3)
        f_hr = 0.5 / 3  # LR Nyquist in cycles per HR pixel
        assert math.exp(-2 * math.pi**2 * sigma_hr**2 * f_hr**2) == pytest.approx(mtf, rel=1e-9)
    assert 1.4 < psf_sigma_from_mtf(S2_NIR_MTF) < 1.7
    with pytest.raises(ValueError):
        psf_sigma_from_mtf(1.2)


def test_discrete_kernel_has_the_asked_mtf() -> None:
    """The response of the blur (alone) to a cosine at LR Nyquist is the MTF (within sampling error)."""
    op = Degradation(sigma_hr=psf_sigma_from_mtf(0.26))
    x = torch.arange(96, dtype=torch.float64)
    wave = torch.cos(2 * math.pi * x / 6.0)  # period 6 HR px = 2 LR px = Nyquist
    img = wave[None, None, None, :].expand(1, 1, 24, 96).float()
    out = op.blur(img)[0, 0, 12, 24:72]
    amp = float(out.abs().max())
    # pixel integration adds sinc(1/6) ~ 0.955 to the pure Gaussian's 0.26
    assert amp == pytest.approx(0.26 * np.sinc(1 / 6), rel=0.02)


def test_constant_stays_constant() -> None:
    op = Degradation()
    hr = torch.full((3, 2, 48, 60), 0.37)
    lr = op(hr, torch.tensor([[0.0, 0.0], [1.3, -2.7], [-3.0, 0.4]]))
    assert lr.shape == (3, 2, 16, 20)
    assert torch.allclose(lr, torch.full_like(lr, 0.37), atol=1e-6)


@pytest.mark.parametrize("shift", [(0.0, 0.0), (1.0, 0.0), (0.5, -1.7), (-2.6, 2.9), (1.5, 1.5)])
def test_shift_moves_centroid_by_shift_over_scale(shift: tuple) -> None:
    op = Degradation()
    yy, xx = torch.meshgrid(torch.arange(96.0) + 0.5, torch.arange(96.0) + 0.5, indexing="ij")
    blob = torch.exp(-((yy - 47.0) ** 2 + (xx - 50.0) ** 2) / (2 * 3.0**2))[None, None]

    def centroid(img: torch.Tensor) -> np.ndarray:
        h, w = img.shape
        iy, ix = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
        m = img.sum()
        return np.array([float((img * iy).sum() / m), float((img * ix).sum() / m)])

    ref = centroid(op(blob)[0, 0])
    moved = centroid(op(blob, torch.tensor([shift]))[0, 0])
    np.testing.assert_allclose(moved - ref, np.array(shift) / 3.0, atol=0.05)


def test_downsampling_preserves_mean() -> None:
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 1, 96, 96, generator=g)
    # no blur: area sampling alone keeps the mean exactly
    lr = Degradation(sigma_hr=0.0)(hr)
    assert torch.allclose(lr.mean(dim=(-2, -1)), hr.mean(dim=(-2, -1)), atol=1e-6)
    # with the PSF, reflect padding lets only the borders move the mean slightly
    lr = Degradation()(hr, torch.tensor([[0.0, 0.0], [1.2, -0.8]]))
    assert torch.allclose(lr.mean(dim=(-2, -1)), hr.mean(dim=(-2, -1)), atol=3e-3)


def test_batched_matches_per_sample_and_is_differentiable() -> None:
    op = Degradation(sigma_hr=[1.5, 1.2])
    g = torch.Generator().manual_seed(1)
    hr = torch.rand(3, 2, 30, 36, generator=g, requires_grad=True)
    shifts = torch.tensor([[0.2, -0.4], [2.0, 1.0], [-1.1, 0.0]], requires_grad=True)
    lr = op(hr, shifts)
    for i in range(3):
        one = op(hr[i : i + 1], shifts[i : i + 1])
        assert torch.allclose(lr[i : i + 1], one, atol=1e-6)
    lr.square().sum().backward()
    assert hr.grad is not None and torch.isfinite(hr.grad).all() and hr.grad.abs().sum() > 0
    assert shifts.grad is not None and torch.isfinite(shifts.grad).all() and shifts.grad.abs().sum() > 0


def test_bad_shapes_are_refused() -> None:
    op = Degradation()
    with pytest.raises(ValueError, match="multiple of the scale"):
        op(torch.zeros(1, 1, 31, 30))
    with pytest.raises(ValueError, match="shifts"):
        op(torch.zeros(2, 1, 30, 30), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="sigmas"):
        Degradation(sigma_hr=[1.0, 1.0, 1.0])(torch.zeros(1, 2, 30, 30))


def test_noise_is_signal_dependent_and_reproducible() -> None:
    lr = torch.cat([torch.full((1, 1, 64, 64), 0.05), torch.full((1, 1, 64, 64), 0.5)])
    noisy = add_noise(lr, sigma_read=1e-3, gain=1e-4, generator=torch.Generator().manual_seed(3))
    again = add_noise(lr, sigma_read=1e-3, gain=1e-4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(noisy, again)
    for k, level in enumerate((0.05, 0.5)):
        std = float((noisy[k] - lr[k]).std())
        assert std == pytest.approx(math.sqrt(1e-6 + 1e-4 * level), rel=0.1)
    x = lr.clone().requires_grad_(True)
    add_noise(x).sum().backward()
    assert torch.allclose(x.grad, torch.ones_like(x))


def test_simulate_frames_marks_invalid_hr_footprint() -> None:
    hr = np.full((1, 48, 48), 0.3, np.float32)
    valid = np.ones((48, 48), bool)
    valid[20:26, 20:26] = False
    hr[0, ~valid] = 0.0
    lr, lr_valid, shifts = simulate_frames(hr, valid, frames=4, seed=0)
    assert lr.shape == (4, 1, 16, 16) and lr_valid.shape == (4, 16, 16)
    assert np.all(shifts[0] == 0) and np.abs(shifts).max() <= 3.0
    assert not lr_valid[:, 7:8, 7:8].any()  # LR pixel whose footprint is all invalid HR
    assert lr_valid[:, 0, 0].all()
    assert np.all(lr[~lr_valid[:, None].repeat(1, axis=1)] == 0)
    # where valid, values sit near the constant (only noise, no leak from the hole)
    assert np.abs(lr[:, 0][lr_valid] - 0.3).max() < 0.02


def test_simulate_dataset_keeps_hr_masks_grid_and_split(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_dataset(src, n_scenes=3, size_hr=48, seed=2, frames=2)
    out = simulate_dataset(src, tmp_path / "sim", frames=5, seed=1)
    assert [p.name for p in out] == [p.name for p in list_scenes(src)]
    assert load_split(tmp_path / "sim") == load_split(src)
    for p in out:
        a, b = read_scene(src / p.name), read_scene(p)
        assert b.frames == 5 and b.extra["simulated"]
        np.testing.assert_array_equal(a.hr, b.hr)
        for k in ("buildings", "roads"):
            np.testing.assert_array_equal(a.masks[k], b.masks[k])
        assert b.hr_transform == a.hr_transform
        assert b.lr_transform == pytest.approx(compose(a.hr_transform, Affine.scale(3)))
        assert b.lr.shape[-2:] == (16, 16)
    again = simulate_dataset(src, tmp_path / "sim2", frames=5, seed=1)
    np.testing.assert_array_equal(read_scene(again[0]).lr, read_scene(out[0]).lr)
    with pytest.raises(SceneError, match="must differ"):
        simulate_dataset(src, src)
