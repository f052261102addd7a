"""Model zoo: checkpoint round trips, every refusal, official HAT import, CLI.

The registry has its own tests (test_models_registry.py), so has the card's validation (test_models_card.py).
"""

from __future__ import annotations

import argparse
import json
import os
import struct

import pytest
import torch
from safetensors.torch import save_file

from core.cli import cmd_models as models_cli
from core.models import zoo
from core.models.archs.hat import official
from core.models.zoo import CheckpointError, ModelCard


def _tiny(arch: str, **kw):
    torch.manual_seed(0)
    preset = {"rams": "rams-tiny", "hat": "hat-tiny", "unetpp": "unetpp-tiny"}[arch]
    return zoo.build(arch, preset=preset, **kw).eval()


def _official_hat():
    """A tiny HAT as the official code builds it (plain pixel shuffle), for the importer tests."""
    return _tiny("hat", upsampler="pixelshuffle")


def _input(arch: str):
    torch.manual_seed(1)
    return {"rams": torch.rand(1, 9, 10, 13), "hat": torch.rand(1, 1, 10, 13),
            "unetpp": torch.rand(1, 1, 30, 41)}[arch]


def _save(tmp_path, arch="hat", filename="m.safetensors", **card_fields):
    model = _tiny(arch)
    path = tmp_path / filename
    zoo.save_checkpoint(path, model, ModelCard.for_model(model, **card_fields))
    return model, path


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("arch", ["rams", "hat", "unetpp"])
def test_round_trip_rebuilds_an_identical_model(tmp_path, arch):
    target = "roads" if arch == "unetpp" else None
    model, path = _save(tmp_path, arch, filename=f"{arch}.safetensors", target=target, bands=["B8"],
                        normalization={"offset": 0.05, "scale": 0.4},
                        recipe={"loss": "cl1", "epochs": 3}, metrics={"cpsnr": 31.2}, name="demo",
                        description="test network")
    loaded, card = zoo.load_checkpoint(path)
    assert type(loaded) is type(model) and not loaded.training
    x = _input(arch)
    with torch.inference_mode():
        assert (loaded(x) - model(x)).abs().max() <= 1e-6
    assert card.arch == arch and card.hparams == model.hparams
    assert card.task == ("segmentation" if arch == "unetpp" else "sr")
    assert card.target == target and card.bands == ["B8"]
    assert card.normalization == {"offset": 0.05, "scale": 0.4}
    assert card.recipe == {"loss": "cl1", "epochs": 3} and card.metrics == {"cpsnr": 31.2}
    assert card.created  # stamped when saved
    if arch != "unetpp":
        assert (card.scale, card.frames) == (model.scale, model.frames)
    assert zoo.read_card(path) == card
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_buffers_and_shared_or_strided_tensors_are_saved(tmp_path):
    model = _tiny("hat")
    # Tie two same-shaped convolutions and make one weight a non-contiguous view.
    model.layers[1].conv.weight = model.layers[0].conv.weight
    w = model.layers[0].residual_group.blocks[0].attn.proj.weight
    w.data = w.data.t().contiguous().t()
    assert not w.is_contiguous()
    path = tmp_path / "tied.safetensors"
    zoo.save_checkpoint(path, model, ModelCard.for_model(model))
    loaded, _ = zoo.load_checkpoint(path)
    assert torch.equal(loaded.relative_position_index_OCA, model.relative_position_index_OCA)
    assert torch.equal(loaded.layers[1].conv.weight, model.layers[0].conv.weight)
    x = _input("hat")
    with torch.inference_mode():
        assert (loaded(x) - model(x)).abs().max() <= 1e-6


def test_card_is_taken_from_the_model_and_unknown_card_keys_survive(tmp_path):
    model = _tiny("rams")
    card = ModelCard(arch="rams", hparams={"filters": 999}, scale=4, frames=2, extra={"future_key": [1, 2]})
    path = tmp_path / "r.safetensors"
    zoo.save_checkpoint(path, model, card)
    read = zoo.read_card(path)
    assert read.hparams == model.hparams and (read.scale, read.frames) == (3, 9)
    assert read.extra == {"future_key": [1, 2]}
    with pytest.raises(ValueError, match="card.arch"):
        zoo.save_checkpoint(tmp_path / "x.safetensors", model, ModelCard(arch="hat"))


def test_failed_save_leaves_no_file(tmp_path):
    model = _tiny("rams")
    bad = ModelCard.for_model(model, metrics={"nan": float("nan")})  # not valid JSON
    with pytest.raises(ValueError, match="JSON"):
        zoo.save_checkpoint(tmp_path / "bad.safetensors", model, bad)
    assert list(tmp_path.iterdir()) == []


