"""A killed training run resumes from last.pt to the same weights as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from core.training.config import load_config
from core.training.trainer import RESUME_FILE, TrainingError, train
from tests.helpers import tiny_towns

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "resources" / "configs" / "tiny_rams_baseline.yaml"
# Dynamic weighting, NAdam and a cosine schedule: every piece of state that must survive a restart.
RECIPE = [
    "epochs=3",
    "optimizer=nadam",
    "scheduler={name: cosine, min_lr: 1.0e-5}",
    "loss={weighting: dynamic, reference: cl1, terms: [{name: cl1}, {name: cmse, proportion: 0.5}]}",
]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Killed(Exception):
    pass


data = tiny_towns(seed=3)


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    train(_config(data, out))
    return out


def _config(data, out, extra=()):
    return load_config(TINY, [f"data.root={data}", f"out_dir={out}", *RECIPE, *extra])


def _weights(run: Path):
    return load_file(str(run / "last.safetensors"))


def _assert_same_run(a: Path, b: Path, atol: float = 0.0) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        if atol == 0.0:
            assert torch.equal(wa[k], wb[k]), k
        else:
            torch.testing.assert_close(wa[k], wb[k], atol=atol, rtol=0.0)
    ha, hb = (json.loads((r / "history.json").read_text()) for r in (a, b))
    assert len(ha) == len(hb)
    for x, y in zip(ha, hb):
        assert x["weights"] == pytest.approx(y["weights"], rel=1e-6)
        assert x["train"] == pytest.approx(y["train"], rel=1e-6)
    assert [h["lr"] for h in ha] == [h["lr"] for h in hb]


def test_interrupted_run_resumes_to_identical_weights(data, uninterrupted, tmp_path):
    run = tmp_path / "interrupted"

    def crash_at_epoch_2(event):
        if event["event"] == "log" and event.get("epoch") == 2:
            raise Killed("simulated crash")

    with pytest.raises(Killed):
        train(_config(data, run), progress=crash_at_epoch_2)
    state = torch.load(run / RESUME_FILE, map_location="cpu", weights_only=True)
    assert state["epoch"] == 1 and len(state["history"]) == 1
    assert state["weighting"]["epoch"] == 1  # the dynamic weights of epoch 2 are in the state

    events = []
    train(_config(data, run), progress=events.append)
    assert any("resumed" in e.get("message", "") for e in events if e["event"] == "log")
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [2, 3]
    _assert_same_run(uninterrupted, run)


@pytest.mark.slow  # two fresh interpreters; test_interrupted_run_resumes... covers the same state in-process
def test_sigkilled_cli_run_resumes(data, uninterrupted, tmp_path):
    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "core.cli", "train", str(TINY), "--set", f"data.root={data}", "--out", str(run),
           "--progress", "none"] + [a for r in RECIPE for a in ("--set", r)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same thread count as the in-process run
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 240
        while not (run / RESUME_FILE).exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (run / RESUME_FILE).exists(), "no last.pt appeared"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    done = torch.load(run / RESUME_FILE, map_location="cpu", weights_only=True)["epoch"]
    assert done < 3, "the run finished before it could be killed; nothing was resumed"
    resumed = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr
    # same machine, separate processes: bitwise equality is expected, 1e-6 is the contract
    _assert_same_run(uninterrupted, run, atol=1e-6)


def test_resume_refuses_another_recipe_and_no_resume_starts_afresh(data, uninterrupted, tmp_path):
    run = tmp_path / "copy"
    run.mkdir()
    for name in ("last.pt", "last.safetensors", "best.safetensors", "history.json"):
        (run / name).write_bytes((uninterrupted / name).read_bytes())
    other = _config(data, run, ["loss={terms: [{name: cl1, weight: 1.0}]}", "epochs=4"])
    with pytest.raises(TrainingError, match="another recipe.*loss"):
        train(other)
    assert not (run / "config.yaml").exists()  # refused before anything in the folder changed
    events = []
    train(_config(data, run, ["loss={terms: [{name: cl1, weight: 1.0}]}", "epochs=1"]), progress=events.append,
          resume=False)
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [1]
    assert any("removed the previous run" in e.get("message", "") for e in events if e["event"] == "log")
    assert len(json.loads((run / "history.json").read_text())) == 1
    # the length of a cosine schedule is part of the recipe: refused, not silently changed
    with pytest.raises(TrainingError, match="epochs"):
        train(_config(data, uninterrupted, ["epochs=4"]))
