"""Case 7 (configs): values that cannot train are refused by validation, naming the key.

Reported: ``--set data.lr_patch=1`` was accepted and failed deep inside torch ("negative
strides"); ``data.lr_patch=2`` failed only after the data was read ("too small for a
border"); ``data.lr_patch=100000`` or ``data.frames=10**12`` exhausted memory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.training.config import ConfigError, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "resources" / "configs"
RAMS = CONFIGS / "tiny_rams_baseline.yaml"
SEG = CONFIGS / "tiny_segmentation_buildings.yaml"

REFUSED = [
    (RAMS, "data.lr_patch=1", "data.lr_patch"),
    (RAMS, "data.lr_patch=2", "data.lr_patch"),  # 6 HR px: a border of 3 px on each side leaves nothing
    (RAMS, "data.lr_patch=100000", "data.lr_patch"),
    (RAMS, "data.frames=1000000000000", "data.frames"),
    (RAMS, "model.scale=0", "model.scale"),
    (RAMS, "model.scale=100", "model.scale"),
    (RAMS, "model.scale=three", "model.scale"),
    (RAMS, "val_tile=100000", "val_tile"),
    (SEG, "data.seg_patch=1", "data.seg_patch"),
    (SEG, "data.seg_patch=100000", "data.seg_patch"),
]


@pytest.mark.parametrize("config,override,key", REFUSED, ids=[o for _, o, _ in REFUSED])
def test_untrainable_values_are_refused(config: Path, override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(config, [override])


@pytest.mark.parametrize("config,override", [(RAMS, "data.lr_patch=4"), (RAMS, "data.lr_patch=1024"),
                                             (RAMS, "data.frames=64"), (SEG, "data.seg_patch=8")])
def test_the_smallest_and_largest_workable_values_are_accepted(config: Path, override: str) -> None:
    load_config(config, [override])


def test_the_patch_must_hold_more_than_the_loss_border() -> None:
    with pytest.raises(ConfigError, match=r"loss\.border.*data\.lr_patch >= 5"):
        load_config(RAMS, ["data.lr_patch=4", "loss.border=6"])  # 12 HR px, 6 px cut on each side
    assert load_config(RAMS, ["data.lr_patch=4", "loss.border=5"]).data.lr_patch == 4
