"""The architecture registry: one decorator per family, every lookup from that one table."""

from __future__ import annotations

import pytest
import torch.nn as nn

from core.models import registry, zoo
from core.models.archs.hat import HAT
from core.models.archs.rams import RAMS
from core.models.archs.segmentation import SegmentationNet


def test_families_declare_themselves():
    assert {"rams", "hat", "unetpp"} <= set(registry.registered())
    assert [registry.task_of(a) for a in ("rams", "hat", "unetpp")] == ["sr", "sr", "segmentation"]
    assert registry.spec("RAMS").cls is RAMS and RAMS.ARCH == "rams"
    assert registry.spec("hat").cls is HAT and registry.spec("unetpp").cls is SegmentationNet
    assert registry.default_preset("hat") == "hat" and "hat-tiny" in registry.presets_of("hat")
    assert set(registry.presets_of("rams")) == {"rams", "rams-tiny"}
    assert set(registry.presets_of("unetpp")) == {"unetpp", "unetpp-tiny", "unet-tiny", "unet-small"}
    # Lookups hand out copies: changing one changes nothing in the table.
    registry.presets_of("rams")["rams-tiny"]["filters"] = 999
    assert registry.presets_of("rams")["rams-tiny"]["filters"] == 8


def test_build_by_name_and_preset():
    assert registry.build("rams", preset="rams-tiny", frames=5).frames == 5
    hat = registry.build("hat", preset="hat-tiny", in_chans=1, scale=2)
    assert (hat.scale, hat.in_chans, hat.frames) == (2, 1, 1)
    with pytest.raises(ValueError, match="unknown architecture 'srgan'"):
        registry.build("srgan")
    with pytest.raises(ValueError, match="unknown architecture"):
        registry.build(["rams"])
    with pytest.raises(ValueError, match="unknown hat preset 'hat-xxl'"):
        registry.build("hat", preset="hat-xxl")
    # The zoo keeps its old names for callers.
    assert zoo.build is registry.build and zoo.arch_of is registry.arch_of


def test_segmentation_declares_it_keeps_the_resolution():
    assert registry.spec("unetpp").fixed_scale == 1
    assert registry.build("unetpp", preset="unetpp-tiny", scale=1).scale == 1
    assert registry.build("unetpp", preset="unetpp-tiny", scale=None).scale == 1
    with pytest.raises(ValueError, match="scale must be 1"):
        registry.build("unetpp", preset="unetpp-tiny", scale=3)


class _Wrapper(nn.Module):
    """What DistributedDataParallel looks like from outside: the network under ``.module``."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.module = inner


def test_arch_of_looks_through_wrappers_and_refuses_strangers():
    net = registry.build("rams", preset="rams-tiny")
    assert registry.arch_of(_Wrapper(net)) == "rams"
    assert registry.unwrap(_Wrapper(_Wrapper(net))) is net
    with pytest.raises(ValueError, match="Linear is not a registered network"):
        registry.arch_of(nn.Linear(2, 2))


def test_register_refuses_clashes_and_bad_declarations():
    class Impostor(nn.Module):
        pass

    with pytest.raises(ValueError, match="already registered by RAMS"):
        registry.register("rams", task="sr", presets={"x": {}}, default_preset="x")(Impostor)
    assert registry.spec("rams").cls is RAMS
    with pytest.raises(ValueError, match="task must be one of"):
        registry.register("new", task="detection", presets={"x": {}}, default_preset="x")
    with pytest.raises(ValueError, match="default preset 'y'"):
        registry.register("new", task="sr", presets={"x": {}}, default_preset="y")
    assert "new" not in registry.registered()


@pytest.mark.parametrize("arch,hparams,message", [
    ("rams", {"filters": 200000}, "hparams.filters: must be <= 1024 (got 200000)"),
    ("rams", {"filters": "8"}, "hparams.filters: must be an integer (got '8')"),
    ("rams", {"filters": True}, "hparams.filters: must be an integer"),
    ("rams", {"std": 0.0}, "hparams.std: must be > 0"),
    ("rams", {"mean": float("nan")}, "hparams.mean: must be finite"),
    ("rams", {"upsampler": "magic"}, "hparams.upsampler: must be one of 'pixelshuffle'"),
    ("hat", {"depths": [6] * 40}, "hparams.depths: must have at most 32 entries"),
    ("hat", {"depths": [6, 0]}, "hparams.depths: every entry must be >= 1"),
    ("hat", {"qkv_bias": "yes"}, "hparams.qkv_bias: must be true or false"),
    ("unetpp", {"in_channels": 0}, "hparams.in_channels: must be >= 1"),
    ("unetpp", {"encoder_name": ""}, "hparams.encoder_name: must be a non-empty string"),
])
def test_hyper_parameter_rules(arch, hparams, message):
    with pytest.raises(ValueError) as info:
        registry.check_hparams(arch, hparams)
    assert message in str(info.value)


def test_every_preset_passes_its_own_rules():
    for arch in registry.registered():
        registry.check_hparams(arch, registry.legacy_hparams(arch))
        for values in registry.presets_of(arch).values():
            registry.check_hparams(arch, values)
