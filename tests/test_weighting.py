"""Static and dynamic loss weighting: formula, history, resume-exact state."""

from __future__ import annotations

import json

import pytest
import torch

from core.training.weighting import DynamicWeighting, StaticWeighting, make_weighting


def test_static_combine_is_the_weighted_sum_and_keeps_gradients():
    w = StaticWeighting({"cl1": 1.0, "dice_buildings": 0.25})
    a = torch.tensor(0.02, requires_grad=True)
    d = torch.tensor(0.6, requires_grad=True)
    total = w.combine({"cl1": a, "dice_buildings": d})
    assert total.item() == pytest.approx(0.02 + 0.25 * 0.6)
    total.backward()
    assert a.grad.item() == pytest.approx(1.0) and d.grad.item() == pytest.approx(0.25)
    assert w.end_epoch() == {"cl1": 1.0, "dice_buildings": 0.25}
    assert w.history == [{"epoch": 1, "weights": {"cl1": 1.0, "dice_buildings": 0.25}}]
    with pytest.raises(ValueError, match="'dice_roads' has no weight"):
        w.combine({"cl1": a, "dice_roads": d})


def test_dynamic_weights_follow_the_epoch_means():
    w = DynamicWeighting("cl1", {"dice_buildings": 0.25, "dice_roads": 0.5})
    # before the first epoch ends the weights are the proportions
    assert w.weights == {"cl1": 1.0, "dice_buildings": 0.25, "dice_roads": 0.5}
    steps = [
        {"cl1": 0.04, "dice_buildings": 0.8, "dice_roads": 0.5},
        {"cl1": 0.02, "dice_buildings": torch.tensor(0.4), "dice_roads": torch.tensor(0.3)},
    ]
    for s in steps:
        w.observe(s)
    new = w.end_epoch()
    # mean(cl1) = 0.03, mean(B) = 0.6, mean(R) = 0.4
    assert new["cl1"] == 1.0
    assert new["dice_buildings"] == pytest.approx(0.25 * 0.03 / 0.6)
    assert new["dice_roads"] == pytest.approx(0.5 * 0.03 / 0.4)
    assert w.history[0]["epoch"] == 1 and w.history[0]["weights"] == new
    assert w.history[0]["means"]["cl1"] == pytest.approx(0.03)
    # each weighted loss is now p_i times the reference on the epoch means
    assert new["dice_buildings"] * 0.6 == pytest.approx(0.25 * 0.03)
    total = w.combine({"cl1": torch.tensor(0.03), "dice_buildings": torch.tensor(0.6), "dice_roads": torch.tensor(0.4)})
    assert total.item() == pytest.approx(0.03 * (1 + 0.25 + 0.5))
    # the next epoch uses only its own losses
    w.observe({"cl1": 0.01, "dice_buildings": 0.5, "dice_roads": 0.25})
    second = w.end_epoch()
    assert second["dice_buildings"] == pytest.approx(0.25 * 0.01 / 0.5)
    assert second["dice_roads"] == pytest.approx(0.5 * 0.01 / 0.25)
    assert [h["epoch"] for h in w.history] == [1, 2]


def test_initial_weights_and_zero_guard():
    w = DynamicWeighting("cl1", {"dice_buildings": 0.25, "dice_roads": 0.25}, initial={"dice_roads": 0.01})
    assert w.weights["dice_roads"] == 0.01
    w.observe({"cl1": 0.05, "dice_buildings": 0.0, "dice_roads": 0.5})
    new = w.end_epoch()
    assert new["dice_buildings"] == 0.25  # a zero mean keeps the previous weight (no division by zero)
    assert new["dice_roads"] == pytest.approx(0.25 * 0.05 / 0.5)
    # an epoch without observations changes nothing
    assert w.end_epoch() == new


