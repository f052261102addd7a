"""Issue 21, defect 7: loading the plugin and its Processing provider does not import PyTorch.

QGIS's start-up paid +3.15 s: the provider looked up its default checkpoints
through ``core.models.zoo`` (which imports torch) while its algorithms loaded.
The check runs in a fresh interpreter, where nothing imported torch before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import importlib, json, sys, time
sys.path.insert(0, sys.argv[1])
from qgis.core import QgsApplication
app = QgsApplication([], False)
app.initQgis()
from tests.helpers import import_plugin_package
pkg = import_plugin_package()
out = {}
t = time.perf_counter()
plugin = pkg.classFactory(None)
plugin.initProcessing()  # what QGIS calls at start-up: the provider and its algorithms, with their defaults
out["algorithms"] = len(plugin.provider.algorithms())
out["after provider"] = sorted(m for m in sys.modules if m.split(".")[0] == "torch")[:3]
for name in ("ui.dock", "ui.train_dialog"):  # initGui imports these to learn whether their actions can work
    importlib.import_module(f"{pkg.__name__}.{name}")
out["after ui"] = sorted(m for m in sys.modules if m.split(".")[0] == "torch")[:3]
out["seconds"] = time.perf_counter() - t
defaults = {}
for alg in plugin.provider.algorithms():
    for p in alg.parameterDefinitions():
        if p.name() in ("CHECKPOINT", "SR_CHECKPOINT", "SEG_BUILDINGS", "SEG_ROADS"):
            defaults[f"{alg.name()}.{p.name()}"] = p.defaultValue()
out["defaults"] = defaults
print("RESULT " + json.dumps(out))
"""


def test_plugin_and_provider_load_without_torch(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONDONTWRITEBYTECODE="1")
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT)], capture_output=True, text=True, timeout=300,
                         env=env, cwd=str(tmp_path))
    line = next((ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line, f"exit {run.returncode}\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
    out = json.loads(line[len("RESULT "):])
    print(f"\nplugin + provider + UI modules loaded in {out['seconds']:.2f} s")
    assert out["algorithms"] > 0
    assert out["after provider"] == [], f"the Processing provider imported {out['after provider']}"
    assert out["after ui"] == [], f"importing the dock / training dialog modules imported {out['after ui']}"

    # the torch-free lookup finds the same shipped files as the validated one
    from core import api

    shipped = {card.task + (card.target or ""): str(path) for path, card in reversed(api.list_models())}
    defaults = {k: v for k, v in out["defaults"].items() if v}
    assert defaults, out["defaults"]
    expected = {"CHECKPOINT": shipped["sr"], "SEG_BUILDINGS": shipped["segmentationbuildings"],
                "SEG_ROADS": shipped["segmentationroads"]}
    # area fine-tuning starts from the shipped task-driven RAMS (4 bands, multi-image) by design
    expected_by_key = {"finetunearea.CHECKPOINT": str(api.shipped_models_dir() / "rams_taskdriven.safetensors")}
    for key, value in defaults.items():
        parameter = key.split(".")[-1]
        if key in expected_by_key:
            assert value == expected_by_key[key], (key, value)
        elif parameter in expected:
            assert value == expected[parameter], (key, value)
    assert any(k.endswith(".CHECKPOINT") for k in defaults), defaults