def test_file_sha256(tmp_path):
    _, path = _save(tmp_path, "rams")
    digest = zoo.file_sha256(path)
    assert len(digest) == 64 and digest == zoo.file_sha256(path)
    import hashlib

    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- refusals


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        zoo.load_checkpoint(tmp_path / "nope.safetensors")


def test_truncated_file_is_refused(tmp_path):
    _, path = _save(tmp_path, "hat")
    data = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) - 1000])  # header intact, tensor data short
    with pytest.raises(CheckpointError, match="truncated"):
        zoo.load_checkpoint(cut)
    cut.write_bytes(data[:100])  # header itself cut
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        zoo.read_card(cut)
    cut.write_bytes(b"")
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        zoo.read_card(cut)


def test_garbage_header_is_refused(tmp_path):
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(struct.pack("<Q", 12) + b"{not json!!}" + b"\0" * 64)
    with pytest.raises(CheckpointError, match="corrupted"):
        zoo.load_checkpoint(path)


def test_foreign_safetensors_is_refused(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3)}, str(path), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="foreign checkpoint"):
        zoo.load_checkpoint(path)


def _write_with_card(path, tensors, card: dict, version="1"):
    meta = {"format": zoo.FORMAT, "format_version": version, "card": json.dumps(card)}
    save_file(tensors, str(path), metadata=meta)


def test_unknown_architecture_and_newer_format_are_refused(tmp_path):
    path = tmp_path / "srgan.safetensors"
    _write_with_card(path, {"w": torch.zeros(2)}, {"arch": "srgan", "hparams": {}})
    with pytest.raises(CheckpointError, match="unknown architecture 'srgan'"):
        zoo.load_checkpoint(path)
    _write_with_card(path, {"w": torch.zeros(2)}, {"arch": "rams", "hparams": {}}, version="7")
    with pytest.raises(CheckpointError, match="format version '7'"):
        zoo.read_card(path)
    _write_with_card(path, {"w": torch.zeros(2)}, {"arch": "rams", "hparams": {"depth": 3}})
    with pytest.raises(CheckpointError, match="do not build"):
        zoo.load_checkpoint(path)


def test_tensors_not_matching_the_architecture_are_refused(tmp_path):
    model = _tiny("rams")
    card = ModelCard.for_model(model).to_dict()
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    # Shapes: the card claims 16 filters, the tensors have 8.
    path = tmp_path / "shape.safetensors"
    _write_with_card(path, sd, dict(card, hparams=dict(card["hparams"], filters=16)))
    with pytest.raises(CheckpointError, match=r"wrong shape \(e\.g\. body\.0\.conv1\.bias: file \[8\] vs network \[16\]"):
        zoo.load_checkpoint(path)
    # Missing and unexpected keys are named.
    broken = dict(sd)
    broken.pop("head.bias")
    broken["extra.weight"] = torch.zeros(1)
    _write_with_card(path, broken, card)
    with pytest.raises(CheckpointError) as info:
        zoo.load_checkpoint(path)
    assert "1 missing (e.g. head.bias)" in str(info.value)
    assert "1 unexpected (e.g. extra.weight)" in str(info.value)


def test_pytorch_pickles_are_refused(tmp_path):
    model = _tiny("rams")
    path = tmp_path / "model.pth"
    torch.save(model.state_dict(), path)
    with pytest.raises(CheckpointError, match="PyTorch pickle") as info:
        zoo.load_checkpoint(path)
    assert "import-hat" not in str(info.value)
    # Same bytes under a neutral name: recognised by content, not by suffix.
    renamed = tmp_path / "model.safetensors"
    os.replace(path, renamed)
    with pytest.raises(CheckpointError, match="PyTorch pickle"):
        zoo.read_card(renamed)


def test_official_hat_pickle_points_to_the_importer(tmp_path):
    path = tmp_path / "HAT_SRx3.pth"
    torch.save({"params_ema": _official_hat().state_dict()}, path)
    with pytest.raises(CheckpointError, match="PyTorch pickle") as info:
        zoo.load_checkpoint(path)
    assert "import-hat" in str(info.value) and "import_official_hat" in str(info.value)


# --------------------------------------------------------------------------- official HAT


