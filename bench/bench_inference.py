"""Speed and memory of georeferenced tiled inference (``core.inference.super_resolve``).

Prints, in one run:

1. **Peak memory**: peak RSS of a fresh process super-resolving 1k, 4k and
   ~11k px square uint16 rasters with a cheap identity-like upsampler (so the
   raster size, not the network, is what varies). One subprocess per size,
   read from ``VmHWM`` (``ru_maxrss`` survives exec on Linux, so a child of a
   big parent would report the parent; it is the fallback where /proc is
   missing). It must stay flat: it may grow with the width through the one
   strip of tiles held in memory, never with width x height. Runs first,
   while the parent is small.
2. **Overhead**: tiled inference (reading, tiling, blending, writing a
   compressed GeoTIFF with overviews) against the bare model run once on the
   same whole array in memory, for a compute-bound network (RAMS, small
   preset); ratio = tiled / bare, aim < 1.15. Also the achieved GFLOP/s against
   this machine's measured fp32 matmul peak.
3. **Throughput**: output megapixels per second for RAMS and HAT presets
   (small and default) on CPU.

Usage: ``python bench/bench_inference.py [--sizes 1024 4096 10980] [--workdir /tmp/bench_inference]``.
Inputs and outputs go to the work folder (deleted afterwards unless --keep).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import rasterio  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from rasterio.transform import from_origin  # noqa: E402
from rasterio.windows import Window  # noqa: E402


class IdentityUpsampler(torch.nn.Module):
    """Nearest upsampling of the mean frame: costs nothing, so only the raster machinery is measured."""

    def __init__(self, frames: int = 1, scale: int = 3) -> None:
        super().__init__()
        self.frames, self.scale = frames, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x.mean(1, keepdim=True), scale_factor=self.scale, mode="nearest")


def build(name: str):
    """(model, card) for a named preset, built without weights (speed does not depend on them)."""
    from core.models.card import ModelCard
    from core.models.registry import build as build_net

    torch.manual_seed(0)
    nets = {"rams-small": ("rams", {"filters": 16, "N": 4}), "rams": ("rams", {}),
            "hat-s": ("hat", {"preset": "hat-s"}), "hat": ("hat", {"preset": "hat"})}
    if name in nets:
        arch, hp = nets[name]
        model = build_net(arch, **hp).eval()
        return model, ModelCard.for_model(model, name=name, normalization={"offset": 0.0, "scale": 1.0})
    if name == "identity":
        return IdentityUpsampler(), ModelCard(arch="identity", frames=1, name=name,
                                              normalization={"offset": 0.0, "scale": 1.0})
    raise ValueError(name)


def make_raster(path: Path, size: int, frames: int = 1, seed: int = 0) -> Path:
    """A smooth uint16 S-2-like raster (bands = dates), written by row blocks (bounded memory)."""
    prof = dict(driver="GTiff", width=size, height=size, count=frames, dtype="uint16", crs="EPSG:32633",
                transform=from_origin(500000.0, 6000000.0, 10.0, 10.0), nodata=0, tiled=True,
                blockxsize=256, blockysize=256, compress="deflate", predictor=2)
    rng = np.random.default_rng(seed)
    x = np.arange(size)[None, :]
    with rasterio.open(path, "w", **prof) as ds:
        for r0 in range(0, size, 1024):
            n = min(1024, size - r0)
            y = np.arange(r0, r0 + n)[:, None]
            for b in range(frames):
                base = 2500 + 900 * np.sin(x / 23.0 + b) * np.cos(y / 31.0) + 300 * np.sin((x + y) / 7.0)
                noise = rng.normal(0, 40, (n, size))
                ds.write(np.clip(base + noise, 1, 65535).astype(np.uint16), b + 1, window=Window(0, r0, size, n))
    return path


def matmul_peak_gflops(n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def model_flops(model, x) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(x)
    return float(fc.get_total_flops())


# --------------------------------------------------------------------------- 1. overhead


def bench_overhead(work: Path, size: int = 488) -> dict:
    """Sizes 248 n - 8 (488, 984) hold n whole default RAMS tiles (256 px, 8 overlap) per axis."""
    from core.inference.sr import super_resolve

    model, card = build("rams-small")
    src = make_raster(work / f"overhead_lr_{size}.tif", size, frames=9)
    with rasterio.open(src) as ds:
        x = torch.from_numpy(ds.read().astype(np.float32) * 1e-4)[None]
    with torch.inference_mode():
        model(x[..., :64, :64])  # warm-up
        t = time.perf_counter()
        model(x)
        bare = time.perf_counter() - t
    t = time.perf_counter()
    res = super_resolve([src], work / f"overhead_sr_{size}.tif", (model, card), band="all")
    tiled = time.perf_counter() - t
    per_px = model_flops(model, x[..., :64, :64]) / (64 * 64)
    from core.inference.runner import Axis

    ax = Axis(size, res.tile, res.overlap)
    computed = (len(ax.origins) * ax.tile_len) ** 2 / size**2
    return {"size": size, "bare_s": bare, "tiled_s": tiled, "ratio": tiled / bare, "tile": res.tile,
            "overlap": res.overlap, "gflops_bare": per_px * size * size / bare / 1e9, "computed": computed}


# --------------------------------------------------------------------------- 2. memory


def child_rss(src: str, out: str) -> None:
    """Run in a fresh process: super-resolve ``src`` with the cheap model, print JSON."""
    from core.inference.sr import super_resolve

    model, card = build("identity")
    t = time.perf_counter()
    res = super_resolve([src], out, (model, card))
    seconds = time.perf_counter() - t
    print(json.dumps({"seconds": seconds, "maxrss_mb": peak_rss_mb(), "tile": res.tile}))


def peak_rss_mb() -> float:
    """Peak RSS of this process in MB.

    ``ru_maxrss`` survives ``exec`` on Linux: a child forked from a big parent
    reports the parent's size. ``VmHWM`` belongs to the process image and
    restarts at exec, so it is used when /proc has it.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def baseline_rss() -> float:
    """Peak RSS of a fresh process that only imported torch, rasterio and core.inference."""
    code = f"import sys; sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'bench')!r}]; import core.inference, bench_inference; " \
           "print(bench_inference.peak_rss_mb())"
    return float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)


