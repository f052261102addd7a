"""``ui.torch_preload``: opens what ``import torch`` opens first, and PyTorch then imports and computes as usual.

Run in a fresh interpreter (an import happens once per process), as the dock's worker runs it in QGIS. With a
CUDA wheel it must stop after ``libtorch_global_deps.so`` (torch front-loads its CUDA libraries itself); with
a CPU build it also opens ``libtorch_python.so``. How much it shortens the pause: ``bench/bench_import_pause.py``.
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
maps = open("/proc/self/maps").read()
state = {{"opened": opened, "torch_before": "torch" in sys.modules, "cudart": "libcudart" in maps,
          "python_lib_before": "libtorch_python" in maps}}
import torch
state["sum"] = float((torch.ones(3) * 2).sum())
print(json.dumps(state))
"""


@pytest.mark.skipif(not (TORCH_LIB / "libtorch_python.so").is_file() or not Path("/proc/self/maps").exists(),
                    reason="this PyTorch keeps its libraries outside torch/lib (a distribution build), or this "
                           "system has no /proc: the preload opens nothing there and import torch does it all")
def test_preload_opens_what_torch_opens_first_and_torch_works_after():
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT))], capture_output=True, text=True,
                         check=True, env={"PATH": "/usr/bin:/bin"})
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["torch_before"] is False  # it only found where torch lies
    if got["cudart"]:  # a CUDA wheel: torch's own ordered CUDA loading must come before libtorch_python
        assert got["opened"] == ["libtorch_global_deps.so"] and not got["python_lib_before"]
    else:
        assert got["opened"] == ["libtorch_global_deps.so", "libtorch_python.so"] and got["python_lib_before"]
    assert got["sum"] == 6.0


def test_nothing_is_opened_where_torch_cannot_be_found(monkeypatch):
    from ui import torch_preload

    monkeypatch.setattr(torch_preload.importlib.util, "find_spec", lambda name: None)
    assert torch_preload.preload_torch_libraries() == []