def test_import_official_hat(tmp_path):
    model = _official_hat()
    torch.manual_seed(5)
    noise = {k: (v if v.dtype == torch.int64 else torch.randn_like(v)) for k, v in model.state_dict().items()}
    pth = tmp_path / "HAT_tiny_SRx3.pth"
    torch.save({"params": noise, "params_ema": model.state_dict()}, pth)  # params_ema wins
    state = official.load_official_hat_state(pth)
    assert torch.equal(state["conv_last.weight"], model.conv_last.weight)
    out = tmp_path / "hat.safetensors"
    card = official.import_official_hat(pth, out, preset="hat-tiny", in_chans=1, scale=3)
    assert card.arch == "hat" and card.recipe["sha256"] == zoo.file_sha256(pth)
    assert card.hparams["upsampler"] == "pixelshuffle"  # the official network, not this project's default
    loaded, _ = zoo.load_checkpoint(out)
    x = _input("hat")
    with torch.inference_mode():
        assert (loaded(x) - model(x)).abs().max() <= 1e-6


def test_import_infers_the_architecture_and_checks_expectations(tmp_path):
    model = zoo.build("hat", preset="hat-tiny", scale=2, in_chans=3, upsampler="pixelshuffle")
    sd = dict(model.state_dict())
    # Older official code kept the position indices out of the state dict; DDP adds "module.".
    sd.pop("relative_position_index_SA")
    sd.pop("relative_position_index_OCA")
    pth = tmp_path / "old.pth"
    torch.save({"params_ema": {f"module.{k}": v for k, v in sd.items()}}, pth)
    inferred = official.infer_hat_hparams(official.load_official_hat_state(pth))
    for key in ("embed_dim", "depths", "num_heads", "window_size", "compress_ratio", "squeeze_factor",
                "overlap_ratio", "mlp_ratio", "num_feat", "in_chans", "scale"):
        assert inferred[key] == model.hparams[key], key
    card = official.import_official_hat(pth, tmp_path / "ok.safetensors")
    assert card.scale == 2 and card.hparams["in_chans"] == 3
    with pytest.raises(CheckpointError, match="not a 'hat-s' network"):
        official.import_official_hat(pth, tmp_path / "x.safetensors", preset="hat-s")
    with pytest.raises(CheckpointError, match="3 band"):
        official.import_official_hat(pth, tmp_path / "x.safetensors", in_chans=1)
    with pytest.raises(CheckpointError, match="x2 network, not x4"):
        official.import_official_hat(pth, tmp_path / "x.safetensors", scale=4)
    assert not (tmp_path / "x.safetensors").exists()


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_official_loader_refusals(tmp_path):
    other = tmp_path / "other.pth"
    torch.save({"model": {"w": torch.zeros(1)}}, other)
    with pytest.raises(CheckpointError, match="not an official HAT checkpoint"):
        official.load_official_hat_state(other)
    evil = tmp_path / "evil.pth"
    torch.save({"params_ema": _Evil()}, evil)
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        official.load_official_hat_state(evil)
    broken = tmp_path / "broken.pth"
    broken.write_bytes(other.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        official.load_official_hat_state(broken)
    with pytest.raises(CheckpointError, match="not found"):
        official.load_official_hat_state(tmp_path / "none.pth")
    not_hat = tmp_path / "rams.pth"
    torch.save({"params_ema": _tiny("rams").state_dict()}, not_hat)
    with pytest.raises(CheckpointError, match="do not look like HAT"):
        official.load_official_hat_state(not_hat)


# --------------------------------------------------------------------------- CLI


def _run_cli(argv):
    parser = argparse.ArgumentParser()
    models_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_info_prints_the_card(tmp_path, capsys):
    _, path = _save(tmp_path, "unetpp", target="buildings", name="bld", metrics={"dice": 0.49})
    assert _run_cli(["models", "info", str(path)]) == 0
    text = capsys.readouterr().out
    assert "segmentation of buildings" in text and "bld" in text and "dice" in text
    assert "Weights" in text and zoo.file_sha256(path) in text
    assert _run_cli(["models", "info", str(path), "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["arch"] == "unetpp" and card["target"] == "buildings" and card["metrics"] == {"dice": 0.49}


def test_cli_import_hat(tmp_path, capsys):
    pth = tmp_path / "h.pth"
    torch.save({"params_ema": _official_hat().state_dict()}, pth)
    out = tmp_path / "h.safetensors"
    assert _run_cli(["models", "import-hat", str(pth), str(out), "--preset", "hat-tiny", "--bands", "B8"]) == 0
    assert "HAT x3" in capsys.readouterr().out
    assert zoo.read_card(out).bands == ["B8"]
