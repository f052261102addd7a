"""The segmentation network's inference form (batch norms folded, channels-last) computes the same logits."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from core.inference.loading import load_model
from core.models.archs.segmentation import SegmentationNet
from core.models.card import ModelCard
from core.models.zoo import save_checkpoint


def _trained_like(preset: str, in_channels: int) -> SegmentationNet:
    """A network whose batch norms hold non-trivial statistics, as after training."""
    torch.manual_seed(0)
    net = SegmentationNet(preset, in_channels=in_channels)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    return net.eval()


@pytest.mark.parametrize("preset,in_channels", [("unetpp-tiny", 4), ("unetpp-tiny", 1), ("unetpp", 4), ("unet-tiny", 4)])
def test_inference_copy_gives_the_same_logits(preset, in_channels):
    net = _trained_like(preset, in_channels)
    fast = net.inference_copy()
    x = torch.rand(2, in_channels, 70, 45)
    with torch.inference_mode():
        ref, got = net(x), fast(x)
    assert got.shape == ref.shape == (2, 1, 70, 45)
    assert (got - ref).abs().max().item() < 1e-4
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules()), "the original must stay trainable"


def test_a_checkpoint_is_loaded_in_its_inference_form_a_live_network_is_not(tmp_path):
    net = _trained_like("unetpp-tiny", 4)
    card = ModelCard(arch="unetpp", hparams=net.hparams, task="segmentation", target="buildings", scale=1,
                     bands=["B02", "B03", "B04", "B08"])
    save_checkpoint(tmp_path / "b.safetensors", net, card)
    from_file = load_model(tmp_path / "b.safetensors", torch.device("cpu"), task="segmentation")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in from_file.model.modules())
    live = load_model((net, card), torch.device("cpu"), task="segmentation")
    assert live.model is net
    x = torch.rand(1, 4, 64, 64)
    with torch.inference_mode():
        assert (from_file.model(x) - net(x)).abs().max().item() < 1e-4
