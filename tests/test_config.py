"""Training configs: the shipped YAMLs load, and every bad recipe is refused naming its key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.training.config import ConfigError, load_config, preflight

CONFIGS = Path(__file__).resolve().parents[1] / "resources" / "configs"


def _write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


BASE = """
task: sr
epochs: 2
data: {root: somewhere, samples_per_epoch: 8, batch_size: 2, frames: 3, lr_patch: 8}
model: {arch: rams, hparams: {filters: 8, N: 1}}
loss:
  terms: [{name: cl1, weight: 1.0}]
"""


def _refused(tmp_path: Path, text: str, *fragments: str, overrides=None) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, text), overrides)
    message = str(err.value)
    for f in fragments:
        assert f in message, message
    return message


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")) + sorted((CONFIGS / "experiments").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    config = load_config(path, check_files=False)
    assert config.epochs >= 1 and config.loss.terms


def test_grid_has_every_row_of_both_tables():
    from core.training.experiments import load_grid

    grid = load_grid(CONFIGS / "experiments")
    rows = {i for i, e in grid.items() if not e.is_prerequisite}
    assert rows == {str(i) for i in range(1, 24)} | {"1-S", "7-S", "11-S", "15-S"}
    assert {grid[str(i)].config.data.version for i in range(1, 11)} == {"simulated"}
    assert {grid[str(i)].config.data.version for i in range(11, 24)} == {"real"}
    seven = grid["7"].config
    assert seven.loss.weighting == "dynamic" and seven.loss.reference == "cl1"
    assert {t.name: t.proportion for t in seven.loss.terms} == {"cl1": None, "dice_buildings": 0.25, "dice_roads": 0.25}
    assert seven.data.selection.share > 0
    for i in ("10", "19", "23"):  # trained without HR
        assert not grid[i].config.uses_hr and "consistency_l1" in grid[i].config.loss_names
    assert grid["8"].config.model.init_from == "run:1" and grid["20"].config.model.init_from == "run:11"
    assert grid["7-S"].config.model.arch == "hat" and grid["7-S"].config.data.frames == 1


def test_defaults_and_overrides(tmp_path):
    c = load_config(_write(tmp_path, BASE), ["epochs=5", "data.batch_size=4", "loss.terms[0].weight=2"])
    assert c.epochs == 5 and c.data.batch_size == 4 and c.loss.terms[0].weight == 2.0
    assert c.resolved_best_metric() == ("cpsnr", "max")
    assert c.loss.weighting == "static"


def test_base_files_merge_and_loops_are_refused(tmp_path):
    _write(tmp_path, BASE, "parent.yaml")
    child = _write(tmp_path, "base: parent.yaml\nepochs: 7\ndata: {batch_size: 4}\n", "child.yaml")
    c = load_config(child)
    assert c.epochs == 7 and c.data.batch_size == 4 and c.data.samples_per_epoch == 8  # merged, not replaced
    _write(tmp_path, "base: b.yaml\n", "a.yaml")
    _write(tmp_path, "base: a.yaml\n", "b.yaml")
    with pytest.raises(ConfigError, match="loops"):
        load_config(tmp_path / "a.yaml")


def test_unknown_keys_are_named(tmp_path):
    _refused(tmp_path, BASE + "epoch: 3\n", "unknown key epoch")
    _refused(tmp_path, BASE.replace("lr_patch: 8", "lr_pach: 8"), "data.lr_pach")
    _refused(tmp_path, BASE, "data.selection.shares", overrides=["data.selection.shares=0.5"])


def test_wrong_types_are_named(tmp_path):
    _refused(tmp_path, BASE + "lr: fast\n", "lr", "number")
    _refused(tmp_path, BASE.replace("batch_size: 2", "batch_size: 2.5"), "data.batch_size", "whole number")
    _refused(tmp_path, BASE + "deterministic: maybe\n", "deterministic")
    _refused(tmp_path, BASE.replace("terms: [{name: cl1, weight: 1.0}]", "terms: cl1"), "loss.terms", "list")


def test_unknown_loss_names_are_refused(tmp_path):
    msg = _refused(tmp_path, BASE.replace("{name: cl1, weight: 1.0}", "{name: cl1, weight: 1.0}, {name: dice_building, weight: 1}"),
                   "loss.terms[1].name", "dice_building")
    assert "dice_buildings" in msg  # the valid choices are listed
    seg = "task: segmentation\ntarget: roads\nmodel: {arch: unetpp}\ndata: {root: x, samples_per_epoch: 4, batch_size: 2}\n"
    _refused(tmp_path, seg + "loss: {terms: [{name: cl1, weight: 1}]}\n", "loss.terms[0].name", "segmentation")


def test_task_loss_needs_its_segmentation_checkpoint(tmp_path):
    text = BASE.replace("{name: cl1, weight: 1.0}", "{name: cl1, weight: 1.0}, {name: dice_roads, weight: 0.5}")
    _refused(tmp_path, text, "seg_nets.roads", "dice_roads")
    ok = load_config(_write(tmp_path, text + "seg_nets: {roads: not/yet/trained.safetensors}\n"))
    assert ok.task_targets == ["roads"]


def test_weighting_rules(tmp_path):
    dyn = BASE.replace(
        "terms: [{name: cl1, weight: 1.0}]",
        "weighting: dynamic\n  terms: [{name: cl1}, {name: dice_buildings, proportion: 0.25}]",
    ) + "seg_nets: {buildings: b.safetensors}\n"
    _refused(tmp_path, dyn, "loss.reference")
    assert load_config(_write(tmp_path, dyn), ["loss.reference=cl1"]).loss.reference == "cl1"
    _refused(tmp_path, dyn, "loss.reference", "cmse", overrides=["loss.reference=cmse"])
    _refused(tmp_path, dyn, "loss.terms[0].weight", overrides=["loss.reference=cl1", "loss.terms[0].weight=1"])
    _refused(tmp_path, BASE, "proportion", overrides=["loss.terms[0].proportion=0.5"])
    # a zero-optimum term keeps a fixed weight beside the dynamic ones; one of the two, never both
    fixed = dyn.replace("{name: dice_buildings, proportion: 0.25}]",
                        "{name: dice_buildings, proportion: 0.25}, {name: fp_buildings, weight: 0.5}]")
    terms = load_config(_write(tmp_path, fixed), ["loss.reference=cl1"]).loss.terms
    assert (terms[2].name, terms[2].weight, terms[2].proportion) == ("fp_buildings", 0.5, None)
    _refused(tmp_path, fixed, "not both", overrides=["loss.reference=cl1", "loss.terms[2].proportion=0.1"])
    only_fixed = dyn.replace("{name: dice_buildings, proportion: 0.25}", "{name: dice_buildings, weight: 0.25}")
    _refused(tmp_path, only_fixed, "at least one term with a proportion", overrides=["loss.reference=cl1"])
    _refused(tmp_path, BASE, "listed twice", overrides=["loss.terms[1]={name: cl1, weight: 1}"])


def test_impossible_numbers_are_refused(tmp_path):
    _refused(tmp_path, BASE, "data.batch_size", "bigger", overrides=["data.batch_size=16"])
    _refused(tmp_path, BASE, "epochs", overrides=["epochs=0"])
    _refused(tmp_path, BASE, "lr", overrides=["lr=-1"])
    _refused(tmp_path, BASE, "data.selection.share", overrides=["data.selection.share=1.5"])
    _refused(tmp_path, BASE, "optimizer", "sgd", overrides=["optimizer=sgd"])
    _refused(tmp_path, BASE, "model.arch", overrides=["model.arch=unetpp"])
    _refused(tmp_path, BASE, "data.frames", overrides=["model.arch=hat"])  # HAT is single-image
    _refused(tmp_path, BASE, "target", overrides=["target=roads"])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "epochs: [1,\n"))


def test_preflight_refuses_missing_data(tmp_path):
    c = load_config(_write(tmp_path, BASE), [f"data.root={tmp_path / 'absent'}"])
    with pytest.raises(ConfigError, match="data.root"):
        preflight(c)
    c = load_config(_write(tmp_path, BASE), ["data.root="])
    with pytest.raises(ConfigError, match="data.root"):
        preflight(c)


def test_config_round_trips_through_yaml(tmp_path):
    from core.training.config import config_to_dict

    c = load_config(_write(tmp_path, BASE))
    again = load_config(_write(tmp_path, yaml.safe_dump(config_to_dict(c)), "again.yaml"))
    assert again == c
