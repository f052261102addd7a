"""A full Sentinel-2 tile, four 10 m bands, super-resolved and segmented: how long, how much memory, how close to the machine.

Prints, in one run on this machine:

1. the machine's fp32 matmul peak (a 2048 x 2048 product, median of 5), the
   yardstick every network's speed is given against, and the bf16 peak where
   the segmentation runs in bf16 (``--seg-precision``, default the plugin's);
2. each stage on a real-size crop, each in a fresh process as the plugin runs
   it (``core.api``: read, tile, blend, write compressed GeoTIFFs with
   overviews): super-resolution with RAMS (9 dates) and with HAT (1 date), and
   segmentation of each SR output by the buildings and roads networks (and,
   when that ran in bf16, once more in fp32 for the ratio).
   Per stage: wall time, the one-time setup before the first tile (imports,
   loading), time inside the networks, peak RSS (``VmHWM``);
3. per network: FLOPs per pixel (``torch.utils.flop_counter``), achieved
   GFLOP/s and % of the matmul peak of its number format, for the network
   alone on one tile of the pipeline's size and over the stage's per-pixel
   part (FLOPs of every call / (wall time - setup));
4. the full 10980 x 10980 tile, extrapolated from the crop: the setup once,
   the rest by area (the pipeline is linear in the number of tiles; memory
   follows the width only): SR and segmentation separately and together.
   Before 2026-12-07 evening the whole wall time was multiplied by the area,
   which counted the ~4.5 s import of the segmentation library 204 times.

Usage::

    python bench/bench_full_tile.py [--crop 768] [--inputs STACK.tif ...] [--models resources/models]
                                    [--workdir /tmp/bench_full_tile] [--keep]
                                    [--seg-precision auto|fp32|bf16]

Without ``--inputs`` the crop is a synthetic 9-date 4-band stack (uint16 DN,
textured like land): speed does not depend on what the pixels show. With
``--inputs`` (one 4-band GeoTIFF per date, first = reference) those are used,
cropped to ``--crop`` px.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench_s2_tile import _write_stack  # noqa: E402  (the same synthetic 9-date stack as the 4-band bench)

FULL_TILE = 10980

#: The child: one plugin job in a fresh process; reports wall time, time in the networks, calls, peak RSS.
_CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
import torch
from core import api
from core.options import SegmentOptions, SuperResolveOptions
from core.models.registry import spec
model_time = [0.0]; calls = []; started = {{}}; first_call = []
def _top(module):
    return type(module).__name__ in ("RAMS", "HAT", "SegmentationNet")
def _pre(module, args):
    if _top(module):
        started[id(module)] = time.perf_counter()
        if not first_call:
            first_call.append(started[id(module)])
def _post(module, args, out):
    if _top(module) and id(module) in started:
        model_time[0] += time.perf_counter() - started.pop(id(module))
        calls.append([type(module).__name__, list(args[0].shape)])
torch.nn.modules.module.register_module_forward_pre_hook(_pre)
torch.nn.modules.module.register_module_forward_hook(_post)
job = {job!r}
t0 = time.perf_counter()
if job["kind"] == "sr":
    api.super_resolve(job["inputs"], job["out"], job["checkpoint"], SuperResolveOptions(all_bands=True))
else:
    api.segment(job["input"], job["checkpoints"], out_mask=job["out"],
                options=SegmentOptions(precision=job.get("precision", "auto")))
wall = time.perf_counter() - t0
hwm = 0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        hwm = int(line.split()[1]) * 1024
shapes = {{}}
for name, shape in calls:
    shapes.setdefault(json.dumps([name, shape]), 0)
    shapes[json.dumps([name, shape])] += 1
setup = (first_call[0] - t0) if first_call else 0.0
print(json.dumps({{"seconds": wall, "setup_seconds": setup, "model_seconds": model_time[0], "peak_rss": hwm,
                  "calls": shapes}}))
"""


