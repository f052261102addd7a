"""Training patches as SR and the seasons deliver them: detail from HR down to bicubic of 10 m; snow, frost, dry, burnt, flood."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.data.degrade import sigma_for_bands
from core.data.patches import SegPatchDataset
from core.data.radiometric import band_wavelengths
from core.data.scene import read_scene
from core.data.seasons import SEASONS, SeasonJitter, apply_season
from core.data.sharpness import SharpnessJitter
from core.training.config import ConfigError, load_config
from tests.helpers import tiny_towns

ROOT = Path(__file__).resolve().parents[1]
RGBN = band_wavelengths(["B02", "B03", "B04", "B08"])
SIGMAS = sigma_for_bands(["B02", "B03", "B04", "B08"])
TINY_SEG = ROOT / "resources" / "configs" / "tiny_segmentation_buildings.yaml"

data = tiny_towns(seed=5)


def _edges(image: np.ndarray) -> float:
    return float(np.abs(np.diff(image, axis=-1)).mean())


def _roofs(n: int = 48) -> np.ndarray:
    """Meadow with 3 x 3 px bright roofs every 6 px: detail that only the HR grid holds."""
    img = np.empty((4, n, n), np.float32)
    img[:] = np.array([0.04, 0.07, 0.05, 0.35], np.float32)[:, None, None]
    for r in range(1, n - 3, 6):
        for c in range(1, n - 3, 6):
            img[:, r:r + 3, c:c + 3] = np.array([0.25, 0.22, 0.2, 0.3], np.float32)[:, None, None]
    return img


def test_bicubic_of_10m_keeps_the_means_and_loses_the_roof_edges():
    image = _roofs()
    out = SharpnessJitter(prob=1.0, sharp_high=0.0, noise=0.0).apply(image, SIGMAS, np.random.default_rng(0))
    assert out.shape == image.shape and out.dtype == image.dtype
    assert np.allclose(out.mean(axis=(1, 2)), image.mean(axis=(1, 2)), atol=0.01)
    assert _edges(out) < 0.6 * _edges(image)
    # partly sharp patches lie between: more edges than bicubic, fewer than HR
    part = SharpnessJitter(prob=1.0, sharp_high=0.8, noise=0.0).apply(image, SIGMAS, np.random.default_rng(4))
    assert _edges(out) < _edges(part) < _edges(image)


def test_off_by_default_nodata_kept_and_odd_sizes_work():
    image = _roofs(31)
    assert SharpnessJitter().apply(image, SIGMAS, np.random.default_rng(0)) is image
    image[:, 5, 7] = np.nan
    out = SharpnessJitter(prob=1.0).apply(image, SIGMAS, np.random.default_rng(2))
    assert out.shape == (4, 31, 31)
    assert np.isnan(out[:, 5, 7]).all() and np.isfinite(np.delete(out.reshape(4, -1), 5 * 31 + 7, axis=1)).all()
    assert (np.nan_to_num(out) >= 0).all()


@pytest.mark.parametrize("season", SEASONS)
def test_each_season_changes_the_land_not_the_objects_that_must_stay(season):
    image = _roofs()
    buildings = np.zeros(image.shape[1:], bool)
    buildings[1:4, 1:4] = True
    roads = np.zeros_like(buildings)
    roads[20:22, :] = True
    out = apply_season(season, image, RGBN, buildings, roads, np.random.default_rng(1))
    assert out.shape == image.shape and np.isfinite(out).all() and (out >= 0).all()
    land = ~(buildings | roads)
    assert not np.allclose(out[:, land], image[:, land], atol=1e-3)
    if season in ("burnt", "flood", "frost", "dry", "dormant"):  # objects keep their look (and so their masks)
        assert np.allclose(out[:, ~land], image[:, ~land])
    if season == "snow":  # bright land, and ploughed roads keep at most a third of its cover
        assert out[:3, land].mean() > 2 * image[:3, land].mean()
        road_gain = (out[:3, roads] - image[:3, roads]).mean()
        land_gain = (out[:3, land] - image[:3, land]).mean()
        assert road_gain < 0.5 * land_gain
    if season == "dormant":  # green land loses most of its NIR: the roofs' summer cue is gone
        meadow = land & (image[3] > 1.5 * image[2])
        assert meadow.any() and out[3, meadow].mean() < 0.65 * image[3, meadow].mean()


def test_season_weights_choose_and_bad_values_are_named():
    only_snow = SeasonJitter(prob=1.0, weights=(1, 0, 0, 0, 0))
    rng = np.random.default_rng(0)
    assert {only_snow.draw(rng) for _ in range(20)} == {"snow"}
    assert SeasonJitter().draw(rng) is None
    with pytest.raises(ValueError, match="weights"):
        SeasonJitter(prob=0.5, weights=(0, 0, 0, 0, 0))
    # a recipe written before the dormant season holds five odds: it never draws it, and draws as before
    old = SeasonJitter(prob=1.0, weights=(3, 1, 2, 1, 1))
    assert old.weights[-1] == 0.0
    assert "dormant" not in {old.draw(np.random.default_rng(s)) for s in range(200)}
    assert "dormant" not in {SeasonJitter(prob=1.0).draw(np.random.default_rng(s)) for s in range(200)}
    asked = SeasonJitter(prob=1.0, weights=(0, 0, 0, 0, 0, 1))
    assert {asked.draw(np.random.default_rng(s)) for s in range(20)} == {"dormant"}
    with pytest.raises(ConfigError, match=r"data\.season\.prob: must be between 0 and 1"):
        load_config(TINY_SEG, ["data.season.prob=2"], check_files=False)
    with pytest.raises(ConfigError, match=r"data\.sharpness\.sharp_high: must be between 0 and 1"):
        load_config(TINY_SEG, ["data.sharpness.sharp_high=-1"], check_files=False)
    cfg = load_config(TINY_SEG, ["data.season.prob=0.3", "data.sharpness.prob=0.5"], check_files=False)
    assert cfg.data.season.active and cfg.data.sharpness.active and not cfg.data.radiometry.active


def test_segmentation_patches_change_their_image_never_their_mask(data):
    scenes = [read_scene(p) for p in sorted(Path(data).glob("*")) if (p / "scene.json").is_file()][:2]
    plain = SegPatchDataset(scenes, patch=33, samples_per_epoch=6, seed=3)
    varied = SegPatchDataset(scenes, patch=33, samples_per_epoch=6, seed=3,
                             sharpness=SharpnessJitter(prob=1.0), season=SeasonJitter(prob=1.0))
    changed = 0
    for i in range(6):
        a, b = plain[i], varied[i]
        assert set(a) == set(b)
        assert np.array_equal(a["mask"].numpy(), b["mask"].numpy())
        changed += not np.allclose(a["image"].numpy(), b["image"].numpy())
    assert changed == 6


def test_a_network_trained_with_seasons_and_sharpness_says_so_in_its_card(data, tmp_path):
    from core.models.zoo import read_card
    from core.training.trainer import train

    cfg = load_config(TINY_SEG, [f"data.root={data}", f"out_dir={tmp_path / 'run'}", "epochs=1",
                                 "data.season.prob=0.5", "data.sharpness.prob=0.5"])
    card = read_card(train(cfg))
    variation = card.recipe["data"]["variation"]
    assert set(variation) == {"season", "sharpness"}, "only what was drawn is recorded"
    assert variation["season"]["prob"] == 0.5 and list(variation["season"]["weights"]) == [3.0, 1.0, 2.0, 1.0, 1.0, 0.0]
    assert variation["sharpness"]["prob"] == 0.5


def test_statistics_of_a_network_trained_with_seasons_include_the_snow_it_saw(data):
    from core.training.card_facts import training_stats

    scenes = [read_scene(p) for p in sorted(Path(data).glob("*")) if (p / "scene.json").is_file()]
    plain = training_stats(scenes, [0], ["B08"], hr=True)
    snowy = training_stats(scenes, [0], ["B08"], hr=True, season=SeasonJitter(prob=1.0, weights=(1, 0, 0, 0, 0)))
    assert snowy["B08"]["p98"] > plain["B08"]["p98"] + 0.05


def test_the_snow_warning_says_whether_the_networks_saw_simulated_snow():
    from core.api import shipped_models_dir
    from core.io.input_signs import check_snow_cloud
    from core.models.zoo import read_card

    assert read_card(shipped_models_dir() / "unetpp_buildings.safetensors").trained_seasons[0] == "snow"
    assert read_card(shipped_models_dir() / "hat_taskdriven.safetensors").trained_seasons == []
    never = check_snow_cloud(0.4, "winter.tif")
    simulated = check_snow_cloud(0.4, "winter.tif", saw_snow=True)
    assert never.level == simulated.level == "warning"
    assert "were not trained on snow" in never.message
    assert "saw snow only in simulated seasons" in simulated.message and "not trained" not in simulated.message
    assert "saw snow only in simulated seasons and never saw cloud" in check_snow_cloud(0.1, "p.tif", saw_snow=True).message


def test_snow_in_the_shade_is_grey_blue_off_objects_and_off_by_default():
    """``shade``: part of the snowy open land lit by the sky only (the real snowy patch's phantom roofs)."""
    image = _roofs()
    buildings = np.zeros(image.shape[1:], bool)
    buildings[1:4, 1:4] = True
    roads = np.zeros_like(buildings)
    sunlit = apply_season("snow", image, RGBN, buildings, roads, np.random.default_rng(3))
    assert np.array_equal(sunlit, apply_season("snow", image, RGBN, buildings, roads, np.random.default_rng(3),
                                               shade=0.0)), "off: every draw as before the shade existed"
    shaded = apply_season("snow", image, RGBN, buildings, roads, np.random.default_rng(3), shade=1.0)
    darker = (shaded[:3].mean(0) < sunlit[:3].mean(0) - 0.05) & ~buildings
    assert darker.mean() > 0.05, "some open land is in the shade"
    drop = sunlit[:, darker] - shaded[:, darker]  # the sky lights the blue most: the NIR loses the most
    assert (drop[3] > drop[0]).all() and (drop[2] > drop[0]).all()
    # the roofs get the same snow in both (the shade falls on open land only)
    assert np.allclose(shaded[:, buildings], sunlit[:, buildings])
    with pytest.raises(ValueError, match="shade"):
        SeasonJitter(prob=0.5, shade=1.5)
