"""Segmentation in bf16 where the hardware does it natively: same masks but for threshold pixels, fp32 on request, fp32 for SR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from core import api
from core.inference.loading import load_model
from core.inference.precision import choose_precision, cpu_has_native_bf16
from core.options import SegmentOptions

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "resources" / "models"
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def village(tmp_path_factory) -> Path:
    """A world-v2 HR image with a village: a 4-band GeoTIFF named by band, as SR writes it."""
    from core.data.synthetic.world_v2 import make_world_dataset

    root = tmp_path_factory.mktemp("village")
    make_world_dataset(root, n_scenes=1, size_hr=192, seed=11, frames=1, object_free_share=0.0)
    return next(p for p in root.iterdir() if p.is_dir()) / "hr.tif"


def test_fp32_on_request_auto_follows_the_cpu_and_bf16_without_hardware_says_why():
    messages: list = []
    assert choose_precision("fp32", CPU, messages) is None and messages == []
    auto = choose_precision("auto", CPU, messages)
    asked = choose_precision("bf16", CPU, messages)
    if cpu_has_native_bf16():
        assert auto is torch.bfloat16 and asked is torch.bfloat16 and messages == []
    else:
        assert auto is None and asked is None
        assert len(messages) == 1 and "no native bf16" in messages[0] and "fp32" in messages[0]
    with pytest.raises(ValueError, match="precision"):
        choose_precision("fp8", CPU, messages)


def test_only_segmentation_networks_from_files_change_format():
    seg = load_model(MODELS / "unetpp_buildings.safetensors", CPU, task="segmentation")
    assert seg.autocast is choose_precision("auto", CPU, [])
    assert load_model(MODELS / "unetpp_buildings.safetensors", CPU, precision="fp32").autocast is None
    assert load_model(MODELS / "hat_taskdriven.safetensors", CPU, task="sr", precision="bf16").autocast is None
    live = load_model((seg.model, seg.card), CPU, precision="bf16")
    assert live.autocast is None, "an in-memory network may be training: it stays fp32"


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16: the plugin runs fp32 here, "
                                                      "which the rest of the suite covers")
def test_bf16_masks_differ_from_fp32_only_where_the_probability_sits_on_the_threshold(tmp_path, village):
    out = {}
    probs = {}
    for precision in ("fp32", "bf16"):
        res = api.segment(village, [str(MODELS / "unetpp_buildings.safetensors"),
                                     str(MODELS / "unetpp_roads.safetensors")],
                          out_mask=tmp_path / f"mask_{precision}.tif", out_prob=tmp_path / f"prob_{precision}.tif",
                          options=SegmentOptions(precision=precision))
        with rasterio.open(tmp_path / f"mask_{precision}.tif") as m, \
                rasterio.open(tmp_path / f"prob_{precision}.tif") as p:
            out[precision], probs[precision] = m.read(), p.read().astype(np.float32)
        said = " ".join(res.messages)
        assert ("in bfloat16" in said) == (precision == "bf16"), said
    assert np.abs(probs["fp32"] - probs["bf16"]).mean() < 0.01
    flips = out["fp32"] != out["bf16"]
    assert flips.mean() < 0.01
    # every flipped pixel was a close call in fp32
    assert np.all(np.abs(probs["fp32"][flips] - 0.5) < 0.25)