def matmul_peak(n: int = 2048, repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """GFLOP/s of an n x n matrix product in ``dtype`` on this machine's threads (median of ``repeats``)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / float(np.median(times)) / 1e9


def _crop_inputs(inputs: Sequence[str], folder: Path, side: int) -> List[Path]:
    """The top-left ``side`` x ``side`` px of each given raster, as GeoTIFFs in ``folder``."""
    import rasterio
    from rasterio.windows import Window

    out = []
    for i, src in enumerate(inputs):
        with rasterio.open(src) as ds:
            w = Window(0, 0, min(side, ds.width), min(side, ds.height))
            profile = ds.profile.copy()
            profile.update(driver="GTiff", width=int(w.width), height=int(w.height),
                           transform=ds.window_transform(w), tiled=True, blockxsize=256, blockysize=256,
                           compress="deflate")
            data = ds.read(window=w)
            target = folder / f"input_{i:02d}_{Path(src).stem}.tif"
            with rasterio.open(target, "w", **profile) as dst:
                dst.write(data)
                for b in range(1, ds.count + 1):
                    if ds.descriptions[b - 1]:
                        dst.set_band_description(b, ds.descriptions[b - 1])
        out.append(target)
    return out


def run_child(job: Dict) -> Dict:
    code = _CHILD.format(root=str(ROOT), job=job)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=7200)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _flops_of_call(net: torch.nn.Module, shape: Sequence[int]) -> float:
    """FLOPs of one call. The counter cannot compute weight-norm weights itself, so they are
    computed first, inside ``parametrize.cached()``, and the counted call reads them from the cache."""
    from torch.nn.utils import parametrize
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(*shape)
    with torch.inference_mode(), parametrize.cached():
        for module in net.modules():
            if parametrize.is_parametrized(module):
                for name in module.parametrizations.keys():
                    getattr(module, name)
        with FlopCounterMode(display=False) as counter:
            net(x)
    return float(counter.get_total_flops())


def _alone_seconds(net: torch.nn.Module, shape: Sequence[int], repeats: int = 3,
                   autocast: Optional[torch.dtype] = None) -> float:
    from torch.nn.utils import parametrize

    from core.inference.precision import autocast_for

    x = torch.rand(*shape)
    with torch.inference_mode(), parametrize.cached(), autocast_for(autocast, torch.device("cpu")):
        net(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _per_pixel_seconds(result: Dict) -> float:
    """A stage's time that grows with the area: its wall time less the one-time setup before the first tile."""
    return max(result["seconds"] - result.get("setup_seconds", 0.0), 1e-9)


def full_tile_hours(result: Dict, area: float) -> float:
    """A stage on the full tile: setup once, the rest ``area`` times (imports and loading do not grow with it)."""
    return (result.get("setup_seconds", 0.0) + _per_pixel_seconds(result) * area) / 3600


def network_rows(stage: str, result: Dict, nets: Dict[str, torch.nn.Module], peak: float,
                 autocast: Optional[torch.dtype] = None) -> List[Dict]:
    """Per network of a stage: FLOPs of all its calls, achieved GFLOP/s alone (in the stage's number
    format) and over the stage's per-pixel part (wall time less the one-time setup)."""
    rows = []
    per_name: Dict[str, Dict] = {}
    for key, count in result["calls"].items():
        name, shape = json.loads(key)
        entry = per_name.setdefault(name, {"flops": 0.0, "calls": 0, "shape": shape})
        entry["flops"] += _flops_of_call(nets[name], shape) * count
        entry["calls"] += count
        if count > entry.get("count_of_shape", 0):
            entry["shape"], entry["count_of_shape"] = shape, count
    for name, entry in per_name.items():
        net = nets[name]
        alone_s = _alone_seconds(net, entry["shape"], autocast=autocast if name == "SegmentationNet" else None)
        alone_flops = _flops_of_call(net, entry["shape"])
        rows.append({"stage": stage, "network": name, "calls": entry["calls"], "tile": entry["shape"],
                     "alone_gflops": alone_flops / alone_s / 1e9, "alone_pct": 100 * alone_flops / alone_s / 1e9 / peak,
                     "stage_gflops": entry["flops"] / _per_pixel_seconds(result) / 1e9,
                     "stage_pct": 100 * entry["flops"] / _per_pixel_seconds(result) / 1e9 / peak})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=str(ROOT / "resources" / "models"))
    ap.add_argument("--crop", type=int, default=768, help="crop side in 10 m pixels (default 768)")
    ap.add_argument("--inputs", nargs="+", help="4-band GeoTIFFs, one per date (default: a synthetic stack)")
    ap.add_argument("--workdir", default="/tmp/bench_full_tile")
    ap.add_argument("--keep", action="store_true", help="keep the crop and the outputs")
    ap.add_argument("--seg-precision", default="auto", choices=("auto", "fp32", "bf16"),
                    help="number format of the segmentation networks (default: the plugin's, auto); with bf16 in "
                         "use, the same segmentation also runs once in fp32 for the ratio")
    args = ap.parse_args()

    from core.models.zoo import load_checkpoint

    models = Path(args.models)
    sr = {"RAMS": models / "rams_taskdriven.safetensors", "HAT": models / "hat_taskdriven.safetensors"}
    seg = [models / "unetpp_buildings.safetensors", models / "unetpp_roads.safetensors"]
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    frames = 9
    inputs = _crop_inputs(args.inputs, work, args.crop) if args.inputs else _write_stack(work, args.crop, frames)
    if len(inputs) < frames:
        inputs = (inputs * frames)[:frames]
    side = args.crop
    area = (FULL_TILE / side) ** 2

    print(f"{time.strftime('%Y-%m-%d %H:%M')} · torch {torch.__version__} · {torch.get_num_threads()} threads · "
          f"crop {side} x {side} px (10 m), {len(set(inputs))} distinct date(s) · full tile = {area:.0f} crops")
    from core.inference.loading import load_model
    from core.inference.precision import choose_precision

    seg_dtype = choose_precision(args.seg_precision, torch.device("cpu"), [])
    peak = matmul_peak()
    peaks = {None: peak}
    line = f"fp32 matmul peak: {peak:.1f} GFLOP/s"
    if seg_dtype is not None:
        peaks[seg_dtype] = matmul_peak(dtype=seg_dtype)
        line += f" · {str(seg_dtype).replace('torch.', '')} matmul peak: {peaks[seg_dtype]:.1f} GFLOP/s"
    print(line + "\n")

    nets: Dict[str, torch.nn.Module] = {}
    for name, path in sr.items():
        nets[name] = load_checkpoint(path)[0].eval()
    nets["SegmentationNet"] = load_model(seg[0], torch.device("cpu")).model  # the inference form the job runs
    seg_format = str(seg_dtype).replace("torch.", "") if seg_dtype is not None else "fp32"

    stages = []  # (label, result, number format of its networks)
    totals = []
    for name, ckpt in sr.items():
        out = work / f"sr_{name.lower()}.tif"
        job_inputs = [str(p) for p in (inputs if name == "RAMS" else inputs[:1])]
        r_sr = run_child({"kind": "sr", "inputs": job_inputs, "out": str(out), "checkpoint": str(ckpt)})
        r_seg = run_child({"kind": "segment", "input": str(out), "checkpoints": [str(p) for p in seg],
                           "out": str(work / f"seg_{name.lower()}.tif"), "precision": args.seg_precision})
        stages += [(f"super-resolve {name}", r_sr, None), (f"segment {name} output ({seg_format})", r_seg, seg_dtype)]
        totals.append((name, r_sr, r_seg))
    if seg_dtype is not None:  # the same job in fp32: what the number format buys
        r32 = run_child({"kind": "segment", "input": str(work / "sr_hat.tif"), "checkpoints": [str(p) for p in seg],
                         "out": str(work / "seg_hat_fp32.tif"), "precision": "fp32"})
        stages.append(("segment HAT output (fp32)", r32, None))

    print(f"{'stage':<34} {'wall':>8} {'setup':>7} {'in networks':>12} {'peak RSS':>9} {'full tile':>10}")
    for label, r, _ in stages:
        print(f"{label:<36} {r['seconds']:>7.1f}s {r.get('setup_seconds', 0.0):>6.1f}s {r['model_seconds']:>11.1f}s "
              f"{r['peak_rss'] / 2**20:>7.0f}MB {full_tile_hours(r, area):>9.2f}h")
    print(f"(setup: imports and loading before the first tile, once per job; the rest grows with the area)")
    print()
    print(f"{'network (stage)':<52} {'calls':>6} {'tile':>18} {'alone GFLOP/s':>14} {'% peak':>7} "
          f"{'in stage GFLOP/s':>17} {'% peak':>7}")
    for label, r, dtype in stages:
        for row in network_rows(label, r, nets, peaks[dtype], autocast=dtype):
            print(f"{row['network'] + ' (' + label + ')':<52} {row['calls']:>6} {str(row['tile']):>18} "
                  f"{row['alone_gflops']:>14.1f} {row['alone_pct']:>6.0f}% {row['stage_gflops']:>17.1f} "
                  f"{row['stage_pct']:>6.0f}%")
    print("(% of the matmul peak in the network's own number format)")
    print(f"\nfull {FULL_TILE} x {FULL_TILE} tile, four bands (extrapolated by area from the {side}² crop), "
          f"segmentation in {seg_format}:")
    print(f"{'SR network':<12} {'super-resolve':>14} {'segment':>9} {'total':>8} {'peak RSS':>9}")
    for name, r_sr, r_seg in totals:
        t_sr, t_seg = full_tile_hours(r_sr, area), full_tile_hours(r_seg, area)
        rss = max(r_sr["peak_rss"], r_seg["peak_rss"]) / 2**20
        print(f"{name:<12} {t_sr:>13.2f}h {t_seg:>8.2f}h {t_sr + t_seg:>7.2f}h {rss:>7.0f}MB")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
