"""The segmenter stage of an area fine-tune (``finetune_segmenters``), with the shipped 4-band networks.

Why: the shipped building and road networks may be blind on an analyst's city,
and an SR network fine-tuned against a blind segmenter learns nothing from its
Dice. The stage fine-tunes both segmenters on the area first (on the starting
SR network's output of the revisits against the OSM masks) and the SR stage
then trains against them. Real parts only: GeoTIFF revisits and GeoPackages of
a world-v2 strip, the shipped RAMS and UNet++ files, one tiny epoch each; the
tests check the mechanics (files, cards, report, which networks the SR stage
used, events, cancel and resume), not whether Dice rises (that needs minutes:
docs/results/area_finetune.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.test_area_four_bands import BANDS, ENV, RAMS, ROOT, SEG, TILE, strip_with_objects

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py: one intra-op thread for the module

#: one tiny epoch per stage on a 1 x 4 tile strip (two training tiles, one held out)
TINY = dict(tile_lr=TILE, epochs=1, samples_per_epoch=2, batch_size=2, lr_patch=16, device="cpu",
            overrides=("val_tile=24", "val_overlap=4"), finetune_segmenters=True, seg_epochs=1)


@pytest.fixture(scope="module")
def area_files(tmp_path_factory):
    from core.data.synthetic.area import write_area_files
    from core.data.synthetic.world_v2 import make_world_scene

    scene = make_world_scene(size_hr=288, frames=3, seed=3, object_free=False)
    return write_area_files(strip_with_objects(scene), tmp_path_factory.mktemp("standin"), vector_crs="EPSG:4326")


class CancelAtFirstSegmenterStep:
    """A cancel token that turns on at the segmenter stage's first training step (the run must stop there)."""

    def __init__(self) -> None:
        self.cancelled = False

    def __call__(self, event):
        if event.get("event") == "step" and str(event.get("stage", "")).startswith("segmenter_"):
            self.cancelled = True