def bench_memory(work: Path, sizes) -> list:
    rows = []
    for size in sizes:
        src = make_raster(work / f"rss_{size}.tif", size)
        out = work / f"rss_{size}_sr.tif"
        proc = subprocess.run([sys.executable, __file__, "--child-rss", str(src), str(out)],
                              check=True, capture_output=True, text=True)
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        info.update(size=size, out_mpx=(3 * size) ** 2 / 1e6, out_mb_on_disk=out.stat().st_size / 2**20)
        rows.append(info)
        src.unlink()
        out.unlink()
    return rows


# --------------------------------------------------------------------------- 3. throughput


def bench_throughput(work: Path) -> list:
    from core.inference.sr import super_resolve

    # (model, LR size, frames, tile): sizes are whole tiles of the plan (one tile each, to fit the
    # bench's time); RAMS default is run on 128-px tiles (same speed per pixel, a quarter of the time).
    cases = [("rams-small", 240, 9, None), ("rams", 112, 9, 128), ("hat-s", 84, 1, None), ("hat", 56, 1, None)]
    rows = []
    for name, size, frames, tile in cases:
        model, card = build(name)
        src = make_raster(work / f"tp_{name}.tif", size, frames=frames, seed=1)
        with torch.inference_mode():
            model(torch.rand(1, frames, 16, 16))  # warm-up
        t = time.perf_counter()
        res = super_resolve([src], work / f"tp_{name}_sr.tif", (model, card), band="all", tile=tile)
        seconds = time.perf_counter() - t
        mpx = (3 * size) ** 2 / 1e6
        rows.append({"model": name, "lr": size, "tile": res.tile, "overlap": res.overlap,
                     "seconds": seconds, "mpx_s": mpx / seconds,
                     "params_m": sum(p.numel() for p in model.parameters()) / 1e6})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096, 10980])
    ap.add_argument("--overhead-sizes", type=int, nargs="+", default=[488, 984])
    ap.add_argument("--workdir", default="/tmp/bench_inference")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--skip", nargs="*", default=[], choices=["overhead", "memory", "throughput"])
    ap.add_argument("--child-rss", nargs=2, metavar=("SRC", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_rss:
        child_rss(*args.child_rss)
        return 0
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; work in {work}")
    try:
        if "memory" not in args.skip:
            print(f"\n1. Peak RSS, identity-like x3 upsampler (baseline: imports only {baseline_rss():.0f} MB)")
            for r in bench_memory(work, args.sizes):
                print(f"   {r['size']:>6} px square -> {r['out_mpx']:8.1f} Mpx out: peak RSS {r['maxrss_mb']:7.0f} MB, "
                      f"{r['seconds']:6.1f} s ({r['out_mpx'] / r['seconds']:.1f} Mpx/s), {r['out_mb_on_disk']:.0f} MB on disk")
        if "overhead" not in args.skip:
            peak = matmul_peak_gflops()
            print("\n2. Overhead: tiled GeoTIFF inference vs the bare model on the same pixels (RAMS small, T=9)")
            for size in args.overhead_sizes:
                o = bench_overhead(work, size)
                print(f"   {o['size']}x{o['size']} LR, tile {o['tile']} overlap {o['overlap']}: bare {o['bare_s']:.2f} s, "
                      f"tiled {o['tiled_s']:.2f} s -> ratio {o['ratio']:.3f} (aim < 1.15); the tiles cover "
                      f"{o['computed']:.3f}x the raster's pixels (overlap + edge context)")
                print(f"      bare model: {o['gflops_bare']:.1f} GFLOP/s achieved vs fp32 matmul peak {peak:.1f} GFLOP/s")
        if "throughput" not in args.skip:
            print("\n3. Throughput on CPU (whole pipeline, output Mpx/s)")
            for r in bench_throughput(work):
                print(f"   {r['model']:<10} ({r['params_m']:5.2f} M params) {r['lr']}x{r['lr']} LR, tile {r['tile']}/"
                      f"{r['overlap']}: {r['seconds']:6.1f} s, {r['mpx_s']:.4f} Mpx/s")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
