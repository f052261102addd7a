"""The typed model card: every bad field refused with a message naming the file and the field.

Cards are data from outside (a JSON string inside a safetensors file), so each
bad case below is written into a real checkpoint file and read back through
the same functions the plugin uses.
"""

from __future__ import annotations

import json
import time

import pytest
import torch
from safetensors.torch import save_file

from core.models import zoo
from core.models.card import CheckpointError, ModelCard
from core.models.registry import build
from core.models.upsampling import DEFAULT_UPSAMPLER


def tiny_rams(**kw):
    torch.manual_seed(0)
    return build("rams", preset="rams-tiny", **kw).eval()


def write(path, model, card: dict):
    """A checkpoint holding ``model``'s tensors and exactly the card given (no validation on the way)."""
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": zoo.FORMAT, "format_version": zoo.FORMAT_VERSION, "card": json.dumps(card)}
    save_file(tensors, str(path), metadata=meta)
    return path


def good_card(model) -> dict:
    return ModelCard.for_model(model, bands=["B8"], normalization={"offset": 0.0, "scale": 0.5}).to_dict()


def _with(card: dict, key: str, value) -> dict:
    out = json.loads(json.dumps(card))
    if key.startswith("hparams."):
        out["hparams"][key.split(".", 1)[1]] = value
    elif key.startswith("normalization."):
        out["normalization"][key.split(".", 1)[1]] = value
    else:
        out[key] = value
    return out


BAD = [
    # (field, value, what the analyst reads)
    ("arch", ["rams"], "model card field 'arch': must be an architecture name (got ['rams'])"),
    ("arch", "srgan", "model card field 'arch': unknown architecture 'srgan'"),
    ("scale", "three", "model card field 'scale': must be a whole number from 1 to 16 (got 'three')"),
    ("scale", 0, "model card field 'scale': must be a whole number from 1 to 16 (got 0)"),
    ("scale", 2.5, "model card field 'scale': must be a whole number"),
    ("frames", 1000, "model card field 'frames': must be a whole number from 1 to 64 (or null) (got 1000)"),
    ("frames", "9", "model card field 'frames'"),
    ("bands", "B8", "model card field 'bands': must be a list of band names"),
    ("bands", [8], "model card field 'bands'"),
    ("normalization.scale", 0, "model card field 'normalization.scale': must be a finite number > 0 (got 0)"),
    ("normalization.scale", -0.5, "model card field 'normalization.scale': must be a finite number > 0"),
    ("normalization.scale", float("nan"), "model card field 'normalization.scale': must be a finite number > 0 (got nan)"),
    ("normalization.offset", float("nan"), "model card field 'normalization.offset': must be a finite number (got nan)"),
    ("normalization", [0, 1], "model card field 'normalization': must be a mapping with 'offset' and 'scale'"),
    ("hparams", [8, 2], "model card field 'hparams': must be a mapping of hyper-parameters (got [8, 2])"),
    ("hparams.filters", 200000, "model card field 'hparams.filters': must be <= 1024 (got 200000)"),
    ("hparams.frames", 1000, "model card field 'hparams.frames': must be <= 64 (got 1000)"),
    ("hparams.upsampler", "magic", "model card field 'hparams.upsampler': must be one of"),
    ("task", "segmentation", "model card field 'task': a 'rams' network does 'sr'"),
    ("task", "detect", "model card field 'task': must be one of sr, segmentation"),
    ("target", 3, "model card field 'target'"),
    ("metrics", "good", "model card field 'metrics': must be a mapping"),
    ("name", 42, "model card field 'name': must be text (got 42)"),
]


@pytest.mark.parametrize("field_,value,message", BAD, ids=[f"{f}={v!r}" for f, v, _ in BAD])
def test_bad_card_is_refused_naming_the_file_and_the_field(tmp_path, field_, value, message):
    model = tiny_rams()
    path = write(tmp_path / "bad.safetensors", model, _with(good_card(model), field_, value))
    for read in (zoo.read_card, zoo.load_checkpoint):
        with pytest.raises(CheckpointError) as info:
            read(path)
        text = str(info.value)
        assert text.startswith(f"{path}: ")
        assert message in text, text


def test_card_that_is_not_an_object_or_not_json(tmp_path):
    model = tiny_rams()
    path = tmp_path / "x.safetensors"
    write(path, model, [1, 2])
    with pytest.raises(CheckpointError, match="not a JSON object"):
        zoo.read_card(path)
    save_file({"w": torch.zeros(1)}, str(path), metadata={"format": zoo.FORMAT, "format_version": "1",
                                                          "card": "{not json"})
    with pytest.raises(CheckpointError, match="corrupted model card"):
        zoo.read_card(path)


