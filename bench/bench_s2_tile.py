"""A full Sentinel-2 tile, four 10 m bands: how long and how much memory, with the shipped networks.

Prints, in one run:

1. **4-band joint pass vs four 1-band passes**: the same network architecture
   built with ``in_chans=4`` and with ``in_chans=1`` (random weights: speed does
   not depend on them), forward time on the same LR tile; the ratio
   ``4 x one-band / joint`` says how much the joint pass saves.
2. **A full 10980 x 10980 tile**: the whole plugin pipeline (``core.api.super_resolve``
   with ``all_bands``: read, tile, blend, write a compressed GeoTIFF with
   overviews) on square crops of a synthetic 9-date, 4-band revisit stack, in a
   fresh process each, timed and with its peak RSS (``VmHWM``). The full tile's
   time is **extrapolated** from the largest crop by area (the pipeline is
   linear in the number of tiles; the crop is said in the output), and peak
   memory is shown for two crop widths to show it follows the width only.

Usage::

    python bench/bench_s2_tile.py [--models resources/models] [--crops 256 768] [--workdir /tmp/bench_s2]

The checkpoints are the shipped 4-band ``rams_*`` / ``hat_*`` files found in
``--models`` (a 1-band file is skipped with a note).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

FULL_TILE = 10980
BANDS = ("B02", "B03", "B04", "B08")


def _median_time(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def joint_vs_separate(card, lr_side: int = 64) -> dict:
    """Forward time of the card's network with 4 bands jointly vs with 1 band (x4 for four passes)."""
    from core.models.zoo import build

    hp = dict(card.hparams)
    frames = int(card.frames or 1)
    key = "in_chans"
    out = {}
    for chans in (4, 1):
        hp[key] = chans
        net = build(card.arch, **hp).eval()
        shape = (1, frames, chans, lr_side, lr_side) if frames > 1 else (1, chans, lr_side, lr_side)
        x = torch.rand(shape)
        with torch.inference_mode():
            net(x)
            out[chans] = _median_time(lambda net=net, x=x: net(x))
    return {"joint_4band_s": out[4], "one_band_s": out[1], "four_passes_s": 4 * out[1],
            "saving": 4 * out[1] / out[4]}


def _write_stack(folder: Path, side: int, frames: int = 9) -> list:
    """One 4-band GeoTIFF per date (uint16 DN, band descriptions B02..B08), textured like land."""
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, (side // 8 + 1, side // 8 + 1)).astype(np.float32)
    base = np.kron(base, np.ones((8, 8), np.float32))[:side, :side]
    paths = []
    for t in range(frames):
        data = np.stack([np.clip(1000 + 300 * (i + 1) + 400 * base + rng.normal(0, 40, base.shape), 1, 10000)
                         for i in range(4)]).astype(np.uint16)
        p = folder / f"S2_2023-06-{t + 1:02d}.tif"
        with rasterio.open(p, "w", driver="GTiff", width=side, height=side, count=4, dtype="uint16",
                           crs="EPSG:32633", transform=from_origin(500000, 6000000, 10, 10), nodata=0,
                           tiled=True, blockxsize=256, blockysize=256, compress="deflate") as ds:
            ds.write(data)
            for i, b in enumerate(BANDS, start=1):
                ds.set_band_description(i, b)
        paths.append(p)
    return paths


_CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
from core import api
from core.options import SuperResolveOptions
t0 = time.perf_counter()
res = api.super_resolve({inputs!r}, {out!r}, {ckpt!r}, SuperResolveOptions(all_bands=True))
wall = time.perf_counter() - t0
hwm = 0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        hwm = int(line.split()[1]) * 1024
print(json.dumps({{"seconds": wall, "peak_rss": hwm, "tile": res.tile}}))
"""


def pipeline(ckpt: Path, inputs: list, out: Path) -> dict:
    code = _CHILD.format(root=str(ROOT), inputs=[str(p) for p in inputs], out=str(out), ckpt=str(ckpt))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=7200)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=str(ROOT / "resources" / "models"))
    ap.add_argument("--crops", type=int, nargs="+", default=[256, 768], help="crop sides in 10 m pixels")
    ap.add_argument("--workdir", default="/tmp/bench_s2")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    from core.models.zoo import read_card

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    models = []
    for p in sorted(Path(args.models).glob("*.safetensors")):
        card = read_card(p)
        if card.task != "sr":
            continue
        if len(card.bands or []) != 4:
            print(f"skipped {p.name}: a {len(card.bands or [])}-band network")
            continue
        models.append((p, card))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("\n1. joint 4-band pass vs four 1-band passes (random weights, 64x64 LR tile, median of 3)")
    print(f"{'network':<24} {'joint 4-band':>13} {'one band':>10} {'4 x one band':>13} {'saving':>8}")
    for p, card in models:
        r = joint_vs_separate(card)
        print(f"{p.stem:<24} {r['joint_4band_s']:>12.3f}s {r['one_band_s']:>9.3f}s {r['four_passes_s']:>12.3f}s "
              f"{r['saving']:>7.2f}x")
    print(f"\n2. a full {FULL_TILE}x{FULL_TILE} tile, all four bands (whole pipeline in a fresh process; "
          "time extrapolated from the largest crop by area)")
    print(f"{'network':<24} {'crop':>6} {'time':>9} {'peak RSS':>10} {'full tile (extrapolated)':>26}")
    for p, card in models:
        for side in args.crops:
            folder = work / f"{p.stem}_{side}"
            folder.mkdir(exist_ok=True)
            frames = int(card.frames or 1)
            inputs = _write_stack(folder, side, max(frames, 1))
            r = pipeline(p, inputs, folder / "sr.tif")
            full = r["seconds"] * (FULL_TILE / side) ** 2
            print(f"{p.stem:<24} {side:>5}² {r['seconds']:>8.1f}s {r['peak_rss'] / 2**20:>8.0f}MB "
                  f"{full / 3600:>20.2f} h")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
