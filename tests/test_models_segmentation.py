"""UNet++ wrapper: any size, gradients everywhere, no network access, local encoder weights."""

from __future__ import annotations

import socket

import pytest
import torch

from core.models.archs.segmentation import EncoderWeightsError, SegmentationNet


@pytest.fixture
def no_network(monkeypatch):
    """Fail loudly if anything tries to open a connection."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def tiny(**kw) -> SegmentationNet:
    torch.manual_seed(0)
    return SegmentationNet(preset="unetpp-tiny", **kw)


@pytest.mark.parametrize("size", [(20, 27), (64, 64), (5, 70)])
def test_logits_have_the_input_size(size):
    model = tiny().eval()
    assert (model.scale, model.frames, model.in_chans) == (1, 1, 1)
    with torch.inference_mode():
        y = model(torch.rand(2, 1, *size))
    assert y.shape == (2, 1, *size)
    assert torch.isfinite(y).all()


def test_crop_is_the_top_left_of_the_padded_result():
    """Padding goes after the image, so a window-multiple input is not touched at all."""
    model = tiny().eval()
    x = torch.rand(1, 1, 16, 24)
    with torch.inference_mode():
        assert torch.equal(model(x), model.net(x))


def test_gradients_reach_every_parameter():
    model = tiny().train()
    model(torch.rand(2, 1, 24, 24)).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient for {missing[:5]}"


def test_shallow_encoder_has_no_unused_stages():
    names = {n.split(".")[2] for n, _ in tiny().named_parameters() if n.startswith("net.encoder.")}
    assert "layer3" not in names and "layer4" not in names
    assert {"conv1", "layer1", "layer2"} <= names


def test_default_network_builds_offline_with_random_encoder(no_network):
    model = SegmentationNet()  # the study's UNet++ with a ResNet-18 encoder
    assert model.hparams["encoder_name"] == "resnet18"
    assert model.stride == 32
    assert "encoder_weights" not in model.hparams  # weights live in checkpoints, never re-fetched


def test_imagenet_weights_are_refused_clearly_without_network(no_network, monkeypatch, tmp_path):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    with pytest.raises(EncoderWeightsError, match="cannot be downloaded here") as info:
        tiny(encoder_weights="imagenet")
    assert "local file" in str(info.value)


def test_encoder_weights_from_a_local_file(tmp_path):
    from safetensors.torch import save_file

    donor = tiny()
    state = {k: v.clone() for k, v in donor.net.encoder.state_dict().items()}
    # An RGB stem, as published encoders have: it is summed over colours for one band.
    state["conv1.weight"] = state["conv1.weight"].repeat(1, 3, 1, 1) / 3
    path = tmp_path / "encoder.safetensors"
    save_file(state, str(path))
    torch.manual_seed(1)
    model = SegmentationNet(preset="unetpp-tiny", encoder_weights=str(path))
    for k, v in donor.net.encoder.state_dict().items():
        assert torch.allclose(model.net.encoder.state_dict()[k], v, atol=1e-6), k
    with pytest.raises(EncoderWeightsError, match="does not exist"):
        tiny(encoder_weights=str(tmp_path / "missing.safetensors"))


def test_bad_input_and_config_are_refused():
    with pytest.raises(ValueError, match="1 channel"):
        tiny()(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="decoder_channels"):
        SegmentationNet(encoder_depth=3)
    with pytest.raises(ValueError, match="unknown UNet"):
        SegmentationNet(preset="unet")


def test_four_bands_rgbn(tmp_path):
    """in_channels=4 (B02, B03, B04, B08) through hparams; the card names the bands; RGB stems are cycled."""
    from safetensors.torch import save_file

    from core.models import zoo
    from core.models.card import ModelCard

    model = tiny(in_channels=4).eval()
    with torch.inference_mode():
        assert model(torch.rand(2, 4, 40, 50)).shape == (2, 1, 40, 50)
    with pytest.raises(ValueError, match="4 channel"):
        model(torch.rand(1, 1, 32, 32))
    path = tmp_path / "rgbn.safetensors"
    bands = ["B2", "B3", "B4", "B8"]
    zoo.save_checkpoint(path, model, ModelCard.for_model(model, target="buildings", bands=bands))
    loaded, card = zoo.load_checkpoint(path)
    assert card.bands == bands and card.in_chans == 4 and loaded.in_chans == 4
    # A published RGB stem on four bands: colour filters repeated (R, G, B, R) and scaled by 3/4.
    state = {k: v.clone() for k, v in tiny().net.encoder.state_dict().items()}
    rgb = torch.randn(64, 3, 7, 7)
    state["conv1.weight"] = rgb
    save_file(state, str(tmp_path / "enc.safetensors"))
    four = tiny(in_channels=4, encoder_weights=str(tmp_path / "enc.safetensors"))
    assert torch.allclose(four.net.encoder.conv1.weight, rgb[:, [0, 1, 2, 0]] * 0.75)


def test_the_plain_unet_decoder_shares_the_encoder_and_costs_about_half():
    """``unet-tiny``: the same encoder as ``unetpp-tiny`` (its weights load unchanged), a lighter decoder."""
    from torch.utils.flop_counter import FlopCounterMode

    nested, plain = tiny(in_channels=4).eval(), SegmentationNet(preset="unet-tiny", in_channels=4).eval()
    assert plain.hparams["decoder"] == "unet" and nested.hparams["decoder"] == "unetpp"
    encoder = {k: v for k, v in nested.state_dict().items() if k.startswith("net.encoder.")}
    missing, unexpected = plain.load_state_dict(encoder, strict=False)
    assert not unexpected and not [k for k in missing if k.startswith("net.encoder.")]
    flops = {}
    for name, net in (("nested", nested), ("plain", plain)):
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            assert net(torch.rand(1, 4, 64, 64)).shape == (1, 1, 64, 64)
        flops[name] = counter.get_total_flops()
    assert 0.4 < flops["plain"] / flops["nested"] < 0.6
    # a card written before the decoder could be chosen has no such key: it rebuilds the nested decoder
    assert SegmentationNet(**{k: v for k, v in nested.hparams.items() if k != "decoder"}).hparams["decoder"] == "unetpp"
    with pytest.raises(ValueError):
        SegmentationNet(preset="unet-tiny", decoder="fpn")


def test_a_small_network_grows_into_unet_small_keeping_its_shared_encoder_stages(tmp_path):
    """``scripts/grow_segmenter.py``: the warm start of the city-and-village buildings network."""
    from core.models import zoo
    from core.models.card import ModelCard
    from scripts.grow_segmenter import main

    torch.manual_seed(0)
    small = SegmentationNet(preset="unet-tiny", in_channels=4)
    source, target = tmp_path / "tiny.safetensors", tmp_path / "small.safetensors"
    zoo.save_checkpoint(source, small, ModelCard.for_model(small, target="buildings",
                                                           bands=["B02", "B03", "B04", "B08"]))
    assert main([str(source), str(target)]) == 0
    grown, card = zoo.load_checkpoint(target)
    assert card.hparams["encoder_depth"] == 4 and card.hparams["decoder_channels"] == [64, 32, 16, 8]
    assert card.bands == ["B02", "B03", "B04", "B08"] and card.target == "buildings"
    old, new = small.state_dict(), grown.state_dict()
    shared = [k for k in old if k.startswith("net.encoder.")]
    assert shared and all(torch.equal(old[k], new[k]) for k in shared)
    assert any(k.startswith("net.encoder.layer3") for k in new) and not any(k.startswith("net.encoder.layer3") for k in old)
    assert grown(torch.rand(1, 4, 48, 48)).shape == (1, 1, 48, 48)
    with pytest.raises(SystemExit):  # never overwrites a file
        main([str(source), str(target)])