def test_a_huge_network_claim_is_refused_before_anything_is_built(tmp_path):
    """Out of range: refused by the card rules. In range but not what the file holds: refused by
    comparing header shapes with the card's network built on the meta device. Both without
    allocating (building 1024-filter RAMS for real takes seconds and ~1 GB)."""
    model = tiny_rams()
    card = good_card(model)
    huge = write(tmp_path / "huge.safetensors", model, _with(card, "hparams.filters", 200000))
    big = write(tmp_path / "big.safetensors", model, _with(card, "hparams.filters", 1024))
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="hparams.filters"):
        zoo.load_checkpoint(huge)
    t1 = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"wrong shape \(e\.g\. body\.0\.conv1\.bias: file \[8\] vs network \[1024\]"):
        zoo.load_checkpoint(big)
    t2 = time.perf_counter()
    print(f"refused in {1e3 * (t1 - t0):.1f} ms (rules) and {1e3 * (t2 - t1):.1f} ms (meta shapes)")
    assert t1 - t0 < 0.5 and t2 - t1 < 0.5
    shapes = zoo.expected_shapes(ModelCard.from_dict(_with(card, "hparams.filters", 1024)))
    assert shapes["head.bias"] == (1024,)


def test_old_card_without_new_keys_rebuilds_the_old_network(tmp_path):
    """Cards written before ``in_chans`` and ``upsampler`` existed load as 1-band pixel-shuffle RAMS."""
    old = tiny_rams(upsampler="pixelshuffle")
    card = good_card(old)
    for key in ("in_chans", "upsampler"):
        del card["hparams"][key]
    path = write(tmp_path / "old.safetensors", old, card)
    read = zoo.read_card(path)
    assert read.hparams["upsampler"] == "pixelshuffle" and read.hparams["in_chans"] == 1
    loaded, _ = zoo.load_checkpoint(path)
    assert loaded.hparams == old.hparams
    x = torch.rand(1, 9, 8, 11)
    with torch.inference_mode():
        assert torch.equal(loaded(x), old(x))
    # While a new network gets the guarded upsampler.
    assert tiny_rams().hparams["upsampler"] == DEFAULT_UPSAMPLER != "pixelshuffle"


def test_properties_say_what_callers_need():
    rams = ModelCard.for_model(tiny_rams(), normalization={"offset": 0.1, "scale": 0.4})
    assert (rams.norm_offset, rams.norm_scale) == (0.1, 0.4)
    assert rams.display_name == "rams" and ModelCard(arch="rams", name="mine").display_name == "mine"
    assert rams.is_sr and not rams.is_segmentation and rams.is_multi_image
    assert (rams.input_frames, rams.in_chans, rams.upsampler) == (9, 1, DEFAULT_UPSAMPLER)
    hat = ModelCard.for_model(build("hat", preset="hat-tiny", in_chans=4), bands=["B2", "B3", "B4", "B8"])
    assert not hat.is_multi_image and hat.input_frames == 1 and hat.in_chans == 4
    seg = ModelCard.for_model(build("unetpp", preset="unetpp-tiny", in_channels=4), target="roads")
    assert seg.is_segmentation and seg.in_chans == 4 and seg.upsampler is None and seg.input_frames == 1
    # A card made in memory for a network outside the registry (tests, wrappers) still works.
    plain = ModelCard(arch="mean-upsampler", frames=1)
    assert plain.norm_scale == 1.0 and plain.input_frames == 1


def test_from_dict_round_trips_and_keeps_unknown_keys():
    card = ModelCard.for_model(tiny_rams(), bands=["B8"], recipe={"epochs": 2}, extra={"future": [1]})
    again = ModelCard.from_dict(json.loads(card.to_json()))
    assert again == card and again.extra == {"future": [1]}
    with pytest.raises(CheckpointError, match="^model card field 'scale'"):
        ModelCard.from_dict(dict(card.to_dict(), scale=-3))


def test_save_refuses_a_card_it_could_not_read_back(tmp_path):
    model = tiny_rams()
    with pytest.raises(CheckpointError, match="model card field 'bands'"):
        zoo.save_checkpoint(tmp_path / "m.safetensors", model, ModelCard.for_model(model, bands="B8"))
    with pytest.raises(CheckpointError, match="normalization.scale"):
        zoo.save_checkpoint(tmp_path / "m.safetensors", model,
                            ModelCard.for_model(model, normalization={"offset": 0.0, "scale": 0.0}))
    assert list(tmp_path.iterdir()) == []
