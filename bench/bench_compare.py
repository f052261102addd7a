"""Compare without trust maps against two Super-resolve runs (issue 21: Compare took 15x a super-resolution).

The dock's *Run two checkpoints* is two super-resolutions plus the metrics.
This bench times, on one world-v2 scene with nine 4-band revisits and the
shipped 4-band RAMS networks (baseline and task-driven), as the dock runs them:

* ``sr x2``: ``api.super_resolve`` with each checkpoint (all four bands);
* ``compare``: the same two runs followed by ``api.compare_outputs`` against the
  HR reference with ``CompareOptions()`` (no trust maps, the default);
* ``compare + Dice`` (``--dice``): also building and road Dice with the shipped
  UNet++ networks against the scene's masks;
* ``compare + trust`` (``--trust``): with trust maps (what Compare always did).

Each timing is the best of ``--repeat`` runs, taken in turns after one warm-up (a
shared CPU is noisy). It prints the ratio compare / (sr x2); the target is <= 1.5.

Usage: ``python bench/bench_compare.py [--size 96] [--repeat 3] [--dice] [--trust] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core import api  # noqa: E402
from core.evaluation.compare_types import MaskSource  # noqa: E402
from core.options import CompareOptions, SuperResolveOptions  # noqa: E402

MODELS = ("rams_baseline", "rams_taskdriven")


def make_scene(folder: Path, size_lr: int, seed: int) -> dict:
    from core.data.scene import write_scene
    from core.data.synthetic.world_v2 import make_world_scene

    scene = make_world_scene(size_hr=3 * size_lr, frames=9, seed=seed, real_world=True, object_free=False,
                             name="bench_compare")
    path = write_scene(scene, folder / "scene")
    return {"revisits": sorted(str(p) for p in (path / "lr").glob("*.tif")), "hr": str(path / "hr.tif"),
            "masks": {t: str(path / "masks" / f"{t}.tif") for t in ("buildings", "roads")}}


def sr_twice(scene: dict, out: Path, device: str) -> dict:
    paths = {}
    options = SuperResolveOptions(all_bands=True, device=device)
    for label, name in zip(("Baseline", "Task-driven"), MODELS):
        target = out / f"{name}.tif"
        for p in out.glob(f"{name}*"):
            p.unlink()
        api.super_resolve(scene["revisits"], target, api.shipped_models_dir() / f"{name}.safetensors", options)
        paths[label] = str(target)
    return paths


def compare(scene: dict, out: Path, device: str, dice: bool, trust: bool) -> None:
    outputs = sr_twice(scene, out, device)
    masks, seg = {}, {}
    if dice:
        masks = {t: MaskSource(p) for t, p in scene["masks"].items()}
        seg = {t: str(api.shipped_checkpoint("segmentation", t)) for t in masks}
    inputs = {label: (scene["revisits"], None) for label in outputs} if trust else None  # band: the recorded one
    result = api.compare_outputs(outputs, scene["hr"], masks, seg, CompareOptions(trust=trust, device=device),
                                 trust_inputs=inputs)
    assert result.metrics["Baseline"].get("cpsnr") is not None, result.notes
    if trust:  # the trust rows were really computed (a failed trust map only leaves a note)
        assert result.metrics["Baseline"].get("trust_mean") is not None, result.notes


def interleaved(fns, repeat: int) -> list:
    """Best time of each function, run in turns (a, b, a, b, ...) so both meet the same load on a shared CPU."""
    times = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t)
    return [min(t) for t in times]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=96, help="LR scene size in pixels (default 96)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dice", action="store_true", help="also time compare with building and road Dice")
    parser.add_argument("--trust", action="store_true", help="also time compare with trust maps (slow)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_compare_"))
    try:
        scene = make_scene(work, args.size, args.seed)
        out = work / "out"
        out.mkdir()
        compare(scene, out, args.device, False, False)  # warm-up: model loading, imports, thread pools, caches
        fns = [lambda: sr_twice(scene, out, args.device), lambda: compare(scene, out, args.device, False, False)]
        if args.dice:
            fns.append(lambda: compare(scene, out, args.device, True, False))
        times = interleaved(fns, args.repeat)
        t_sr = times[0]
        print(f"scene {args.size} px LR, 9 revisits x 4 bands, shipped RAMS x2, device {args.device}, "
              f"best of {args.repeat}")
        print(f"sr x2                     {t_sr:7.2f} s")
        print(f"compare (no trust maps)   {times[1]:7.2f} s   ratio {times[1] / t_sr:.2f}  (target <= 1.5)")
        if args.dice:
            print(f"compare + Dice            {times[2]:7.2f} s   ratio {times[2] / t_sr:.2f}")
        if args.trust:
            t = interleaved([lambda: compare(scene, out, args.device, False, True)], 1)[0]
            print(f"compare + trust maps      {t:7.2f} s   ratio {t / t_sr:.2f}  (once)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
