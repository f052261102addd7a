"""The 3-px grid score: natural images and bicubic stay low, a faint stamped grid scores far higher."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.data.synthetic.towns import fractal_noise
from core.models.artifacts import grid_bins, grid_score, local_grid_energy


def natural(shape=(192, 192), seed=0) -> np.ndarray:
    """Reflectance-like texture with a natural 1/f^2 power spectrum."""
    return 0.3 + 0.05 * fractal_noise(shape, 2.0, np.random.default_rng(seed))


def stamp(shape, seed=100) -> np.ndarray:
    """A zero-mean, unit-std pattern repeating every 3 pixels, like a pixel shuffle's sub-pixel offsets."""
    p = np.random.default_rng(seed).standard_normal((3, 3))
    p = (p - p.mean()) / p.std()
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return p[yy % 3, xx % 3]


def bicubic_x3(img: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))[None, None]
    return F.interpolate(t, scale_factor=3, mode="bicubic", align_corners=False)[0, 0].numpy()


def test_eight_bins_at_a_third_and_two_thirds():
    bins = grid_bins(96, 150)
    assert len(bins) == 8 and len(set(bins)) == 8
    assert {y for y, _ in bins} == {0, 32, 64} and {x for _, x in bins} == {0, 50, 100}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_natural_image_and_its_bicubic_upsampling_score_low(seed):
    img = natural(seed=seed)
    bic = bicubic_x3(natural((64, 64), seed=seed + 10))
    s_nat, s_bic = grid_score(img), grid_score(bic)
    print(f"seed {seed}: natural {s_nat:.2f}, bicubic {s_bic:.2f}")
    assert 0.1 < s_nat < 3.0  # a single periodogram fluctuates: ~0.5-1.5 typically
    assert s_bic < 3.0  # bicubic is even zero at the grid frequencies


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_faint_grid_scores_far_higher(seed):
    img = natural(seed=seed)
    amplitude = 0.08 * img.std()  # 8 % of the texture's contrast: easy to miss by eye on texture
    clean, gridded = grid_score(img), grid_score(img + amplitude * stamp(img.shape, seed))
    bic = bicubic_x3(natural((64, 64), seed=seed + 10))
    print(f"seed {seed}: clean {clean:.2f}, with grid {gridded:.1f}")
    assert gridded > 10.0 and gridded > 10 * clean
    assert grid_score(bic + amplitude * stamp(bic.shape, seed)) > 10.0


def test_flat_field_with_noise_scores_about_one_and_a_grid_under_the_noise_shows():
    rng = np.random.default_rng(3)
    flat = 0.2 + 0.002 * rng.standard_normal((150, 150))
    assert 0.2 < grid_score(flat) < 2.0
    # A grid of 0.3x the noise level per pixel is invisible pixel by pixel but periodic.
    assert grid_score(flat + 0.0006 * stamp(flat.shape)) > 10.0


def test_non_square_sizes_not_multiple_of_three_and_bands():
    img = natural((100, 151), seed=4)
    assert grid_score(img) < 3.0
    assert grid_score(img + 0.01 * stamp(img.shape)) > 10.0
    # [C, H, W]: one gridded band out of three is enough to show.
    bands = np.stack([natural((99, 120), seed=s) for s in (5, 6, 7)])
    assert grid_score(bands) < 3.0
    bands[1] += 0.01 * stamp(bands.shape[1:])
    assert grid_score(bands) > 10.0


def test_invalid_pixels_are_filled_not_scored():
    img = natural(seed=8)
    holes = img.copy()
    holes[20:70, 30:90] = np.nan
    holes[150:, :] = np.inf
    assert np.isfinite(grid_score(holes)) and grid_score(holes) < 3.0
    valid = np.isfinite(holes)
    masked = np.where(valid, img, 123.0)  # wild values where invalid must not matter
    assert grid_score(masked, valid=valid) == pytest.approx(grid_score(holes))
    assert grid_score(holes + 0.01 * stamp(img.shape)) > 10.0


def test_too_small_or_empty_gives_nan():
    assert np.isnan(grid_score(np.zeros((9, 30))))
    assert np.isnan(grid_score(np.full((30, 30), np.nan)))
    with pytest.raises(ValueError, match="H, W"):
        grid_score(np.zeros((2, 2, 30, 30)))


def test_local_grid_energy_finds_where_the_grid_is():
    img = natural((144, 240), seed=9)
    gridded = img.copy()
    # A 48-px window holds 16x fewer pixels than the whole image, so it needs a stronger grid to stand out.
    gridded[:, 120:] += 0.2 * img.std() * stamp((144, 120))
    e = local_grid_energy(gridded, window=48, step=24)
    assert e.shape == ((144 - 48) // 24 + 1, (240 - 48) // 24 + 1)
    left, right = e[:, :4], e[:, 5:]  # patches fully left / right of column 120
    print("left max", np.nanmax(left), "right min", np.nanmin(right))
    assert np.nanmax(left) < 4.0 and np.nanmin(right) > 5.0 and np.nanmedian(right) > 10.0
    # Mostly invalid patches are not scored; small images give one score.
    valid = np.ones(img.shape, bool)
    valid[:48, :48] = False
    assert np.isnan(local_grid_energy(gridded, 48, 24, valid=valid)[0, 0])
    assert local_grid_energy(img[:30, :40], window=48).shape == (1, 1)
