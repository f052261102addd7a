# SPDX-License-Identifier: GPL-2.0-or-later
"""The analyst's journeys of issue 21 in a real QGIS window (Xvfb, Mesa's OpenGL).

The plugin's tests used to run offscreen and call functions; the analyst
clicks through a real window, where Compare threw the map to 1:284,925,949,
the training dialog could not be closed, training failed with the installer's
package folder and QGIS froze while the curves were drawn. This test starts
``qgis`` under ``xvfb-run`` with a throwaway profile whose package folder
(``<profile>/python/dependencies/s2_taskdriven_sr/py3XY``, where the plugin's
installer puts packages) links to this environment's site-packages, once
with PYTHONPATH as well (``pythonpath``) and once with that folder alone
(``installer``). ``journey_driver.py`` (inside QGIS) compares two shipped
checkpoints without and with trust maps, then makes synthetic data, starts,
cancels, resumes and closes a tiny training run from the training dialog,
with a stall monitor on QGIS's event loop throughout; it asserts the map's
scale and the synced view's size after each comparison, that the dock and
the dialog close, that no stall while training exceeds 0.3 s and none over the whole journey 1.6 s (printed,
with the UI thread's stack sampled during every pause over 0.1 s).

Both layouts must pass. The ``installer`` one used to fail where Debian's
python3-sympy is older than 1.13 (the appended folder lost to it and PyTorch
did not import): the folder now serves the packages it holds because the
system's are too old (``ui/install/deps.py``, ``FolderFirstFinder``). A journey
takes about half a minute on a 2-core CPU, so it runs in ``make test`` (and CI).
Set ``S2SR_GUI_KEEP_SHOTS=1`` to copy its screenshots into ``docs/img/``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from tests.gui.test_qgis_gui import PLUGIN, QGIS, XVFB_RUN, describe_exit, make_profile, run_qgis, write_scene

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).resolve().parent / "journey_driver.py"
PROCESS_TIMEOUT_S = 1200
STAGE_TIMEOUT_S = 420
#: Issue 21: the longest pause of QGIS's event loop allowed while training is followed.
MAX_TRAINING_STALL_S = 0.3
#: The longest pause over the whole journey: opening the dock froze QGIS for 1.9-2.3 s while the first card read
#: imported PyTorch on the UI thread; with the import in a worker it is 0.5-1.2 s with a CUDA wheel (Python holds
#: its lock while it opens the libraries; ui/torch_preload.py explains why that is left alone there) on a 2-core
#: CPU. A guard against the import coming back onto the UI thread, not a goal.
MAX_JOURNEY_STALL_S = 1.6

pytestmark = [
    pytest.mark.skipif(not (QGIS and XVFB_RUN), reason="needs the QGIS program and xvfb-run (make test installs them)"),
]


def installer_layout(profiles: Path) -> Path:
    """``<profile>/python/dependencies/s2_taskdriven_sr/py3XY`` -> this environment's site-packages (PyTorch...)."""
    site = next((Path(p) for p in sys.path if p.endswith("site-packages") and (Path(p) / "torch").is_dir()), None)
    if site is None:
        pytest.skip("PyTorch is not in a site-packages folder of this environment")
    folder = (profiles / "profiles" / "default" / "python" / "dependencies" / PLUGIN
              / f"py{sys.version_info[0]}{sys.version_info[1]}")
    folder.parent.mkdir(parents=True)
    folder.symlink_to(site, target_is_directory=True)
    return folder


