"""``ui.torch_preload``: opens what ``import torch`` opens, and PyTorch then imports and computes as usual.

Run in a fresh interpreter (an import happens once per process), as the dock's worker runs it in QGIS.
Where it helps is measured by ``bench/bench_import_pause.py``, not here.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCH_LIB = Path(importlib.util.find_spec("torch").origin).parent / "lib"

CHILD = r"""
import json, sys
sys.path.insert(0, {root!r})
from ui.torch_preload import preload_torch_libraries
opened = preload_torch_libraries()
before = "torch" in sys.modules
import torch
print(json.dumps({{"opened": opened, "torch_before": before, "sum": float((torch.ones(3) * 2).sum()),
                   "maps": [l.split()[-1] for l in open("/proc/self/maps") if "libtorch_python" in l][:1]}}))
"""


@pytest.mark.skipif(not (TORCH_LIB / "libtorch_python.so").is_file() or not Path("/proc/self/maps").exists(),
                    reason="this PyTorch keeps its libraries outside torch/lib (a distribution build), or this "
                           "system has no /proc: the preload opens nothing there and import torch does it all")
def test_preload_opens_torch_libraries_without_importing_torch_and_torch_works_after():
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT))], capture_output=True, text=True,
                         check=True, env={"PATH": "/usr/bin:/bin"})
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["opened"] == ["libtorch_global_deps.so", "libtorch_python.so"]
    assert got["torch_before"] is False  # it only found where torch lies
    assert got["sum"] == 6.0
    assert got["maps"] and Path(got["maps"][0]).resolve() == (TORCH_LIB / "libtorch_python.so").resolve()


def test_nothing_is_opened_where_torch_cannot_be_found(monkeypatch):
    from ui import torch_preload

    monkeypatch.setattr(torch_preload.importlib.util, "find_spec", lambda name: None)
    assert torch_preload.preload_torch_libraries() == []
