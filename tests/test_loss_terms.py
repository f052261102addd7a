"""The one table of loss terms: names the validator accepts are the terms the trainer computes."""

from __future__ import annotations

import pytest
import torch

from core.training.config import HR_LOSSES, SEG_LOSSES, SR_LOSSES, TASK_LOSS_TARGETS
from core.training.loss_terms import LOSS_TERMS, OBJECT_FREE_MARGIN_HR, Batch


def _batch(prob: float, masks=None, labelled=None):
    B, H = 2, 48
    sr = torch.zeros(B, 1, H, H, requires_grad=True)
    logit = torch.logit(torch.tensor(prob))
    masks = masks or {"buildings": torch.zeros(B, 1, H, H), "roads": torch.zeros(B, 1, H, H)}
    return sr, Batch(sr=sr, lr=torch.zeros(B, 1, 1, 16, 16), lr_valid=torch.ones(B, 1, 16, 16, dtype=torch.bool),
                     hr=None, hr_valid=None, mask_valid=None, masks=masks, labelled=labelled, border=3,
                     seg_nets={t: (lambda x, v=logit: x + v) for t in ("buildings", "roads")})


def test_config_lists_come_from_the_table():
    assert set(SR_LOSSES) | set(SEG_LOSSES) == set(LOSS_TERMS)
    assert set(HR_LOSSES) == {"cl1", "cmse"}
    assert TASK_LOSS_TARGETS == {"dice_buildings": "buildings", "dice_roads": "roads", "fp_buildings": "buildings",
                                 "fp_roads": "roads"}


@pytest.mark.parametrize("prob", [0.9, 0.1])
def test_false_alarm_is_the_mean_probability_on_object_free_land(prob):
    sr, b = _batch(prob)
    loss = LOSS_TERMS["fp_buildings"].compute(b)
    assert loss.item() == pytest.approx(prob, rel=1e-5)
    loss.backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0  # it trains the SR network through the frozen one


def test_false_alarm_ignores_land_near_objects_and_unlabelled_scenes():
    H = 48
    roads = torch.zeros(2, 1, H, H)
    roads[:, :, :, 20] = 1  # a road column: pixels within the margin are not object-free
    _, b = _batch(0.9, {"buildings": torch.zeros(2, 1, H, H), "roads": roads})
    free = b.object_free()
    assert not free[0, 0, :, 20 - OBJECT_FREE_MARGIN_HR : 21 + OBJECT_FREE_MARGIN_HR].any()
    assert free[0, 0, :, 20 + OBJECT_FREE_MARGIN_HR + 1].all()
    _, none = _batch(0.9, labelled=torch.tensor([False, False]))
    assert LOSS_TERMS["fp_roads"].compute(none).item() == 0.0  # no labelled land: nothing to penalise
