"""Case 3: an output that is an input is refused, and ``evaluate --json`` is checked before evaluating.

Reported: ``--out`` equal to the checkpoint overwrote it; ``evaluate --json`` into a missing
folder failed only after the whole evaluation and lost its metrics.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.robustness_support import ROOT, assert_one_line_error, run_main, write_tiny_dataset

TINY_HAT = ROOT / "resources" / "configs" / "tiny_hat_baseline.yaml"


@pytest.fixture(scope="module")
def hat_b8(tmp_path_factory) -> Path:
    """A real one-band (B8) hat-tiny checkpoint, the band of the tiny scenes (the shipped networks are 4-band)."""
    import torch

    from core.models.zoo import ModelCard, build, save_checkpoint

    torch.manual_seed(0)
    net = build("hat", preset="hat-tiny", in_chans=1)
    path = tmp_path_factory.mktemp("hat") / "hat_b8.safetensors"
    save_checkpoint(path, net, ModelCard.for_model(net, bands=["B8"], name="hat_b8"))
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture()
def checkpoint(tmp_path: Path, hat_b8: Path) -> Path:
    return Path(shutil.copy(hat_b8, tmp_path / "model.safetensors"))


def test_evaluate_json_in_a_missing_folder_fails_before_evaluating(tmp_path: Path, checkpoint: Path,
                                                                   capsys) -> None:
    # the dataset does not exist either: only a check of --json made *first* names the JSON folder
    proc = run_main(["evaluate", "--checkpoint", checkpoint, "--data", tmp_path / "no-data",
                     "--json", tmp_path / "missing" / "metrics.json"], capsys)
    assert_one_line_error(proc, "metrics.json", "does not exist")


def test_evaluate_json_may_not_be_the_checkpoint(tmp_path: Path, checkpoint: Path, dataset: Path,
                                                 capsys) -> None:
    before = checkpoint.read_bytes()
    proc = run_main(["evaluate", "--checkpoint", checkpoint, "--data", dataset, "--json", checkpoint], capsys)
    assert_one_line_error(proc, "also an input")
    assert checkpoint.read_bytes() == before


def test_evaluate_json_is_written_whole(tmp_path: Path, checkpoint: Path, dataset: Path, capsys) -> None:
    out = tmp_path / "metrics.json"
    out.write_text("{\"old\": true}")
    proc = run_main(["evaluate", "--checkpoint", checkpoint, "--data", dataset, "--device", "cpu",
                     "--json", out], capsys)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(out.read_text())  # strict JSON
    assert metrics["scenes"] == 1 and "old" not in metrics
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_training_may_not_overwrite_the_checkpoint_it_starts_from(tmp_path: Path, dataset: Path, hat_b8: Path,
                                                                   capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    start = Path(shutil.copy(hat_b8, run / "best.safetensors"))
    before = start.read_bytes()
    proc = run_main(["train", TINY_HAT, "--set", f"data.root={dataset}", "--set", f"model.init_from={start}",
                     "--set", "epochs=1", "--out", run, "--progress", "none"], capsys)
    assert_one_line_error(proc, "model.init_from", "overwritten")
    assert start.read_bytes() == before and sorted(p.name for p in run.iterdir()) == ["best.safetensors"]


def test_training_may_not_rewrite_the_config_it_reads(tmp_path: Path, dataset: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    import yaml

    from core.training.config import config_to_dict, load_config

    config = run / "config.yaml"  # what an earlier run left there: the resolved recipe
    config.write_text(yaml.safe_dump(config_to_dict(load_config(TINY_HAT, [f"data.root={dataset}", "epochs=3"]))))
    before = config.read_text()
    proc = run_main(["train", config, "--set", f"data.root={dataset}", "--out", run, "--progress", "none"], capsys)
    assert_one_line_error(proc, "config.yaml", "copy it elsewhere")
    assert config.read_text() == before
