"""core.api: light to import, finds checkpoints, forwards to the engine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from core import api
from core.options import EvaluateOptions, SegmentOptions, SuperResolveOptions

ROOT = Path(__file__).resolve().parent.parent


def test_importing_api_does_not_import_torch_or_rasterio():
    code = "import sys, core.api; print(sorted(m for m in ('torch', 'rasterio') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_shipped_models_dir_is_the_plugin_resources_folder():
    assert api.shipped_models_dir() == ROOT / "resources" / "models"
    assert api.shipped_models_dir().is_dir()


@pytest.fixture()
def model_dir(tmp_path):
    from core.models.zoo import ModelCard, build, save_checkpoint

    torch.manual_seed(0)
    rams = build("rams", preset="rams-tiny", frames=3)
    save_checkpoint(tmp_path / "rams_tiny.safetensors", rams, ModelCard.for_model(rams, name="RAMS tiny"))
    seg = build("unetpp", preset="unetpp-tiny")
    save_checkpoint(tmp_path / "roads.safetensors", seg, ModelCard.for_model(seg, name="roads", target="roads"))
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 64)
    (tmp_path / "notes.txt").write_text("not a model")
    return tmp_path


def test_list_models_finds_checkpoints_and_skips_broken_ones(model_dir, caplog):
    found = api.list_models([model_dir, model_dir])  # a folder given twice lists each file once
    mine = [(p.name, c) for p, c in found if p.parent == model_dir]
    assert [n for n, _ in mine] == ["rams_tiny.safetensors", "roads.safetensors"]
    cards = dict(mine)
    assert cards["rams_tiny.safetensors"].arch == "rams" and cards["rams_tiny.safetensors"].frames == 3
    assert cards["roads.safetensors"].task == "segmentation" and cards["roads.safetensors"].target == "roads"
    assert "broken.safetensors" in caplog.text
    shipped = [p for p, _ in api.list_models()]
    assert all(p.parent == api.shipped_models_dir() for p in shipped)
    assert [(p.name, c) for p, c in api.list_models([model_dir], include_shipped=False)] == mine


def test_model_card_reads_metadata(model_dir):
    card = api.model_card(model_dir / "rams_tiny.safetensors")
    assert card.name == "RAMS tiny" and card.scale == 3 and card.task == "sr"
    from core.models.zoo import CheckpointError

    with pytest.raises(CheckpointError):
        api.model_card(model_dir / "broken.safetensors")


def test_super_resolve_and_segment_through_the_api(tmp_path, model_dir):
    lr = tmp_path / "lr.tif"
    with rasterio.open(lr, "w", driver="GTiff", width=20, height=16, count=1, dtype="uint16", crs="EPSG:32633",
                       transform=from_origin(500000, 6000000, 10, 10)) as ds:
        ds.write(np.full((1, 16, 20), 1500, np.uint16))
    token = api.CancelToken()
    res = api.super_resolve([lr], tmp_path / "sr.tif", model_dir / "rams_tiny.safetensors", cancel=token, options=SuperResolveOptions(band=1, tile=32, overlap=4))
    with rasterio.open(res.path) as ds:
        assert ds.shape == (48, 60)
    seg = api.segment(res.path, model_dir / "roads.safetensors", out_mask=tmp_path / "roads.tif", options=SegmentOptions(tile=64, overlap=8))
    assert seg.targets == ["roads"] and seg.mask_path.is_file()
    with pytest.raises(api.InputError):
        api.segment(res.path, model_dir / "rams_tiny.safetensors", out_mask=tmp_path / "x.tif")


def test_evaluate_forwards_to_the_evaluator(tmp_path, model_dir):
    # an empty data folder: the evaluator's own clear refusal comes through the wrapper
    with pytest.raises((ValueError, FileNotFoundError)):
        api.evaluate(model_dir / "rams_tiny.safetensors", tmp_path / "no_scenes", options=EvaluateOptions(split="test"))