def journey_environment(tmp_path: Path, raster: Path, layout: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    if layout == "pythonpath":  # as a developer runs QGIS: this environment's packages first
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    env.update({
        "QT_QPA_PLATFORM": "xcb",
        "S2SR_GUI_RESULT": str(tmp_path / "result.json"),
        "S2SR_GUI_SHOTS": str(tmp_path / "shots"),
        "S2SR_GUI_WORK": str(tmp_path / "work"),
        "S2SR_GUI_RASTER": str(raster),
        "S2SR_GUI_HERE": str(DRIVER.parent),
        "S2SR_GUI_STAGE_TIMEOUT": str(STAGE_TIMEOUT_S),
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
    })
    venv_bin = str(Path(sys.executable).parent)  # the trainer must be QGIS's Python, not this venv's first on PATH
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return env


@pytest.mark.parametrize("layout", ["pythonpath", "installer"])
def test_analyst_journeys_in_a_real_qgis_window(tmp_path: Path, layout: str):
    raster = write_scene(tmp_path / "tiny_s2_4band.tif", size=60)
    profiles = make_profile(tmp_path / "qgis_profiles")
    deps = installer_layout(profiles)
    (tmp_path / "work").mkdir()
    log = tmp_path / "qgis.log"
    command = [XVFB_RUN, "-a", "-s", "-screen 0 1280x1024x24", QGIS, "--profiles-path", str(profiles),
               "--nologo", "--noversioncheck", "--code", str(DRIVER)]
    start = time.monotonic()
    code = run_qgis(command, journey_environment(tmp_path, raster, layout), log, PROCESS_TIMEOUT_S)
    seconds = time.monotonic() - start
    output = log.read_text(encoding="utf-8", errors="replace")
    tail = "\n".join(output.splitlines()[-30:])
    result = tmp_path / "result.json"
    assert result.is_file(), f"{describe_exit(code, output)} before the driver ran; QGIS output:\n{tail}"
    state = json.loads(result.read_text(encoding="utf-8"))
    print(f"\nGUI journeys: {seconds:.0f} s; stages: "
          + ", ".join(f"{k} {v - min(state['stages'].values()):.0f} s" for k, v in state["stages"].items()))
    print(f"whole journey: {state['stall'].get('report')}")
    for at, stack in state["stall"].get("stacks", []):
        print(f"UI thread {at:.1f} s into the journey, during a stall:\n{stack}")
    if state.get("train", {}).get("stall_training"):
        print(f"while training: {state['train']['stall_training']['report']}")
    for key, run in state.get("compare", {}).items():
        view = run.get("view") or {}
        print(f"compare ({key}): {run['seconds']:.1f} s; map 1:{run['before']['scale']:,.0f} -> "
              f"1:{run['after']['scale']:,.0f}; synced view {view.get('width')} x {view.get('height')} px at "
              f"1:{view.get('scale', 0):,.0f}; summary: {run['summary']}")
    print(f"screenshots: {tmp_path / 'shots'}")
    assert state["ok"], (f"{describe_exit(code, output)}; stopped at stage '{state['stage']}'.\n{state['error']}\n"
                         f"plugin log: {state['log'][-8:]}\nQGIS output:\n{tail}")
    assert code == 0, f"{describe_exit(code, output)} after the work succeeded; QGIS output:\n{tail}"

    # the installer's folder is on QGIS's path (and, in that layout, nothing else brings the packages)
    assert state["sys_path_has_deps"] is True, state["deps_dir"]
    assert (state["pythonpath"] == "") == (layout == "installer"), state["pythonpath"]
    assert state["torch_at_start"] is False, "PyTorch was imported while QGIS started"

    for key in ("plain", "trust"):
        run = state["compare"][key]
        before, after, view = run["before"]["scale"], run["after"]["scale"], run["view"]
        assert 0.5 * before <= after <= 2.0 * before, f"compare ({key}) threw the map from 1:{before:,.0f} to 1:{after:,.0f}"
        assert view and view["width"] >= 300 and view["height"] >= 200, f"the synced view is a strip: {view}"
        assert 0.5 * after <= view["scale"] <= 2.0 * after, f"the synced view is at 1:{view['scale']:,.0f}, the map 1:{after:,.0f}"
        assert run["summary"] and run["summary"][-1] == ")", run["summary"]  # filled, with the time taken
    assert state["compare"]["plain"]["trust_paths"] == [] and state["compare"]["plain"]["trust_cell"] == "n/a"
    assert state["compare"]["trust"]["trust_paths"] == ["Baseline", "Task-driven"]
    assert state["compare"]["trust"]["trust_cell"] not in ("", "n/a")
    assert "trust maps not computed" in state["compare"]["plain"]["summary"]
    assert state["compare"]["trust"]["summary"].startswith("Task-driven vs baseline: likely invented")

    train = state["train"]
    assert str(deps) in train["synth_arguments"], train["synth_arguments"]  # the child sees the installer's folder
    assert train["started"] and train["kept"] and "cancelled" in train["cancel_status"]
    assert train["checkpoint"], train["log_tail"]
    assert train["history_epochs"] == [1, 2, 3], train["history_epochs"]  # cancelled, resumed, finished
    assert not train["epochs_after_resume"] or train["epochs_after_resume"][-1] == 3, train["epochs_after_resume"]
    assert "cl1" in train["curves"] and train["curves_mode"] == "process"
    assert train["closed"] and train["dialogs_visible"] == [], train["dialogs_visible"]
    assert state["dock_closed"]
    assert train["stall_training"]["longest"] <= MAX_TRAINING_STALL_S, train["stall_training"]["report"]
    assert state["stall"]["longest"] <= MAX_JOURNEY_STALL_S, state["stall"]["report"]
    for shot in ("journey_compare.png", "journey_training.png", "journey_training_done.png"):
        path = tmp_path / "shots" / shot
        assert path.is_file() and path.stat().st_size > 10_000, path
    if os.environ.get("S2SR_GUI_KEEP_SHOTS"):
        for shot in (tmp_path / "shots").glob("*.png"):
            shutil.copy(shot, ROOT / "docs" / "img" / shot.name)
