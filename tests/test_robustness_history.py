"""Case 9: ``history.json`` never describes another epoch than the resume state ``last.pt``.

Reported (a flaky GUI test under CPU load): the training dialog stops a run with SIGTERM;
landing while ``last.pt`` was being written, it left ``history.json`` one epoch ahead, and
the resumed run then disagreed with what the dialog had shown. Here SIGTERM is sent at
exactly that moment, and a history that is ahead anyway is put back in line on resume.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.data.scene import write_scene
from core.training.config import load_config
from core.training.trainer import RESUME_FILE, trainer_for
from tests.robustness_support import ROOT, tiny_scene

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ROOT / "resources" / "configs" / "tiny_rams_baseline.yaml"
QUICK = ["epochs=3", "data.samples_per_epoch=4", "data.batch_size=2", "data.lr_patch=8", "val_tile=8",
         "val_overlap=0", "device=cpu"]

# Runs a tiny training and sends itself SIGTERM right after the second resume state has been
# written to disk (by torch.save), i.e. while the epoch's files are being put in place.
KILLED_WHILE_SAVING = """
import os, signal, sys
sys.path.insert(0, {root!r})
import torch
from core.training.config import load_config
from core.training.trainer import trainer_for

real_save = torch.save
saves = []

def save(obj, f, *args, **kwargs):
    real_save(obj, f, *args, **kwargs)
    if isinstance(obj, dict) and "history" in obj and "optimizer" in obj:
        saves.append(f)
        if len(saves) == 2:
            os.kill(os.getpid(), signal.SIGTERM)

torch.save = save
trainer_for(load_config(sys.argv[1], sys.argv[2:]), progress=None).fit()
"""


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for i, name in enumerate(("s1", "s2")):
        write_scene(tiny_scene(seed=i, name=name), root / name)
    (root / "split.json").write_text(json.dumps({"train": ["s1"], "val": ["s2"], "test": []}))
    return root


def _epochs(run: Path) -> tuple:
    history = json.loads((run / "history.json").read_text())
    state = torch.load(run / RESUME_FILE, map_location="cpu", weights_only=True)
    return [h["epoch"] for h in history], int(state["epoch"]), [h["epoch"] for h in state["history"]]


def test_sigterm_while_the_checkpoint_is_written_leaves_matching_files(tmp_path: Path, dataset: Path) -> None:
    run = tmp_path / "run"
    script = tmp_path / "killed.py"
    script.write_text(KILLED_WHILE_SAVING.format(root=str(ROOT)))
    proc = subprocess.run([sys.executable, str(script), str(TINY), *QUICK, f"data.root={dataset}",
                           f"out_dir={run}"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == -signal.SIGTERM, proc.stderr[-3000:]
    history, epoch, carried = _epochs(run)
    assert epoch in (1, 2)  # the first epoch's files, or both of the second's: never one of each
    assert history == carried == list(range(1, epoch + 1))


def test_resume_puts_a_history_that_ran_ahead_back_in_line(tmp_path: Path, dataset: Path) -> None:
    run = tmp_path / "run"
    args = [*QUICK, f"data.root={dataset}", f"out_dir={run}"]
    trainer_for(load_config(TINY, [*args, "epochs=2"]), progress=None).fit()
    history = json.loads((run / "history.json").read_text())
    state = torch.load(run / RESUME_FILE, map_location="cpu", weights_only=True)
    state["epoch"], state["history"] = 1, state["history"][:1]  # as if killed between the two renames
    torch.save(state, run / RESUME_FILE)
    assert len(history) == 2

    seen = []

    def on_event(event: dict) -> None:  # what the dialog would read right after the resume
        if event.get("event") == "log" and str(event.get("message", "")).startswith("resumed"):
            seen.append([h["epoch"] for h in json.loads((run / "history.json").read_text())])

    trainer_for(load_config(TINY, [*args, "epochs=2"]), progress=on_event).fit()
    assert seen == [[1]]
    assert _epochs(run) == ([1, 2], 2, [1, 2])