def test_observe_does_not_keep_the_graph():
    w = DynamicWeighting("cl1", {"dice": 0.5})
    x = torch.tensor(2.0, requires_grad=True)
    w.observe({"cl1": x * 0.01, "dice": x * 0.25})
    assert w.end_epoch()["dice"] == pytest.approx(0.5 * 0.02 / 0.5)


def test_state_dict_round_trip_resumes_exactly():
    steps = [{"cl1": 0.03 + 0.001 * i, "dice_buildings": 0.7 - 0.01 * i, "dice_roads": 0.5 + 0.02 * i} for i in range(6)]
    a = DynamicWeighting("cl1", {"dice_buildings": 0.25, "dice_roads": 0.25})
    for s in steps[:2]:
        a.observe(s)
    a.end_epoch()
    a.observe(steps[2])  # killed mid-epoch
    state = json.loads(json.dumps(a.state_dict()))  # must survive JSON (checkpoint metadata)
    b = DynamicWeighting("cl1", {"dice_buildings": 0.25, "dice_roads": 0.25})
    b.load_state_dict(state)
    for s in steps[3:]:
        a.observe(s)
        b.observe(s)
    assert a.end_epoch() == b.end_epoch()
    assert a.history == b.history and a.epoch == b.epoch == 2
    wrong = DynamicWeighting("cl1", {"dice_buildings": 0.5, "dice_roads": 0.25})
    with pytest.raises(ValueError, match="differs from the config"):
        wrong.load_state_dict(state)
    with pytest.raises(ValueError, match="cannot resume static"):
        StaticWeighting({"cl1": 1.0}).load_state_dict(state)


def test_static_state_round_trip():
    a = StaticWeighting({"cl1": 1.0, "dice": 0.1})
    a.end_epoch()
    b = StaticWeighting({"cl1": 1.0, "dice": 0.1})
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert b.epoch == 1 and b.history == a.history


def test_factory_and_config_errors():
    assert isinstance(make_weighting("static", weights={"cl1": 1.0}), StaticWeighting)
    dyn = make_weighting("dynamic", reference="cl1", proportions={"dice_roads": 0.25})
    assert isinstance(dyn, DynamicWeighting) and dyn.weights == {"cl1": 1.0, "dice_roads": 0.25}
    with pytest.raises(ValueError, match="static' or 'dynamic"):
        make_weighting("adaptive", weights={"cl1": 1.0})
    with pytest.raises(ValueError, match="keeps weight 1"):
        DynamicWeighting("cl1", {"cl1": 0.5})
    with pytest.raises(ValueError, match="needs reference"):
        make_weighting("dynamic", proportions={"dice": 0.5})
    with pytest.raises(ValueError, match="no weight"):
        dyn.observe({"dice_buildings": 0.3})


def test_fixed_terms_keep_their_weight_when_they_shrink():
    """A phantom-object penalty falls towards 0 as training works; re-weighting it by 1/mean would explode."""
    w = DynamicWeighting("cl1", {"dice_roads": 0.25}, fixed={"fp_roads": 0.5})
    assert w.weights == {"cl1": 1.0, "dice_roads": 0.25, "fp_roads": 0.5}
    for fp in (0.02, 0.002, 0.0002):
        w.observe({"cl1": 0.05, "dice_roads": 0.5, "fp_roads": fp})
        new = w.end_epoch()
        assert new["fp_roads"] == 0.5
        assert new["dice_roads"] == pytest.approx(0.25 * 0.05 / 0.5)
    state = json.loads(json.dumps(w.state_dict()))
    again = DynamicWeighting("cl1", {"dice_roads": 0.25}, fixed={"fp_roads": 0.5})
    again.load_state_dict(state)
    assert again.weights == w.weights
    with pytest.raises(ValueError, match="differs"):
        DynamicWeighting("cl1", {"dice_roads": 0.25}, fixed={"fp_roads": 0.1}).load_state_dict(state)
    with pytest.raises(ValueError, match="not both"):
        DynamicWeighting("cl1", {"dice_roads": 0.25}, fixed={"dice_roads": 0.1})
