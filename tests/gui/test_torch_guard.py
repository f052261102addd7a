# SPDX-License-Identifier: GPL-2.0-or-later
"""The triton guard (``ui/torch_guard.py``) on its own, without starting QGIS.

The GUI test next door proves the guard keeps QGIS alive; these tests pin
down its rules, which that test cannot see: it acts only inside QGIS (the
headless trainer keeps triton), it acts once and logs once, it never replaces
a triton that is already in use, it survives someone removing its
``sys.modules`` entry, and with triton kept out PyTorch, torchvision.ops, timm
and segmentation_models_pytorch still import and run.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Dict, List

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_guard() -> types.ModuleType:
    """A private copy of the module, so these tests never touch this process's real import system."""
    spec = importlib.util.spec_from_file_location("torch_guard_under_test", ROOT / "ui" / "torch_guard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def guard() -> types.ModuleType:
    return load_guard()


def run_install(guard, modules: Dict[str, object], meta_path: List[object], environ=None, qgis=None):
    lines: List[str] = []
    status = guard.install(modules=modules, meta_path=meta_path, environ=environ or {}, qgis=qgis,
                           log=lines.append)
    return status, lines


def test_outside_qgis_it_does_nothing(guard):
    modules: Dict[str, object] = {"torch": object()}  # the headless trainer: no qgis.core
    meta_path: List[object] = []
    status, lines = run_install(guard, modules, meta_path)
    assert status == guard.NOT_QGIS
    assert "triton" not in modules and meta_path == [] and lines == []


def test_inside_qgis_it_blocks_triton_once_and_logs_once(guard):
    modules: Dict[str, object] = {"qgis.core": object()}
    meta_path: List[object] = ["path finder"]
    status, lines = run_install(guard, modules, meta_path)
    assert status == guard.BLOCKED_NOW
    assert "triton" in modules and modules["triton"] is None
    assert isinstance(meta_path[0], guard.TritonBlocker) and meta_path[1:] == ["path finder"]
    assert len(lines) == 1 and "triton" in lines[0]

    again, more = run_install(guard, modules, meta_path)
    assert again == guard.ALREADY and more == [] and len(meta_path) == 2
    reloaded = load_guard()  # a plugin reload brings a new copy of the module: still one finder
    assert run_install(reloaded, modules, meta_path)[0] == reloaded.ALREADY and len(meta_path) == 2


def test_a_triton_already_in_use_is_left_alone_and_reported_once(guard):
    triton = types.ModuleType("triton")
    modules: Dict[str, object] = {"qgis.core": object(), "triton": triton}
    meta_path: List[object] = []
    status, lines = run_install(guard, modules, meta_path)
    assert status == guard.TOO_LATE and modules["triton"] is triton
    assert len(lines) == 1 and "before this plugin" in lines[0]
    assert meta_path[0].find_spec("triton.language") is None  # the marker blocks nothing
    assert run_install(guard, modules, meta_path) == (guard.ALREADY, [])


def test_the_environment_variable_switches_it_off(guard):
    modules: Dict[str, object] = {"qgis.core": object()}
    meta_path: List[object] = []
    status, lines = run_install(guard, modules, meta_path, environ={guard.ENV_ALLOW: "1"})
    assert status == guard.ALLOWED and "triton" not in modules and meta_path == [] and lines == []


def test_the_finder_refuses_triton_and_puts_the_entry_back(guard):
    modules: Dict[str, object] = {}
    finder = guard.TritonBlocker(modules=modules)
    with pytest.raises(ModuleNotFoundError) as info:
        finder.find_spec("triton.language")
    assert info.value.name == "triton.language" and guard.ENV_ALLOW in str(info.value)
    assert "triton" in modules and modules["triton"] is None
    assert finder.find_spec("tritonclient") is None and finder.find_spec("torch") is None


def test_in_qgis_torch_stack_imports_and_runs_without_triton(tmp_path: Path):
    """The real import system in a fresh interpreter: QGIS bindings loaded, then the plugin package, then torch."""
    pytest.importorskip("segmentation_models_pytorch", reason="segmentation-models-pytorch is not installed")
    script = textwrap.dedent(f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("guard_alone", {str(ROOT / 'ui' / 'torch_guard.py')!r})
        alone = importlib.util.module_from_spec(spec); spec.loader.exec_module(alone)
        heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'qgis', 'PyQt5', 'PyQt6'))
        assert not heavy, f"the guard module imported {{heavy}}"
        assert alone.install() == alone.NOT_QGIS and 'triton' not in sys.modules

        import qgis.core  # noqa: F401 - what QGIS has loaded before it imports a plugin
        spec = importlib.util.spec_from_file_location(
            "s2_taskdriven_sr", {str(ROOT / '__init__.py')!r}, submodule_search_locations=[{str(ROOT)!r}])
        package = importlib.util.module_from_spec(spec); sys.modules["s2_taskdriven_sr"] = package
        spec.loader.exec_module(package)
        assert 'triton' in sys.modules and sys.modules['triton'] is None, "the package did not install the guard"

        import torch, torchvision.ops, timm, segmentation_models_pytorch as smp
        from torch.utils._triton import has_triton_package
        net = smp.UnetPlusPlus("resnet18", encoder_weights=None, in_channels=1, classes=1).eval()
        with torch.inference_mode():
            out = net(torch.rand(1, 1, 64, 64))
        assert tuple(out.shape) == (1, 1, 64, 64)
        assert torchvision.ops.nms(torch.tensor([[0., 0., 2., 2.]]), torch.tensor([1.]), 0.5).tolist() == [0]
        assert sys.modules['triton'] is None and not has_triton_package()
        assert importlib.util.find_spec('triton') is None
        print("OK")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip().endswith("OK"), done.stdout + done.stderr
