"""Compute profiles shrink every row of the grid alike and leave the recipes untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.training.config import ConfigError, apply_overrides, config_from_dict
from core.training.experiments import _profile_overrides, load_grid, load_profile

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "resources" / "configs" / "experiments"
PROFILE = GRID / "profiles" / "synthetic_cpu.yaml"


def _resolved(entry, profile):
    data = apply_overrides(entry.data, _profile_overrides(profile, entry.data))
    return config_from_dict(data, source=entry.path.name, check_files=False)


def test_shipped_profile_shrinks_each_architecture_and_keeps_recipes():
    grid = load_grid(GRID)
    profile = load_profile(PROFILE)
    row7 = _resolved(grid["7"], profile)
    assert row7.model.hparams["filters"] == 16 and row7.model.hparams["N"] == 2 and row7.epochs == 10
    assert [t.name for t in row7.loss.terms] == [t.name for t in grid["7"].config.loss.terms]
    assert row7.loss.weighting == "dynamic" and row7.data.selection.share == grid["7"].config.data.selection.share
    hat = _resolved(grid["7-S"], profile)
    assert hat.model.preset == "hat-tiny" and hat.model.hparams.get("in_chans") == 1
    seg = _resolved(grid["seg_buildings"], profile)
    assert seg.model.preset == "unetpp-tiny" and seg.epochs == 15
    finetune = _resolved(grid["8"], profile)  # fine-tuned from row 1: the finetune section comes last
    assert finetune.model.init_from == "run:1" and finetune.epochs == 5 and finetune.lr == pytest.approx(2e-4)


def test_profile_errors_are_readable(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("resnet: [epochs=1]\n")
    with pytest.raises(ConfigError, match="unknown profile section 'resnet'"):
        load_profile(bad)
    bad.write_text("rams: [epochs]\n")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_profile(bad)
