"""End to end on tiny synthetic data: segmentation nets, then baseline and task-driven RAMS, then evaluation.

Real scenes (GeoTIFFs written by core.data.synthetic), real networks (tiny
presets), real checkpoints: nothing is mocked. Every run is a few steps.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.training.config import ConfigError, load_config
from core.training.trainer import NonFiniteLossError, TrainingCancelled, train
from tests.helpers import tiny_towns

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "resources" / "configs"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # as in-process (see one_torch_thread)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


data = tiny_towns(seed=0)


@pytest.fixture(scope="module")
def seg_nets(data, tmp_path_factory):
    """Two tiny UNet++ checkpoints trained for a couple of steps (buildings, roads)."""
    out = tmp_path_factory.mktemp("seg")
    paths = {}
    for target in ("buildings", "roads"):
        events = []
        cfg = load_config(CONFIGS / f"tiny_segmentation_{target}.yaml",
                          [f"data.root={data}", f"out_dir={out / target}", "epochs=1"])
        best = train(cfg, progress=events.append)
        assert best.is_file()
        kinds = [e["event"] for e in events]
        assert kinds.count("step") >= 1 and kinds.count("epoch") == 1 and kinds[-1] == "done"
        paths[target] = best
    return paths


def _sr_config(name, data, out, seg=None, extra=()):
    overrides = [f"data.root={data}", f"out_dir={out}"]
    if seg:
        overrides += [f"seg_nets.buildings={seg['buildings']}", f"seg_nets.roads={seg['roads']}"]
    return load_config(CONFIGS / name, overrides + list(extra))


def test_segmentation_checkpoint_card(seg_nets):
    from core.models.zoo import read_card

    card = read_card(seg_nets["roads"])
    assert card.task == "segmentation" and card.target == "roads"
    assert card.recipe["losses"][0]["name"] == "dice"
    assert "dice" in card.metrics["val"]


def test_baseline_and_taskdriven_sr_then_evaluate(data, seg_nets, tmp_path):
    from core.evaluation.evaluate import evaluate_checkpoint
    from core.models.zoo import load_checkpoint, read_card
    from core.options import EvaluateOptions

    base_events = []
    base = train(_sr_config("tiny_rams_baseline.yaml", data, tmp_path / "base"), progress=base_events.append)
    steps = [e for e in base_events if e["event"] == "step"]
    assert steps and set(steps[0]) >= {"epoch", "step", "steps", "losses", "weights", "lr", "eta_s"}
    assert list(steps[0]["losses"]) == ["cl1"]

    seg_before = {t: load_checkpoint(p)[0].state_dict() for t, p in seg_nets.items()}
    td_events = []
    td = train(_sr_config("tiny_rams_taskdriven.yaml", data, tmp_path / "td", seg_nets), progress=td_events.append)
    epochs = [e for e in td_events if e["event"] == "epoch"]
    assert len(epochs) == 2
    # dynamic weighting: epoch 1 used the proportions, epoch 2 the re-estimated weights
    assert epochs[0]["weights"] == {"cl1": 1.0, "dice_buildings": 0.25, "dice_roads": 0.25}
    tr = epochs[0]["train"]
    expected = 0.25 * tr["cl1"] / tr["dice_buildings"]
    assert epochs[1]["weights"]["dice_buildings"] == pytest.approx(expected, rel=1e-6)
    assert {"buildings_dice", "roads_dice", "cpsnr"} <= set(epochs[-1]["val"])

    card = read_card(td)
    assert [t["name"] for t in card.recipe["losses"]] == ["cl1", "dice_buildings", "dice_roads"]
    assert card.recipe["weighting"] == "dynamic" and card.recipe["data"]["selection"]["share"] == 0.5
    assert card.scale == 3 and card.frames == 3 and card.normalization["scale"] > 0
    # the frozen segmentation networks were not changed by SR training
    for t, p in seg_nets.items():
        after = load_checkpoint(p)[0].state_dict()
        assert all(torch.equal(after[k], v) for k, v in seg_before[t].items())
    run = tmp_path / "td"
    history = json.loads((run / "history.json").read_text())
    assert len(history) == 2 and (run / "training_curves.png").stat().st_size > 0
    assert {"last.pt", "last.safetensors", "best.safetensors", "config.yaml"} <= {p.name for p in run.iterdir()}
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]

    for ckpt in (base, td):
        res = evaluate_checkpoint(ckpt, data, seg_nets["buildings"], seg_nets["roads"],
                                  options=EvaluateOptions(split="test", tile=16, overlap=4, hr_reference=True))
        assert math.isfinite(res["cpsnr"]) and 0 < res["cssim"] <= 1
        assert res["lpips"] is None or res["lpips"] >= 0
        for k in ("buildings_dice", "roads_dice", "hr_buildings_dice", "buildings_precision", "roads_recall"):
            assert k in res and (res[k] is None or 0.0 <= res[k] <= 1.0)
    seg_res = evaluate_checkpoint(seg_nets["buildings"], data, options=EvaluateOptions(split="test", tile=16,
                                                                                        overlap=4))
    assert seg_res["task"] == "segmentation" and seg_res["scenes"] == 1


def test_task_loss_gradients_flow_through_the_frozen_net(data, seg_nets):
    """The building Dice alone must move the SR network, never the segmentation network."""
    from core.data.patches import SRPatchDataset
    from core.data.scene import list_scenes, read_scene
    from core.evaluation.segnets import Normalization, load_frozen_segnet
    from core.models.zoo import build
    from core.models.losses import soft_dice_loss

    scenes = [read_scene(p) for p in list_scenes(data, "train")]
    batch = torch.utils.data.default_collate([SRPatchDataset(scenes, 16, 3, 4, seed=1)[i] for i in range(2)])
    norm = Normalization(0.0, 0.5)
    net, _ = load_frozen_segnet(seg_nets["buildings"], source_norm=norm)
    sr_model = build("rams", scale=3, frames=3, filters=8, N=1, r=4)
    sr = sr_model(norm.to_model(batch["lr"][:, :, 0]))
    soft_dice_loss(net(sr), batch["buildings"]).backward()
    grads = [p.grad for p in sr_model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None and not p.requires_grad for p in net.parameters())
    assert not net.training


def test_nan_loss_stops_with_a_clear_error(data, tmp_path):
    events = []
    # Enough epochs for the blow-up to reach the loss whatever the upsampler (resize-convolution diverges later).
    cfg = _sr_config("tiny_rams_baseline.yaml", data, tmp_path / "nan", extra=["lr=1.0e30", "optimizer=adam", "epochs=6"])
    with pytest.raises(NonFiniteLossError) as err:
        train(cfg, progress=events.append)
    msg = str(err.value)
    assert re.search(r"loss 'cl1' became .*nan.* at epoch \d+, step \d+", msg) and "learning rate" in msg
    assert events[-1]["event"] == "error" and "cl1" in events[-1]["message"]


def test_cancel_between_steps(data, tmp_path):
    class Token:
        cancelled = True

    with pytest.raises(TrainingCancelled, match="cancelled at epoch 1"):
        train(_sr_config("tiny_rams_baseline.yaml", data, tmp_path / "cancel"), cancel=Token())


def test_hat_single_image_trains(data, tmp_path):
    best = train(load_config(CONFIGS / "tiny_hat_baseline.yaml",
                             [f"data.root={data}", f"out_dir={tmp_path / 'hat'}", "epochs=1"]))
    from core.models.zoo import read_card

    card = read_card(best)
    assert card.arch == "hat" and card.frames == 1


def test_refusals_that_need_the_data(data, tmp_path):
    empty = tmp_path / "empty_split"
    empty.mkdir()
    for p in Path(data).iterdir():
        if p.is_dir():
            os.symlink(p, empty / p.name)
    names = sorted(p.name for p in Path(data).iterdir() if p.is_dir())
    (empty / "split.json").write_text(json.dumps({"train": [], "val": names[:1], "test": names[1:2]}))
    with pytest.raises(ConfigError, match="data.train_split.*no scenes"):
        train(_sr_config("tiny_rams_baseline.yaml", empty, tmp_path / "x"))
    with pytest.raises(ConfigError, match="data.band"):
        train(_sr_config("tiny_rams_baseline.yaml", data, tmp_path / "x", extra=["data.band=3"]))
    with pytest.raises(ConfigError, match="seg_nets.buildings.*does not exist"):
        train(_sr_config("tiny_rams_taskdriven.yaml", data, tmp_path / "x",
                         {"buildings": tmp_path / "none.safetensors", "roads": tmp_path / "none.safetensors"}))
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_checkpoint_cards_are_checked(data, seg_nets, tmp_path):
    from core.models.zoo import ModelCard, build, load_checkpoint, save_checkpoint

    x2 = tmp_path / "x2.safetensors"
    model = build("rams", scale=2, frames=3, filters=8, N=1, r=4)
    save_checkpoint(x2, model, ModelCard(arch="rams", hparams={"scale": 2, "frames": 3, "filters": 8, "N": 1, "r": 4},
                                         task="sr", target=None, scale=2, bands=["B8"], frames=3,
                                         normalization={"offset": 0.0, "scale": 1.0}))
    with pytest.raises(ConfigError, match="model.init_from.*x2"):
        _sr_config("tiny_rams_baseline.yaml", data, tmp_path / "y", extra=[f"model.init_from={x2}"])
    swapped = {"buildings": seg_nets["roads"], "roads": seg_nets["buildings"]}
    with pytest.raises(ConfigError, match="seg_nets.buildings.*roads"):
        _sr_config("tiny_rams_taskdriven.yaml", data, tmp_path / "y", swapped)
    with pytest.raises(ConfigError, match="seg_nets.roads.*not a segmentation"):
        _sr_config("tiny_rams_taskdriven.yaml", data, tmp_path / "y",
                   {"buildings": seg_nets["buildings"], "roads": x2})
    # a network trained on another band than the data's (scenes hold B8): refused before training
    red = tmp_path / "red.safetensors"
    net, card = load_checkpoint(seg_nets["roads"])
    card.bands = ["B4"]
    save_checkpoint(red, net, card)
    cfg = _sr_config("tiny_rams_taskdriven.yaml", data, tmp_path / "y", {"buildings": seg_nets["buildings"], "roads": red})
    with pytest.raises(ConfigError, match="seg_nets.roads.*band.*B4.*B8"):
        train(cfg)
    assert not (tmp_path / "y").exists()


def test_cli_train_prints_json_lines(data, tmp_path, capsys):
    """What the QGIS dialog reads: one JSON event per line on stdout, ending with "done"."""
    from core.cli.main import main

    out = tmp_path / "cli"
    rc = main(["train", str(CONFIGS / "tiny_rams_baseline.yaml"), "--set", f"data.root={data}",
               "--set", "epochs=1", "--out", str(out), "--progress", "jsonl"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    events = [json.loads(line) for line in captured.out.splitlines()]
    assert events and {e["event"] for e in events} >= {"step", "epoch", "done"}
    assert events[-1]["event"] == "done" and Path(events[-1]["checkpoint"]).is_file()
    rc = main(["train", str(CONFIGS / "tiny_rams_baseline.yaml"), "--set", "data.lr_pach=3"])
    assert rc == 1 and "data.lr_pach" in capsys.readouterr().err


def test_cli_module_runs(tmp_path):
    """The real entry point in a fresh interpreter: a refused config exits 1 with the key named."""
    bad = subprocess.run(
        [sys.executable, "-m", "core.cli", "train", str(CONFIGS / "tiny_rams_baseline.yaml"),
         "--set", "data.lr_pach=3"], cwd=ROOT, capture_output=True, text=True, timeout=300, env=ENV,
    )
    assert bad.returncode == 1 and "data.lr_pach" in bad.stderr


def test_experiment_grid_runs_rows_with_references_and_reports(data, tmp_path):
    """A two-row grid: segmentation prerequisites, a baseline, and a row fine-tuned from it."""
    from core.models.zoo import read_card
    from core.training.experiments import run_grid

    grid = tmp_path / "grid"
    grid.mkdir()
    for t in ("buildings", "roads"):
        (grid / f"seg_{t}.yaml").write_text(
            f"base: {CONFIGS / f'tiny_segmentation_{t}.yaml'}\nexperiment: {{id: seg_{t}, table: prerequisite}}\n")
    refs = 'seg_nets: {buildings: "run:seg_buildings", roads: "run:seg_roads"}\n'
    (grid / "_base.yaml").write_text(f"base: {CONFIGS / 'tiny_rams_baseline.yaml'}\n" + refs)
    (grid / "e1.yaml").write_text('base: _base.yaml\nexperiment: {id: "1", table: "3", title: baseline}\n')
    (grid / "e2.yaml").write_text(
        'base: _base.yaml\nexperiment: {id: "2", table: "3", title: fine-tuned task-driven}\n'
        'model: {init_from: "run:1"}\n'
        "loss: {weighting: dynamic, reference: cl1, terms: [{name: cl1}, {name: dice_buildings, proportion: 0.25}]}\n")
    events = []
    out = tmp_path / "runs"
    with pytest.raises(ConfigError, match="--data-simulated"):
        run_grid(grid, data_roots={"real": str(data)}, out_dir=out)
    rows = run_grid(grid, only=["2"], data_roots={"simulated": str(data)}, epochs=1, out_dir=out,
                    progress=events.append)
    assert [r["id"] for r in rows] == ["2", "HR"]  # row 1 was trained as a dependency, not reported
    assert (out / "1" / "best.safetensors").is_file() and (out / "seg_roads-simulated" / "best.safetensors").is_file()
    card = read_card(out / "2" / "best.safetensors")
    assert card.recipe["init_from"] == str(out / "1" / "best.safetensors")
    assert "cpsnr" in card.metrics["test"]
    assert rows[0]["data_version"].startswith("Table 3") and math.isfinite(rows[0]["cpsnr"])
    assert rows[1]["cpsnr"] is None and "dice_buildings" in rows[1]  # the HR upper-bound row
    assert (out / "report.html").is_file() and json.loads((out / "rows.json").read_text())[0]["id"] == "2"
    assert {e.get("experiment") for e in events if e["event"] == "epoch"} == {"seg_buildings", "seg_roads", "1", "2"}

    # Given segmentation checkpoints with --set, the rows use them and no prerequisite is trained again.
    seg_files = {t: out / f"seg_{t}-simulated" / "best.safetensors" for t in ("buildings", "roads")}
    again = []
    out2 = tmp_path / "runs_shared_seg"
    rows = run_grid(grid, only=["1"], data_roots={"simulated": str(data)}, epochs=1, out_dir=out2,
                    progress=again.append, overrides=[f"seg_nets.{t}={p}" for t, p in seg_files.items()])
    assert {e.get("experiment") for e in again if e["event"] == "epoch"} == {"1"}
    assert not (out2 / "seg_buildings-simulated").exists()
    assert read_card(out2 / "1" / "best.safetensors").recipe is not None
    assert rows[-1]["id"] == "HR" and rows[-1]["dice_buildings"] is not None