def test_segmenter_stage_registers_both_networks_and_the_sr_stage_uses_them(area_files, tmp_path):
    from core import api
    from core.jobs import Cancelled
    from core.models.zoo import load_checkpoint, read_card
    from core.options import AreaOptions
    from core.training.loop import TrainingCancelled

    out = tmp_path / "run"
    opts = AreaOptions(**TINY)
    # cancelled inside the segmenter stage (honoured at its next check, here before the roads network): the
    # roads network and the SR network are not registered, and the same call later goes on from there
    token = CancelAtFirstSegmenterStep()
    with pytest.raises((TrainingCancelled, Cancelled)):
        api.finetune_area(area_files.revisits, area_files.buildings, area_files.roads, RAMS, SEG["buildings"],
                          SEG["roads"], out, opts, progress=token, cancel=token)
    assert not (out / "area_seg_roads.safetensors").exists() and not (out / "area_finetuned.safetensors").exists()
    assert not (out / "train").exists()

    events = []
    res = api.finetune_area(area_files.revisits, area_files.buildings, area_files.roads, RAMS, SEG["buildings"],
                            SEG["roads"], out, opts, progress=events.append)
    names = sorted(Path(p).name for p in area_files.revisits)
    for target in ("buildings", "roads"):
        seg = res.segmenters[target]
        path = Path(seg["checkpoint"])
        assert path == out / f"area_seg_{target}.safetensors" and path.is_file()
        for when in ("before", "after"):
            assert 0.0 <= seg[when]["dice"] <= 1.0
        card = read_card(path)  # a card like the shipped ones, saying where and on what it was fine-tuned
        assert card.task == "segmentation" and card.target == target and card.bands == BANDS
        assert card.recipe["kind"] == "area fine-tune (segmenter)"
        record = card.recipe["area_finetune"]
        assert sorted(record["revisits"]) == names and record["input"] == "sr"
        assert record["started_from"] == str(SEG[target]) and record["held_out_tiles"] == 1
        assert card.metrics["area_held_out"]["after"]["dice"] == pytest.approx(seg["after"]["dice"])
        model, _ = load_checkpoint(path)
        shipped, _ = load_checkpoint(SEG[target])
        assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), shipped.state_dict().values()))
    # the SR stage trained and was measured against the fine-tuned segmenters, not the shipped ones
    used = {t: str(out / f"area_seg_{t}.safetensors") for t in ("buildings", "roads")}
    config = yaml.safe_load((out / "train" / "config.yaml").read_text())
    assert config["seg_nets"] == used
    assert read_card(res.checkpoint).recipe["area_finetune"]["seg_nets"] == used
    done = events[-1]
    assert done["event"] == "done" and done["seg_nets"] == used
    assert set(done["segmenters"]) == {"buildings", "roads"}
    # the held-out tiles monitored during training are scored like the "after" measurement (whole tiles)
    history = json.loads((out / "seg_roads" / "history.json").read_text())
    assert history[-1]["val"]["dice"] == pytest.approx(res.segmenters["roads"]["after"]["dice"], abs=2e-3)
    # on the same pixels (the starting SR output), a segmenter's "after" is the SR stage's "before"
    assert res.before["roads_dice"] == pytest.approx(res.segmenters["roads"]["after"]["dice"], abs=1e-9)
    # they also learned on, and are scored on, the output anchored to the revisits as the plugin writes it
    assert (out / "seg_inputs" / "tile_r00_c00_anchored").is_dir()
    assert res.before["roads_dice_anchored"] == pytest.approx(res.segmenters["roads"]["after"]["dice_anchored"],
                                                              abs=1e-9)
    # the segmenters' training moved the progress bar but did not add epochs to the SR run's curves
    assert any(e["event"] == "step" and e.get("stage") == "segmenter_roads" and "loss" not in e for e in events)
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [1]
    # the report lists all three networks with before/after
    report = json.loads(res.report_json.read_text())
    for target in ("buildings", "roads"):
        assert report["segmenters"][target]["before"]["dice"] is not None
        assert report["segmenters"][target]["checkpoint"] == used[target]
    assert report["seg_nets"] == used
    md = res.report_md.read_text()
    assert "## Stage 1: segmenters fine-tuned on the area" in md and md.count("| Dice |") == 2
    assert "area_seg_roads.safetensors" in md and "| Dice buildings |" in md
    # the network finished before the cancel was not trained again
    assert any("segmenter buildings: already fine-tuned on this area" in str(e.get("message")) for e in events)


def test_cli_area_run_finetune_segmenters_flag(area_files, tmp_path):
    """``--finetune-segmenters`` (here on the bicubic upsampling) prints both segmenters' Dice and writes them."""
    from core.models.zoo import read_card

    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "core.cli", "area", "run", "--revisits", *map(str, area_files.revisits),
           "--buildings", str(area_files.buildings), "--roads", str(area_files.roads), "--checkpoint", str(RAMS),
           "--seg-buildings", str(SEG["buildings"]), "--seg-roads", str(SEG["roads"]), "--out", str(out),
           "--tile", str(TILE), "--epochs", "1", "--samples", "2", "--batch-size", "2", "--patch", "16",
           "--device", "cpu", "--progress", "none", "--set", "val_tile=24", "val_overlap=4",
           "--finetune-segmenters", "--seg-epochs", "1", "--seg-input", "bicubic"]
    run = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    for target in ("buildings", "roads"):
        line = next(x for x in run.stdout.splitlines() if x.startswith(f"segmenter {target} Dice"))
        assert " before " in line and " after " in line and "n/a" not in line, run.stdout
        card = read_card(out / f"area_seg_{target}.safetensors")
        assert card.recipe["area_finetune"]["input"] == "bicubic"
    assert (out / "area_finetuned.safetensors").is_file()


def test_the_segmenter_stage_and_wald_are_refused_together():
    from core.jobs import InputError
    from core.options import AreaOptions

    with pytest.raises(InputError, match="Wald"):
        AreaOptions(wald=True, finetune_segmenters=True)
