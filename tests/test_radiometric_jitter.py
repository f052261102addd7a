"""Radiometric jitter for training: L1C path radiance (strongest in B02), illumination and haze, from the recipe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.data.patches import SegPatchDataset
from core.data.radiometric import RadiometricJitter, band_wavelengths
from core.data.scene import read_scene
from core.training.config import ConfigError, load_config
from tests.helpers import tiny_towns

ROOT = Path(__file__).resolve().parents[1]
RGBN = band_wavelengths(["B02", "B03", "B04", "B08"])

data = tiny_towns(seed=5)


def test_path_radiance_falls_with_wavelength_as_in_real_l1c():
    jitter = RadiometricJitter(prob=1.0, path_radiance=0.1, gain_low=1.0, gain_high=1.0, band_gain=0.0, haze=0.0)
    out = jitter.apply(np.zeros((4, 8, 8), np.float32), RGBN, np.random.default_rng(0))
    offsets = out[:, 0, 0]
    assert np.all(np.diff(offsets) < 0) and 0 < offsets[0] <= 0.1
    # the real L1C scene's dark-object offsets: B08/B02 about 0.29
    assert offsets[3] / offsets[0] == pytest.approx((842 / 490) ** -2.5, rel=1e-4)
    assert np.allclose(out, offsets[:, None, None])


def test_transmittance_takes_most_contrast_from_the_blue_as_in_real_l1c_over_l2a():
    """ESA's L1C over L2A of one acquisition: slope 0.52-0.67 in B02, 0.71-0.75 in B08 (docs/results/l1c_l2a.md)."""
    jitter = RadiometricJitter(prob=1.0, path_radiance=0.0, gain_low=1.0, gain_high=1.0, band_gain=0.0, haze=0.0,
                               transmittance=0.4)
    image = np.full((4, 2, 2), 0.3, np.float32)
    rng = np.random.default_rng(0)
    slopes = np.array([jitter.apply(image, RGBN, rng)[:, 0, 0] / 0.3 for _ in range(400)])
    assert np.all(slopes[:, 0] <= slopes[:, 3] + 1e-6)  # blue never keeps more contrast than NIR
    assert slopes[:, 0].min() == pytest.approx(0.6, abs=0.02) and slopes[:, 0].max() > 0.97
    assert slopes[:, 3].min() > 1 - 0.4 * (842 / 490) ** -2.5 - 1e-6
    flat = RadiometricJitter(prob=1.0, path_radiance=0.0, gain_low=1.0, gain_high=1.0, band_gain=0.0, haze=0.0,
                             transmittance=0.0)
    assert np.allclose(flat.apply(image, RGBN, rng), image)  # 0 leaves contrast alone


def test_off_by_default_and_nodata_kept():
    image = np.full((4, 4, 4), 0.2, np.float32)
    image[:, 0, 0] = np.nan
    assert RadiometricJitter().apply(image, RGBN, np.random.default_rng(0)) is image
    out = RadiometricJitter(prob=1.0).apply(image, RGBN, np.random.default_rng(1))
    assert np.isnan(out[:, 0, 0]).all() and np.isfinite(out[:, 1:, 1:]).all() and (out[:, 1:, 1:] >= 0).all()
    assert not np.allclose(out[:, 1:, 1:], 0.2)


def test_recipe_sets_it_and_bad_values_are_named():
    cfg = load_config(ROOT / "resources" / "configs" / "tiny_segmentation_buildings.yaml",
                      ["data.radiometry.prob=0.8", "data.radiometry.path_radiance=0.1"], check_files=False)
    assert cfg.data.radiometry.prob == 0.8 and cfg.data.radiometry.active
    with pytest.raises(ConfigError, match=r"data\.radiometry\.prob: must be between 0 and 1"):
        load_config(ROOT / "resources" / "configs" / "tiny_segmentation_buildings.yaml",
                    ["data.radiometry.prob=1.5"], check_files=False)


def test_segmentation_patches_vary_their_radiometry_not_their_masks(data):
    scenes = [read_scene(p) for p in sorted(Path(data).glob("*")) if (p / "scene.json").is_file()][:2]
    plain = SegPatchDataset(scenes, patch=32, samples_per_epoch=4, seed=3)
    varied = SegPatchDataset(scenes, patch=32, samples_per_epoch=4, seed=3,
                             radiometry=RadiometricJitter(prob=1.0))
    a, b = plain[0], varied[0]
    assert np.array_equal(a["mask"].numpy(), b["mask"].numpy())
    assert not np.allclose(a["image"].numpy(), b["image"].numpy())
