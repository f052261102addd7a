"""Wald self-supervised adaptation on the analyst's own revisits, end to end on a small synthetic area.

Real files (revisit GeoTIFFs, buildings/roads GeoPackages in EPSG:4326), real
degradation, real (tiny) training through the trainer, real tiled inference.
These tests check the mechanics and the honesty of the report; whether the
numbers improve needs minutes of training and is shown by
``scripts/wald_demo.py`` (docs/results/area_wald.md).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core.area.wald import CHECKPOINT_NAME
from core.area.wald_pairs import prepare_wald, read_wald, wald_scene
from core.data.degrade import Degradation, sigma_for_bands
from core.data.scene import load_split, read_scene

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py: one intra-op thread for the module


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from core.data.synthetic.area import write_area_files
    from core.data.synthetic.towns import make_scene

    scene = make_scene(size_hr=288, frames=3, seed=5)  # 96 x 96 px at 10 m: 2 x 2 tiles of 48 px
    return write_area_files(scene, tmp_path_factory.mktemp("inputs"), vector_crs="EPSG:4326")


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """A tiny RAMS to adapt and untrained tiny UNet++ networks (their false positives are numbers all the same)."""
    from core.models.zoo import ModelCard, build, save_checkpoint

    tmp = tmp_path_factory.mktemp("nets")
    torch.manual_seed(0)
    out = {}
    sr = build("rams", filters=8, N=1, r=4, frames=3)
    out["sr"] = tmp / "start.safetensors"
    save_checkpoint(out["sr"], sr, ModelCard.for_model(sr, normalization={"offset": 0.0, "scale": 0.5},
                                                       bands=["B8"], name="tiny start"))
    for target in ("buildings", "roads"):
        seg = build("unetpp", preset="unetpp-tiny", in_channels=1)
        out[target] = tmp / f"{target}.safetensors"
        save_checkpoint(out[target], seg, ModelCard.for_model(seg, target=target, bands=["B8"],
                                                              normalization={"offset": 0.0, "scale": 0.5}))
    return out


def _listing(folder: Path) -> set:
    return {p for p in folder.rglob("*")}


# --------------------------------------------------------------------------- the pairs


def test_wald_pair_degrades_every_revisit_and_keeps_the_clearest_as_target(files, tmp_path):
    from core.area.tiles import prepare_area

    area = tmp_path / "area"
    prepare_area(files.revisits, 1, None, files.roads, area, tile_lr=48, gap_tiles=0, band_name="B8")
    names = load_split(area)["train"]
    tile = read_scene(area / names[0])
    assert set(tile.masks) == {"roads"}  # no buildings layer given: no buildings mask
    # cloud one revisit partly, so another one is the clearest
    tile.lr_valid[0, :20] = False
    tile.lr[0, :, :20] = 0.0
    sigma = sigma_for_bands(["B8"])[0]
    pair = wald_scene(tile, sigma, noise=False)
    ref = pair.extra["wald"]["reference_frame"]
    assert ref == 1 and pair.extra["wald"]["frame_order"] == [1, 0, 2]
    np.testing.assert_array_equal(pair.hr, tile.lr[ref])
    assert pair.lr.shape == (3, 1, 16, 16) and pair.hr.shape == (1, 48, 48)
    # frame j is revisit order[j] through the S-2 operator, no extra shift
    want = Degradation(scale=3, sigma_hr=sigma)(torch.from_numpy(tile.lr[[2]]))[0, 0].numpy()
    np.testing.assert_allclose(pair.lr[2, 0], want, atol=2e-6)
    # the clouded rows of revisit 0 (its frame 1) are invalid at 30 m, with the PSF's reach beyond them
    assert not pair.lr_valid[1, :6].any() and pair.lr_valid[1, 8:].all() and pair.lr_valid[0].all()
    assert pair.masks["roads"].shape == (48, 48)
    assert pair.lr_transform.a == pytest.approx(30.0) and pair.hr_transform.a == pytest.approx(10.0)

    out = prepare_wald(area, tmp_path / "wald", noise=True, seed=3)
    record = read_wald(out.root)
    assert record["noise"] and record["psf_sigma_10m_px"] == pytest.approx(sigma)
    assert load_split(out.root)["test"] == load_split(area)["test"]
    a = read_scene(out.root / names[0])
    again = prepare_wald(area, tmp_path / "wald", noise=True, seed=3)  # same seed: the same noise
    np.testing.assert_array_equal(read_scene(again.root / names[0]).lr, a.lr)
    noisy = a.lr[0, 0] - read_scene(prepare_wald(area, tmp_path / "wald_clean", noise=False).root / names[0]).lr[0, 0]
    assert 5e-4 < float(noisy.std()) < 1e-2  # the S-2-like noise, in reflectance


def test_tile_size_that_gives_no_30m_grid_is_refused(files, tmp_path, nets):
    from core.area.wald import adapt_area
    from core.jobs import InputError
    from core.options import WaldOptions

    with pytest.raises(InputError, match="at least 24"):  # refused by the options (and by the job)
        adapt_area(files.revisits, nets["sr"], tmp_path / "out", options=WaldOptions(tile_lr=21))
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- end to end


def test_cli_wald_end_to_end(files, nets, tmp_path):
    """`area wald` runs, reports finite before/after numbers, registers a loadable card naming the protocol."""
    from core.inference.loading import load_model
    from core.models.zoo import read_card

    out = tmp_path / "run"
    watched = tmp_path
    before_files = _listing(watched)
    cwd_before = set(os.listdir(ROOT))
    cmd = [sys.executable, "-m", "core.cli", "area", "wald", "--revisits", *map(str, files.revisits), "--band", "1",
           "--checkpoint", str(nets["sr"]), "--out", str(out), "--buildings", str(files.buildings),
           "--roads", str(files.roads), "--seg-buildings", str(nets["buildings"]), "--seg-roads", str(nets["roads"]),
           "--epochs", "1", "--samples", "4", "--batch-size", "2", "--tile", "48", "--gap", "0", "--device", "cpu",
           "--progress", "none"]
    run = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "cPSNR 30 m -> 10 m" in run.stdout and "grid score" in run.stdout

    report = json.loads((out / "wald_report.json").read_text())
    for when in ("before", "after"):
        wald, up = report[when]["wald"], report[when]["upscaled"]
        for value in (wald["cpsnr"], wald["cssim"], wald["cpsnr_bicubic"], up["grid_score"],
                      up["grid_score_bicubic"], up["consistency_cpsnr"]):
            assert value is not None and math.isfinite(value)
        for target in ("buildings", "roads"):
            for key in (f"{target}_fp_share", f"{target}_fp_share_bicubic"):
                assert up[key] is not None and 0.0 <= up[key] <= 1.0
    # only the held-out strip is measured, at both scales
    assert report["before"]["wald"]["tiles"] == len(report["area"]["held_out"]) == 2
    assert {r["tile"] for r in report["per_tile"]["after"]["upscaled"]} == set(report["area"]["held_out"])
    assert (out / "wald_report.md").is_file() and (out / "wald_report.png").is_file()
    md = (out / "wald_report.md").read_text()
    assert "Wald self-supervised adaptation" in md and "| cPSNR 30 m -> 10 m" in md

    ckpt = out / CHECKPOINT_NAME
    card = read_card(ckpt)
    assert "Wald self-supervised adaptation on run" in card.description
    assert card.recipe["kind"] == "wald self-supervised adaptation"
    assert card.metrics["wald_held_out"]["after"]["cpsnr"] == pytest.approx(report["after"]["wald"]["cpsnr"])
    assert "grid_score" in card.metrics["upscaled_held_out"]["before"]
    loaded = load_model(ckpt, torch.device("cpu"), task="sr")
    assert loaded.frames == 3

    # nothing written outside --out (nor in the repository the command ran in)
    new = {p for p in _listing(watched) - before_files if out not in p.parents and p != out}
    assert not new, sorted(map(str, new))
    assert set(os.listdir(ROOT)) == cwd_before

    # started again with the same arguments, through the API the plugin calls: reuses the tiles and the "before"
    # numbers, resumes the finished training (nothing left to train), measures and registers again
    from core import api
    from core.options import AreaOptions

    events = []  # through finetune_area's Wald switch: the fine-tune's options become the Wald job's
    opts = AreaOptions(epochs=1, samples_per_epoch=4, batch_size=2, device="cpu", wald=True, tile_lr=48,
                       gap_tiles=0)
    again = api.finetune_area(files.revisits, files.buildings, files.roads, nets["sr"], nets["buildings"],
                              nets["roads"], out, options=opts, progress=events.append)
    text = " ".join(str(e.get("message", "")) for e in events)
    assert "already prepared" in text and "already made" in text
    assert not [e for e in events if e.get("event") == "step"]  # resumed after its last epoch
    assert again.before["wald"]["cpsnr"] == pytest.approx(report["before"]["wald"]["cpsnr"])
    assert again.after["wald"]["cpsnr"] == pytest.approx(report["after"]["wald"]["cpsnr"], abs=1e-6)
    assert events[-1]["event"] == "done" and Path(events[-1]["checkpoint"]) == ckpt
