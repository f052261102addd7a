"""HAT: paper parameter counts, official state-dict layout, SDPA == explicit, shapes, gradients.

The reference computations below follow the official algorithm step by step
(per-window loops, slice-built shift masks, ``nn.Unfold`` for the overlapping
windows), so they check the vectorised implementation independently.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from core.models.archs.hat import (
    HAT,
    HAT_PRESETS,
    relative_position_index_oca,
    relative_position_index_sa,
    shifted_window_mask,
    window_plan,
)
from core.models.upsampling import DEFAULT_UPSAMPLER

# Parameter counts of the official networks (DESIGN.md section 8).
PAPER = [
    ("hat-s", 3, 3, 9_658_111),
    ("hat", 3, 3, 20_809_435),
    ("hat", 1, 3, 20_805_041),
    ("hat-l", 3, 4, 40_846_575),
]


def tiny(**kw) -> HAT:
    torch.manual_seed(0)
    model = HAT(preset="hat-tiny", **kw)
    # Trained tables are far from the ~0 init; make the bias matter in comparisons.
    for m in model.modules():
        if hasattr(m, "relative_position_bias_table"):
            nn.init.normal_(m.relative_position_bias_table, std=1.0)
    return model


@pytest.mark.parametrize("preset,in_chans,scale,expected", PAPER)
def test_parameter_counts_match_the_paper(preset, in_chans, scale, expected):
    """The official networks use the plain pixel shuffle (new networks default to another upsampler)."""
    with torch.device("meta"):  # no memory for HAT-L's 40M parameters
        model = HAT(preset=preset, in_chans=in_chans, scale=scale, upsampler="pixelshuffle")
        balanced = HAT(preset=preset, in_chans=in_chans, scale=scale, upsampler="pixelshuffle_balanced")
    assert HAT(preset="hat-tiny").config.upsampler == DEFAULT_UPSAMPLER != "pixelshuffle"
    # The shuffle variants keep the official layout.
    assert {k: v.shape for k, v in balanced.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    n = sum(p.numel() for p in model.parameters())
    print(f"{preset} in_chans={in_chans} x{scale}: {n:,} parameters (paper code {expected:,})")
    assert abs(n - expected) / expected < 0.02
    assert n == expected  # same layout as the official code, so exact


def _official_keys(depths, patch_norm=True):
    """State-dict keys of the official HAT for given depths (written from its module tree)."""
    keys = ["relative_position_index_SA", "relative_position_index_OCA", "conv_first.weight", "conv_first.bias"]
    if patch_norm:
        keys += ["patch_embed.norm.weight", "patch_embed.norm.bias"]
    wb = ("weight", "bias")
    for i, depth in enumerate(depths):
        g = f"layers.{i}.residual_group"
        for j in range(depth):
            b = f"{g}.blocks.{j}"
            keys.append(f"{b}.attn.relative_position_bias_table")
            for sub in ("norm1", "attn.qkv", "attn.proj", "conv_block.cab.0", "conv_block.cab.2",
                        "conv_block.cab.3.attention.1", "conv_block.cab.3.attention.3", "norm2", "mlp.fc1",
                        "mlp.fc2"):
                keys += [f"{b}.{sub}.{p}" for p in wb]
        o = f"{g}.overlap_attn"
        keys.append(f"{o}.relative_position_bias_table")
        for sub in ("norm1", "qkv", "proj", "norm2", "mlp.fc1", "mlp.fc2"):
            keys += [f"{o}.{sub}.{p}" for p in wb]
        keys += [f"layers.{i}.conv.{p}" for p in wb]
    for sub in ("norm", "conv_after_body", "conv_before_upsample.0", "upsample.0", "conv_last"):
        keys += [f"{sub}.{p}" for p in wb]
    return keys


def test_state_dict_has_the_official_names_and_loads_strictly():
    model = tiny(upsampler="pixelshuffle")
    sd = model.state_dict()
    assert set(sd) == set(_official_keys(HAT_PRESETS["hat-tiny"]["depths"]))
    assert "mean" not in sd  # the official code keeps the mean outside the state dict
    ws, ow = 8, 12
    assert sd["relative_position_index_SA"].shape == (ws * ws, ws * ws)
    assert sd["relative_position_index_OCA"].shape == (ws * ws, ow * ow)
    assert sd["relative_position_index_SA"].dtype == torch.int64
    assert sd["layers.0.residual_group.blocks.0.attn.relative_position_bias_table"].shape == ((2 * ws - 1) ** 2, 3)
    assert sd["layers.1.residual_group.overlap_attn.relative_position_bias_table"].shape == ((ws + ow - 1) ** 2, 3)
    # A dict written under the official names with fresh values loads strictly and is used.
    torch.manual_seed(1)
    official = {k: (v.clone() if v.dtype == torch.int64 else torch.randn_like(v)) for k, v in sd.items()}
    other = HAT(preset="hat-tiny", upsampler="pixelshuffle")
    other.load_state_dict(official, strict=True)
    assert torch.equal(other.conv_last.weight, official["conv_last.weight"])
    assert torch.equal(other.upsample[0].weight, official["upsample.0.weight"])


def test_relative_position_indices_follow_the_official_formula():
    ws = 4
    sa = relative_position_index_sa(ws)
    # pixel i=(y1,x1), j=(y2,x2): (y1-y2+ws-1)*(2ws-1) + (x1-x2+ws-1)
    for i, j in [(0, 0), (0, 15), (5, 10), (15, 0)]:
        (y1, x1), (y2, x2) = divmod(i, ws), divmod(j, ws)
        assert sa[i, j] == (y1 - y2 + ws - 1) * (2 * ws - 1) + (x1 - x2 + ws - 1)
    oca = relative_position_index_oca(ws, 0.5)
    ow = 6
    assert oca.shape == (ws * ws, ow * ow)
    for i, j in [(0, 0), (3, 35), (15, 7)]:
        (y1, x1), (y2, x2) = divmod(i, ws), divmod(j, ow)
        assert oca[i, j] == (y2 - y1 + ws - ow + 1) * (ws + ow - 1) + (x2 - x1 + ws - ow + 1)
    # The official shift leaves some indices negative; they index the table from its end
    # (PyTorch wrap-around), which trained official weights rely on, so they are kept.
    size = (ws + ow - 1) ** 2
    assert oca.min() < 0 and oca.min() >= -size and oca.max() < size


def _slice_mask(h, w, ws, shift):
    """Shift mask built the official way: label 3x3 slice regions, compare labels per window."""
    labels = torch.zeros(h, w)
    cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for a, hs in enumerate(cuts):
        for b, wsl in enumerate(cuts):
            labels[hs, wsl] = 3 * a + b
    masks = []
    for i in range(h // ws):
        for j in range(w // ws):
            lab = labels[i * ws:(i + 1) * ws, j * ws:(j + 1) * ws].reshape(-1)
            masks.append(torch.where(lab[None, :] != lab[:, None], -100.0, 0.0))
    return torch.stack(masks)


@pytest.mark.parametrize("h,w", [(16, 16), (24, 32), (8, 40)])
def test_shift_mask_equals_the_slice_construction(h, w):
    assert torch.equal(shifted_window_mask(h, w, 8, 4), _slice_mask(h, w, 8, 4))
    # The plan's border windows are exactly those with a non-zero mask.
    plan = window_plan(h, w, 8, 4)
    masked = plan.mask.flatten(1).ne(0).any(dim=1)
    assert torch.equal(plan.border, masked.nonzero().squeeze(1))
    assert torch.equal(plan.inner, (~masked).nonzero().squeeze(1))


def test_window_plan_gathers_like_roll_and_partition():
    x = torch.arange(2 * 16 * 24 * 3, dtype=torch.float32).reshape(2, 16, 24, 3)
    plan = window_plan(16, 24, 8, 4)
    for shifted, s in ((False, 0), (True, 4)):
        rolled = torch.roll(x, (-s, -s), (1, 2))
        windows = rolled.reshape(2, 2, 8, 3, 8, 3).transpose(2, 3).reshape(2, 6, 64, 3)
        got = x.reshape(2, -1, 3).index_select(1, plan.gather[shifted]).view(2, 6, 64, 3)
        assert torch.equal(got, windows)
        back = got.reshape(2, -1, 3).index_select(1, plan.scatter[shifted]).view(2, 16, 24, 3)
        assert torch.equal(back, x)


def _reference_hab(blk, x, rpi):
    """One HAB computed window by window (official order of operations)."""
    b, h, w, c = x.shape
    ws, s, heads = blk.window_size, blk.shift_size, blk.attn.num_heads
    n, d = ws * ws, c // heads
    y = blk.norm1(x)
    conv_x = blk.conv_block(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    if s:
        y = torch.roll(y, (-s, -s), (1, 2))
        mask = _slice_mask(h, w, ws, s)
    table = blk.attn.relative_position_bias_table[rpi.reshape(-1)].reshape(n, n, heads).permute(2, 0, 1)
    out = torch.zeros_like(y)
    k = 0
    for i in range(h // ws):
        for j in range(w // ws):
            win = y[:, i * ws:(i + 1) * ws, j * ws:(j + 1) * ws].reshape(b, n, c)
            qkv = blk.attn.qkv(win).reshape(b, n, 3, heads, d).permute(2, 0, 3, 1, 4)
            attn = (qkv[0] * d ** -0.5) @ qkv[1].transpose(-2, -1) + table
            if s:
                attn = attn + mask[k]
            o = (attn.softmax(-1) @ qkv[2]).transpose(1, 2).reshape(b, n, c)
            out[:, i * ws:(i + 1) * ws, j * ws:(j + 1) * ws] = blk.attn.proj(o).reshape(b, ws, ws, c)
            k += 1
    if s:
        out = torch.roll(out, (s, s), (1, 2))
    x = x + out + conv_x * blk.conv_scale
    return x + blk.mlp(blk.norm2(x))


def _reference_ocab(oc, x, rpi):
    """OCAB with nn.Unfold on the key/value map and a loop over windows."""
    b, h, w, c = x.shape
    ws, ow, heads = oc.window_size, oc.overlap_win_size, oc.num_heads
    d = c // heads
    qkv = oc.qkv(oc.norm1(x))
    q, k, v = qkv[..., :c], qkv[..., c:2 * c], qkv[..., 2 * c:]
    unfold = nn.Unfold(kernel_size=ow, stride=ws, padding=(ow - ws) // 2)
    kw = unfold(k.permute(0, 3, 1, 2)).reshape(b, c, ow * ow, -1)  # B, C, ow*ow, nW
    vw = unfold(v.permute(0, 3, 1, 2)).reshape(b, c, ow * ow, -1)
    bias = oc.relative_position_bias_table[rpi.reshape(-1)].reshape(ws * ws, ow * ow, heads).permute(2, 0, 1)
    out = torch.zeros_like(q)
    idx = 0
    for i in range(h // ws):
        for j in range(w // ws):
            qw = q[:, i * ws:(i + 1) * ws, j * ws:(j + 1) * ws].reshape(b, ws * ws, heads, d).transpose(1, 2)
            kk = kw[..., idx].transpose(1, 2).reshape(b, ow * ow, heads, d).transpose(1, 2)
            vv = vw[..., idx].transpose(1, 2).reshape(b, ow * ow, heads, d).transpose(1, 2)
            attn = ((qw * d ** -0.5) @ kk.transpose(-2, -1) + bias).softmax(-1)
            out[:, i * ws:(i + 1) * ws, j * ws:(j + 1) * ws] = (attn @ vv).transpose(1, 2).reshape(b, ws, ws, c)
            idx += 1
    x = oc.proj(out) + x
    return x + oc.mlp(oc.norm2(x))


@pytest.mark.parametrize("impl", ["sdpa", "explicit"])
def test_blocks_match_a_per_window_reference(impl):
    model = tiny().eval().set_attention_impl(impl)
    group = model.layers[0].residual_group
    torch.manual_seed(2)
    x = torch.randn(1, 24, 32, 48)  # 3 x 4 windows: inner and border windows when shifted
    plan = window_plan(24, 32, 8, 4)
    with torch.no_grad():
        for blk in group.blocks:  # block 0 plain, block 1 shifted
            got = blk(x, model.relative_position_index_SA, plan)
            want = _reference_hab(blk, x, model.relative_position_index_SA)
            assert torch.allclose(got, want, atol=1e-5), (blk.shift_size, (got - want).abs().max())
        got = group.overlap_attn(x, model.relative_position_index_OCA, plan)
        want = _reference_ocab(group.overlap_attn, x, model.relative_position_index_OCA)
        assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


@pytest.mark.parametrize("size", [(20, 27), (8, 8)])
def test_sdpa_equals_explicit_softmax(size):
    model = tiny().eval()
    x = torch.rand(2, 1, *size)
    with torch.no_grad():
        a = model.set_attention_impl("sdpa")(x)
        b = model.set_attention_impl("explicit")(x)
    assert model.attention_impl == "explicit"
    assert (a - b).abs().max() < 1e-5


@pytest.mark.parametrize("size", [(20, 27), (5, 3), (1, 1), (9, 40)])
def test_output_shape_for_any_size(size):
    model = tiny().eval()
    assert (model.scale, model.frames, model.in_chans) == (3, 1, 1)
    with torch.inference_mode():
        y = model(torch.rand(2, 1, *size))
    assert y.shape == (2, 1, 3 * size[0], 3 * size[1])
    assert torch.isfinite(y).all()


def test_scale_two_and_four_and_three_bands():
    for scale in (2, 4):
        with torch.inference_mode():
            assert tiny(scale=scale).eval()(torch.rand(1, 1, 10, 12)).shape == (1, 1, 10 * scale, 12 * scale)
    rgb = tiny(in_chans=3).eval()
    assert torch.allclose(rgb.mean.flatten(), torch.tensor([0.4488, 0.4371, 0.4040]))
    with torch.inference_mode():
        assert rgb(torch.rand(1, 3, 9, 9)).shape == (1, 3, 27, 27)


def test_gradients_reach_every_parameter():
    model = tiny().train()
    x = torch.rand(1, 1, 24, 32)  # shifted blocks with both inner and border windows
    model(x).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient for {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    table = model.layers[0].residual_group.blocks[1].attn.relative_position_bias_table
    assert table.grad.abs().sum() > 0


def test_bad_input_and_config_are_refused():
    model = tiny()
    with pytest.raises(ValueError, match="1 channel"):
        model(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="unknown HAT preset"):
        HAT(preset="hat-xl")
    with pytest.raises(ValueError, match="unknown HAT hyper-parameter"):
        HAT(preset="hat-tiny", window=8)
    with pytest.raises(ValueError, match="scale 5"):
        HAT(preset="hat-tiny", scale=5, upsampler="pixelshuffle")  # resize-convolution takes any scale
    with pytest.raises(ValueError, match="attention implementation"):
        model.set_attention_impl("flash")
    with pytest.raises(ValueError, match="upsampler must be one of"):
        HAT(preset="hat-tiny", upsampler="pixelshuffledirect")


@pytest.mark.parametrize("upsampler", ["pixelshuffle", "pixelshuffle_icnr", "pixelshuffle_degrid", "resize_conv"])
def test_four_bands_end_to_end(upsampler):
    """B02, B03, B04, B08 in, the same four bands out, trained end to end."""
    model = tiny(in_chans=4, upsampler=upsampler).train()
    x = torch.rand(2, 4, 10, 13)
    y = model(x)
    assert y.shape == (2, 4, 30, 39) and torch.isfinite(y).all()
    y.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert torch.count_nonzero(model.mean) == 0  # the DIV2K RGB mean is for 3-band inputs only


def test_icnr_starts_the_sub_pixel_kernels_identical():
    for scale, s2 in ((3, 9), (4, 4)):  # x4 is two x2 stages, each with its own shuffle
        model = tiny(upsampler="pixelshuffle_icnr", scale=scale)
        convs = [m for m in model.upsample if isinstance(m, nn.Conv2d)]
        assert len(convs) == (1 if scale == 3 else 2)
        for conv in convs:
            w = conv.weight.detach().view(-1, s2, *conv.weight.shape[1:])
            assert torch.equal(w, w[:, :1].expand_as(w))
    # The official layout stays as it is: ICNR only changes values.
    assert set(tiny(upsampler="pixelshuffle_icnr").state_dict()) == set(tiny(upsampler="pixelshuffle").state_dict())
