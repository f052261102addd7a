"""Forward speed of the networks against this machine's measured fp32 peak.

For each network at a typical tile it prints, from one run:

* forward time (median of a few runs under ``torch.inference_mode``, after a
  warm-up run),
* output megapixels per second,
* FLOPs per output pixel (``torch.utils.flop_counter.FlopCounterMode``; HAT's
  attention is counted on the explicit-softmax path, because the counter does
  not see every fused CPU attention kernel; the arithmetic is the same),
* achieved GFLOP/s and its ratio to the fp32 matmul peak, timed here with a
  large ``torch.mm`` in the same process,
* ratios between variants of one network: channels_last vs contiguous memory,
  and HAT's fused SDPA attention vs the explicit softmax formula.

Tiles: RAMS 9 x 128 x 128 LR (paper defaults), HAT-S and hat-tiny 1 x 64 x 64,
UNet++ (ResNet-18), the shipped U-Nets (unet-tiny, unet-small) 1 x 256 x 256. Weights are random: speed does not depend on them.

Reference: with ``--reference-hat MODULE:CLASS`` (and ``--reference-path DIR``
put on ``sys.path``) a HAT class with the official constructor (``img_size,
in_chans, embed_dim, depths, num_heads, window_size, ...``), e.g. the official
``hat_arch.HAT`` or spandrel's port, is built as HAT-S, given our weights
(strict load: the names match) and run on the same tile: the bench prints the
largest output difference and the time ratio ours / reference.

Usage: ``python bench/bench_models.py [--repeats 3] [--only rams hat-s ...] [--device cpu|cuda]
[--reference-path DIR --reference-hat MODULE:CLASS]``.
The default run takes about one to three minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from core.models import zoo  # noqa: E402
from core.models.archs.rams import PAPER_PARAMS, count_parameters  # noqa: E402


@dataclass
class Case:
    """One network at one tile; ``variant`` names a memory format or attention path."""

    name: str
    arch: str
    preset: str
    shape: tuple  # input [B, C, h, w]
    variant: str = "default"
    channels_last: bool = False
    attention: Optional[str] = None


CASES: List[Case] = [
    Case("rams", "rams", "rams", (1, 9, 128, 128)),
    Case("rams", "rams", "rams", (1, 9, 128, 128), "channels_last", channels_last=True),
    Case("hat-s", "hat", "hat-s", (1, 1, 64, 64), "sdpa", attention="sdpa"),
    Case("hat-s", "hat", "hat-s", (1, 1, 64, 64), "explicit", attention="explicit"),
    Case("hat-tiny", "hat", "hat-tiny", (1, 1, 64, 64), "sdpa", attention="sdpa"),
    Case("unetpp", "unetpp", "unetpp", (1, 1, 256, 256)),
    Case("unetpp", "unetpp", "unetpp", (1, 1, 256, 256), "channels_last", channels_last=True),
    Case("unet-tiny", "unetpp", "unet-tiny", (1, 1, 256, 256)),
    Case("unet-small", "unetpp", "unet-small", (1, 1, 256, 256)),
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], repeats: int, device: torch.device) -> Tuple[float, object]:
    """(median seconds of ``repeats`` calls after one warm-up call, the warm-up result)."""
    out = fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def matmul_peak(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """fp32 GFLOP/s of one large square matrix product: the best of ``repeats`` runs.

    The best run, not the median, because the peak is what the hardware can do;
    other processes on a shared machine only ever make it look slower.
    """
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def to_channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """channels_last for 4-D weights, channels_last_3d for 5-D ones (RAMS mixes both)."""
    for p in model.parameters():
        if p.ndim == 4:
            p.data = p.data.contiguous(memory_format=torch.channels_last)
        elif p.ndim == 5:
            p.data = p.data.contiguous(memory_format=torch.channels_last_3d)
    return model


def count_flops(case: Case) -> int:
    """FLOPs of one forward pass, counted on the meta device (shapes only, no arithmetic)."""
    with torch.device("meta"):
        model = zoo.build(case.arch, preset=case.preset).eval()
    if hasattr(model, "set_attention_impl"):
        model.set_attention_impl("explicit")  # every attention matmul visible to the counter
    x = torch.empty(*case.shape, device="meta")
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


def run_case(case: Case, repeats: int, device: torch.device, flops_cache: Dict[str, int]) -> Dict[str, object]:
    torch.manual_seed(0)
    model = zoo.build(case.arch, preset=case.preset).eval().to(device)
    x = torch.rand(*case.shape, device=device)
    if case.channels_last:
        model = to_channels_last(model)
        x = x.contiguous(memory_format=torch.channels_last)
    if case.attention:
        model.set_attention_impl(case.attention)
    if case.name not in flops_cache:
        flops_cache[case.name] = count_flops(case)
    flops = flops_cache[case.name]

    with torch.inference_mode():
        seconds, y = timed(lambda: model(x), repeats, device)
    out_px = y.shape[0] * y.shape[-1] * y.shape[-2]
    params = sum(p.numel() for p in model.parameters())
    return dict(case=case, seconds=seconds, mpx_s=out_px / seconds / 1e6, flops=flops,
                flops_px=flops / out_px, gflops_s=flops / seconds / 1e9, params=params, out=tuple(y.shape))


def compare_reference(spec: str, path: Optional[str], repeats: int, device: torch.device) -> None:
    """Our HAT-S against a reference HAT class on the same weights and tile."""
    if path:
        sys.path.insert(0, path)
    module_name, _, cls_name = spec.partition(":")
    ref_cls = getattr(importlib.import_module(module_name), cls_name or "HAT")
    torch.manual_seed(0)
    ours = zoo.build("hat", preset="hat-s", upsampler="pixelshuffle").eval().to(device)  # the official layout
    h = ours.hparams
    ref = ref_cls(img_size=64, in_chans=h["in_chans"], embed_dim=h["embed_dim"], depths=h["depths"],
                  num_heads=h["num_heads"], window_size=h["window_size"], compress_ratio=h["compress_ratio"],
                  squeeze_factor=h["squeeze_factor"], conv_scale=h["conv_scale"], overlap_ratio=h["overlap_ratio"],
                  mlp_ratio=h["mlp_ratio"], upscale=h["scale"], img_range=h["img_range"],
                  upsampler="pixelshuffle", resi_connection="1conv").eval().to(device)
    ref.load_state_dict(ours.state_dict(), strict=True)
    x = torch.rand(1, 1, 64, 64, device=device)
    with torch.inference_mode():
        t_ours, y_ours = timed(lambda: ours(x), repeats, device)
        t_ref, y_ref = timed(lambda: ref(x), repeats, device)
        # A second round in the other order evens out drifts in machine load.
        t_ref2, _ = timed(lambda: ref(x), repeats, device)
        t_ours2, _ = timed(lambda: ours(x), repeats, device)
    t_ours, t_ref = min(t_ours, t_ours2), min(t_ref, t_ref2)
    diff = (y_ours - y_ref).abs().max().item()
    print(f"\nReference HAT-S ({spec}), same weights, 1x64x64: max |ours - reference| = {diff:.2e}")
    print(f"  ours {t_ours:.3f} s, reference {t_ref:.3f} s, ratio ours / reference = {t_ours / t_ref:.2f}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case (median reported)")
    parser.add_argument("--only", nargs="+", help="network names to run (rams, hat-s, hat-tiny, unetpp)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--reference-hat", metavar="MODULE:CLASS",
                        help="a HAT class with the official constructor to compare HAT-S against")
    parser.add_argument("--reference-path", metavar="DIR", help="folder to put on sys.path for --reference-hat")
    args = parser.parse_args(argv)
    device = torch.device(args.device)

    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}")
    peak = matmul_peak(device)
    print(f"fp32 matmul peak (2048^3 torch.mm, best of 5): {peak:.1f} GFLOP/s (measured again at the end)\n")

    rams = zoo.build("rams")
    print(f"RAMS parameters: {count_parameters(rams, False):,} without weight-norm g "
          f"(paper {PAPER_PARAMS:,}), {count_parameters(rams, True):,} with g\n")

    cases = [c for c in CASES if not args.only or c.name in args.only]
    flops_cache: Dict[str, int] = {}
    results = []
    header = (f"{'network':<9} {'variant':<14} {'input':<16} {'params':>11} {'time s':>8} {'out MP/s':>9} "
              f"{'GFLOP':>8} {'FLOP/px':>10} {'GFLOP/s':>8} {'% peak':>7}")
    print(header)
    print("-" * len(header))
    for case in cases:
        r = run_case(case, args.repeats, device, flops_cache)
        results.append(r)
        shape = "x".join(str(s) for s in case.shape[1:])
        print(f"{case.name:<9} {case.variant:<14} {shape:<16} {r['params']:>11,} {r['seconds']:>8.3f} "
              f"{r['mpx_s']:>9.4f} {r['flops'] / 1e9:>8.1f} {r['flops_px'] / 1e3:>9.1f}k "
              f"{r['gflops_s']:>8.1f} {100 * r['gflops_s'] / peak:>6.1f}%", flush=True)

    peak_end = matmul_peak(device)
    if peak_end > peak:
        peak = peak_end
    print(f"\nfp32 matmul peak at the end: {peak_end:.1f} GFLOP/s; best seen {peak:.1f} GFLOP/s")
    for r in results:
        print(f"  {r['case'].name:<9} {r['case'].variant:<14} {r['gflops_s']:>7.1f} GFLOP/s = "
              f"{100 * r['gflops_s'] / peak:5.1f}% of the best peak")

    print("\nRatios (time of the variant / time of the first variant of the same network):")
    by_name: Dict[str, List[Dict[str, object]]] = {}
    for r in results:
        by_name.setdefault(r["case"].name, []).append(r)
    for name, rs in by_name.items():
        base = rs[0]
        for r in rs[1:]:
            print(f"  {name}: {r['case'].variant} / {base['case'].variant} = {r['seconds'] / base['seconds']:.2f}")
    if args.reference_hat:
        compare_reference(args.reference_hat, args.reference_path, args.repeats, device)
    else:
        print("\n(no --reference-hat given: HAT-S not compared against a reference implementation)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
