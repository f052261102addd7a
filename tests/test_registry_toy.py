"""A new SR architecture is one file and one registration: train, save, read, plan and super-resolve a toy one.

The toy network lives in ``tests/toy_archs/toy_sr.py`` and nothing else in
the project knows its name. Every consumer (config checks, the trainer's model
factory and loss computer, the card, the tiler, the SR job) must learn what it
needs from the registry entry, or this test fails.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

import tests.toy_archs.toy_sr  # noqa: F401  (the one registration)
from core import api
from core.inference.planning import plan_tiles
from core.models import registry
from core.models.zoo import read_card
from core.options import SuperResolveOptions
from core.training.config import load_config
from core.training.trainer import train
from tests.helpers import tiny_towns

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")

data = tiny_towns(seed=3)


def test_the_registry_entry_carries_the_toys_facts():
    s = registry.spec("toysr")
    assert (s.task, s.multi_image, s.frames_hparam, s.channels_hparam, s.tile_multiple) == (
        "sr", True, "frames", "in_chans", 8)
    assert "toysr" in registry.archs_for("sr") and "toysr" not in registry.archs_for("segmentation")


def test_a_toy_architecture_trains_saves_plans_and_super_resolves(data, tmp_path):
    cfg = load_config(ROOT / "resources" / "configs" / "tiny_rams_baseline.yaml",
                      [f"data.root={data}", f"out_dir={tmp_path / 'run'}", "epochs=1", "model.arch=toysr",
                       "model.hparams={width: 4}"])
    best = train(cfg)
    card = read_card(best)
    assert (card.arch, card.frames, card.in_chans, card.input_frames) == ("toysr", 3, 1, 3)

    plan = plan_tiles(card, torch.device("cpu"))
    assert (plan.tile, plan.overlap) == (40, 5)  # the toy's own defaults, not anybody else's

    lr = sorted((next(p for p in Path(data).iterdir() if p.is_dir()) / "lr").glob("*.tif"))[:3]
    out = tmp_path / "sr.tif"
    api.super_resolve([str(p) for p in lr], out, best, SuperResolveOptions(trust=False))
    with rasterio.open(lr[0]) as src, rasterio.open(out) as dst:
        assert (dst.width, dst.height) == (3 * src.width, 3 * src.height)
        pixels = dst.read(1).astype(np.float64)
    assert np.isfinite(pixels).all() and pixels.std() > 0
