"""``make package``: the zip a user installs into QGIS holds the plugin, all of it, and nothing else.

Why these checks: the repository root doubles as the plugin folder, so a
careless zip ships the virtual environment or the tests, or misses a
sub-package, and the plugin then fails only on a user's machine. The last test
installs the zip the way QGIS does (extract into a plugins folder) and loads
the plugin from there, in a Python that cannot see this repository.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, List

import pytest

ROOT = Path(__file__).resolve().parents[1]
NAME = "s2_taskdriven_sr"
SYSTEM_PYTHON = "/usr/bin/python3"  # what `make package` uses: the script must not need the venv
#: repository folders beside the plugin's own that must not ship (``core/data`` is plugin code, ``data`` is not)
NOT_PLUGIN = {"tests", "bench", "scripts", "docs", ".venv", ".git", "dist", "demo_output", ".qgis-settings", "data",
              "runs", ".ci"}
REQUIRED_KEYS = ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email",
                 "repository", "tracker", "tags", "category", "icon", "hasProcessingProvider", "supportsQt6")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, object]:
    """The zip built by the script exactly as the Makefile runs it, plus what the script printed."""
    out = tmp_path_factory.mktemp("dist") / f"{NAME}.zip"
    python = SYSTEM_PYTHON if os.access(SYSTEM_PYTHON, os.X_OK) else sys.executable
    run = subprocess.run([python, str(ROOT / "scripts" / "package.py"), "--out", str(out), "--name", NAME],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        metadata = zf.read(f"{NAME}/metadata.txt").decode("utf-8")
    return {"zip": out, "names": names, "stdout": run.stdout, "metadata": metadata}


def _shipped_files(folder: Path) -> List[str]:
    """Files of ``folder`` in the repository that belong in the zip (no byte code, no hidden files)."""
    return sorted(p.relative_to(ROOT).as_posix() for p in folder.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
                  and not any(part.startswith(".") for part in p.relative_to(ROOT).parts))


def test_zip_has_one_top_folder_with_the_plugin_and_nothing_else(built: Dict[str, object]):
    names: List[str] = built["names"]
    assert names[0] == f"{NAME}/"
    assert all(n.startswith(f"{NAME}/") for n in names)
    for part in ("metadata.txt", "LICENSE", "__init__.py", "plugin.py", "core/__init__.py", "ui/__init__.py",
                 "ui/install/deps.py", "ui/install/dialog.py", "ui/processing/provider.py", "resources/icons/icon.svg"):
        assert f"{NAME}/{part}" in names, part
    for name in names:
        parts = [part for part in name.split("/")[1:] if part]
        assert not parts or parts[0] not in NOT_PLUGIN, name
        assert not any(part == "__pycache__" or part.startswith(".") for part in parts), name
        assert not name.endswith((".pyc", ".pyo")), name

    # complete: every source file of core/ and ui/ and every resource (configs, icons, checkpoints) is in
    files = {n[len(NAME) + 1:] for n in names if not n.endswith("/")}
    for folder in ("core", "ui", "resources"):
        expected = _shipped_files(ROOT / folder)
        assert expected, folder
        assert not set(expected) - files, sorted(set(expected) - files)
    top = {f for f in files if "/" not in f}
    assert top == {"__init__.py", "plugin.py", "metadata.txt", "LICENSE"} | ({"README.md", "requirements.txt"} & set(os.listdir(ROOT)))

    # the script says what it wrote
    match = re.search(r"(\S+\.zip): (\d+) files, ([\d.]+) MB", built["stdout"])
    assert match, built["stdout"]
    assert Path(match.group(1)) == built["zip"]
    assert int(match.group(2)) == len(files)
    assert float(match.group(3)) == pytest.approx(built["zip"].stat().st_size / 1e6, abs=0.01)


def test_metadata_has_every_key_qgis_needs(built: Dict[str, object]):
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read_string(built["metadata"])
    general = parser["general"]
    for key in REQUIRED_KEYS:
        assert general.get(key, "").strip(), f"metadata.txt lacks {key}"
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["hasProcessingProvider"] == "yes"
    assert general["supportsQt6"] == "True"
    assert re.fullmatch(r"\d+\.\d+\.\d+", general["version"])
    assert f"{NAME}/{general['icon']}" in built["names"]


def test_package_refuses_a_folder_without_the_metadata_keys(tmp_path: Path):
    """A broken metadata.txt fails the build with a message instead of shipping an uninstallable zip."""
    root = tmp_path / "plugin"
    for part in ("core", "ui", "resources/icons"):
        (root / part).mkdir(parents=True)
    (root / "__init__.py").write_text("def classFactory(iface):\n    return None\n")
    (root / "plugin.py").write_text("")
    (root / "LICENSE").write_text("GPL")
    (root / "resources/icons/icon.svg").write_text("<svg/>")
    (root / "metadata.txt").write_text("[general]\nname=x\nicon=resources/icons/icon.svg\n")
    out = tmp_path / "out.zip"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "package.py"), "--root", str(root),
                          "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "metadata.txt lacks qgisMinimumVersion" in run.stderr and "supportsQt6" in run.stderr
    assert not out.exists() and list(tmp_path.glob(".out.zip*")) == []


def test_installed_zip_loads_in_qgis_without_the_repository(built: Dict[str, object], tmp_path: Path):
    plugins = tmp_path / "plugins"
    with zipfile.ZipFile(built["zip"]) as zf:
        zf.extractall(plugins)
    code = f"""
import json, sys
plugins = {str(plugins)!r}
sys.path.insert(0, plugins)
from qgis.core import QgsApplication
app = QgsApplication([], False)
app.initQgis()
import importlib
pkg = importlib.import_module({NAME!r})
plugin = pkg.classFactory(None)
plugin.initProcessing()
registry = QgsApplication.processingRegistry()
provider = registry.providerById("s2sr")
algorithms = sorted(a.id() for a in provider.algorithms()) if provider else []
modules = [importlib.import_module(f"{NAME}.{{m}}") for m in ("ui.dock", "ui.train_dialog", "core.api")]
plugin.unload()
print(json.dumps({{"files": [pkg.__file__] + [m.__file__ for m in modules], "problems": plugin.problems,
                  "algorithms": algorithms, "after_unload": registry.providerById("s2sr") is not None}}))
app.exitQgis()
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["QT_QPA_PLATFORM"] = "offscreen"
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    for file in result["files"]:
        assert Path(file).is_relative_to(plugins / NAME), file  # loaded from the installed copy, not the repo
    assert result["problems"] == {}
    assert {"s2sr:superresolve", "s2sr:segment", "s2sr:evaluate", "s2sr:train"} <= set(result["algorithms"])
    assert result["after_unload"] is False
