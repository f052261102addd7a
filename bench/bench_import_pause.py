"""How long a worker thread's first import of the model code stops the main thread: plain, or after the preload.

The dock lists checkpoints in a worker thread the first time (the card read
imports PyTorch); the question is how long QGIS's UI thread still cannot run
Python meanwhile. Each run is a fresh interpreter (an import happens once per
process): a worker imports ``core.models.zoo`` and lists the shipped
checkpoints, first opening PyTorch's libraries with
``ui.torch_preload.preload_torch_libraries`` (``--variant preload``) or not
(``plain``), while the main thread ticks every 10 ms and records its longest
pause. The worker starts only once the main thread ticks, so the whole import
is watched.

Prints the median and range of the longest pause per variant over ``--runs``
alternating runs, and their ratio. Run it on a quiet machine: a busy CPU adds
pauses of its own. The gain depends on the PyTorch build: with a CUDA wheel the
preload opens only ``libtorch_global_deps.so`` (see ``ui/torch_preload.py``),
so expect a ratio near 1 there (1.2x measured). Opening both libraries of the
same CUDA wheel gave 4.2x (0.35 s -> 0.08 s); a CPU build was not measured.

Usage::

    python bench/bench_import_pause.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import sys, threading, time
sys.path.insert(0, {parent!r})
variant = {variant!r}
# what QGIS has imported once the plugin has started (the light modules), before the dock lists anything
from {package}.ui.torch_preload import preload_torch_libraries
from {package}.core import api
started, done = threading.Event(), threading.Event()

def work():
    started.wait()
    if variant == "preload":
        preload_torch_libraries()
    api.list_models()
    done.set()

threading.Thread(target=work, daemon=True).start()
last = time.monotonic(); longest = 0.0
started.set()
while not done.is_set():
    time.sleep(0.01)
    now = time.monotonic(); longest = max(longest, now - last - 0.01); last = now
print(longest)
"""


def one_run(variant: str) -> float:
    code = CHILD.format(parent=str(ROOT.parent), package=ROOT.name, variant=variant)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    results = {"plain": [], "preload": []}
    for _ in range(args.runs):
        for variant in results:
            results[variant].append(one_run(variant))
    for variant, values in results.items():
        print(f"{variant:8s} longest pause of the main thread: median {statistics.median(values):.3f} s "
              f"(min {min(values):.3f}, max {max(values):.3f}; {len(values)} runs)")
    ratio = statistics.median(results["plain"]) / max(statistics.median(results["preload"]), 1e-6)
    print(f"plain / preload: {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
