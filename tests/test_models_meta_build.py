"""Checking a checkpoint's shapes must not depend on what the process imported first (issue 24, item 1).

Reported on Debian 13 (torch 2.6): ``zoo.expected_shapes`` built UNet++ inside
``torch.device("meta")``, segmentation-models-pytorch was imported for the
first time inside that block, and its import of ``torch._dynamo`` stopped with
"Tensor.item() cannot be called on meta tensors". Area fine-tuning and Wald
failed for analysts on Debian stable; in a process that had imported smp before,
the same call worked.

The torch of this platform imports smp on meta without complaint, so the first
test reproduces the failure itself: a network family whose constructor imports
a module that calls ``.item()`` at import time (as ``torch._dynamo`` does under
torch 2.6). The second builds every registered family's expected shapes in a
fresh interpreter that imported nothing but the zoo. Both run in a subprocess:
a cold interpreter is the case that failed, and the toy family must not stay in
this session's registry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict

import torch

from core.models.meta_device import meta_device

ROOT = Path(__file__).resolve().parents[1]

#: A library that computes at import time, as torch._dynamo does: impossible on the meta device.
EAGER_LIBRARY = """
import torch

ONE = torch.ones(()).item()  # "Tensor.item() cannot be called on meta tensors" when imported on meta
DEVICE = str(torch.empty(1).device)
"""

#: A network family that imports that library the first time it is built (as UNet++ imports smp).
LAZY_FAMILY = """
import torch
import torch.nn as nn

from core.models.registry import register


@register("lazyimport", task="sr", presets={"default": {}}, default_preset="default")
class LazyImportNet(nn.Module):
    def __init__(self, scale: int = 3) -> None:
        super().__init__()
        import eager_library  # first import happens here, inside whatever device context the caller chose

        self.scale, self.frames = scale, 1
        self.conv = nn.Conv2d(1, 2, 3)
        self.register_buffer("ones", torch.ones(4) * eager_library.ONE)

    @property
    def hparams(self):
        return {"scale": self.scale}
"""


def _run(code: str, pythonpath: Path = ROOT) -> Dict[str, Any]:
    """Run ``code`` in a fresh interpreter from the repository root; it prints one JSON object last."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([str(pythonpath), str(ROOT)]))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=str(ROOT), capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_family_importing_an_eager_library_on_first_build(tmp_path: Path) -> None:
    (tmp_path / "eager_library.py").write_text(EAGER_LIBRARY, encoding="utf-8")
    (tmp_path / "lazy_family.py").write_text(LAZY_FAMILY, encoding="utf-8")
    state = _run("""
        import json, sys
        import torch
        from core.models import zoo
        from core.models.card import ModelCard
        import lazy_family

        assert "eager_library" not in sys.modules  # cold: the family has not been built yet
        shapes = zoo.expected_shapes(ModelCard(arch="lazyimport"))
        lib = sys.modules["eager_library"]
        print(json.dumps({"shapes": {k: list(v) for k, v in shapes.items()}, "lib_device": lib.DEVICE,
                          "lib_one": lib.ONE, "loader": type(lib.__loader__).__name__,
                          "default_after": str(torch.empty(1).device)}))
    """, pythonpath=tmp_path)
    assert state["shapes"] == {"conv.weight": [2, 1, 3, 3], "conv.bias": [2], "ones": [4]}
    assert state["lib_device"] == "cpu" and state["lib_one"] == 1.0  # the library ran on a real device
    assert state["loader"] == "SourceFileLoader"  # and sees its usual loader
    assert state["default_after"] == "cpu"


def test_models_list_counts_a_family_importing_an_eager_library(tmp_path: Path) -> None:
    """``python -m core.cli models list`` builds every preset on meta too (it failed the same way on Debian 13)."""
    (tmp_path / "eager_library.py").write_text(EAGER_LIBRARY, encoding="utf-8")
    (tmp_path / "lazy_family.py").write_text(LAZY_FAMILY, encoding="utf-8")
    state = _run("""
        import contextlib, io, json
        import lazy_family
        from core.cli.main import main

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["models", "list"])
        rows = [line.split() for line in out.getvalue().splitlines()]
        print(json.dumps({"code": code, "toy": [r for r in rows if r and r[0] == "lazyimport"]}))
    """, pythonpath=tmp_path)
    assert state["code"] == 0
    assert state["toy"] == [["lazyimport", "default", "20"]]  # conv 2x1x3x3 + 2 bias; the buffer is no parameter


def test_every_family_from_a_cold_interpreter() -> None:
    state = _run("""
        import json, sys
        import torch
        from core.models import registry, zoo
        from core.models.card import ModelCard

        before = sorted(m for m in ("segmentation_models_pytorch", "torch._dynamo") if m in sys.modules)
        shapes = {}
        for arch in registry.registered():
            card = ModelCard(arch=arch, hparams=registry.presets_of(arch)[registry.default_preset(arch)],
                             task=registry.task_of(arch))
            shapes[arch] = len(zoo.expected_shapes(card))
        import torch._dynamo  # importable and working afterwards: nothing half-imported was left behind
        print(json.dumps({"before": before, "shapes": shapes, "item": torch.ones(()).item(),
                          "compiling": torch.compiler.is_compiling()}))
    """)
    assert "segmentation_models_pytorch" not in state["before"], "the zoo imports smp itself: not a cold start"
    assert state["shapes"] and all(n > 0 for n in state["shapes"].values()), state["shapes"]
    assert state["item"] == 1.0 and state["compiling"] is False


def test_meta_device_puts_the_network_on_meta_and_restores_everything() -> None:
    finders = list(sys.meta_path)
    with meta_device():
        layer = torch.nn.Linear(3, 2)
    assert layer.weight.device.type == "meta"
    assert torch.empty(1).device.type == "cpu"
    assert sys.meta_path == finders
