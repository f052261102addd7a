# SPDX-License-Identifier: GPL-2.0-or-later
"""The real QGIS program under Xvfb with real (Mesa) OpenGL: super-resolve and segment through the dock.

Why this test exists: every other QGIS test runs with
``QT_QPA_PLATFORM=offscreen``, where Mesa's OpenGL driver (and with it Mesa's
``libLLVM``) is never loaded. In a desktop QGIS it is, and a standard CUDA
build of PyTorch then crashed QGIS (SIGSEGV) on *Segment*: importing
``segmentation_models_pytorch`` reaches ``import triton``, whose own LLVM
collides with Mesa's. ``ui/torch_guard.py`` keeps triton out of QGIS; this
test starts ``qgis`` itself in a virtual X server with a throwaway profile
that has only this plugin added, clicks through the Super-resolve and Segment
tabs (``qgis_driver.py`` runs inside QGIS), and checks that QGIS survives,
the layers arrive and triton stayed out. A screenshot is saved in the test's
temporary folder and its path printed.

To see the crash the guard prevents, run it with the guard switched off:
``S2SR_ALLOW_TRITON=1 make test`` (or this file alone); QGIS then dies on
*Segment* and the test fails, naming the signal.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).resolve().parent / "qgis_driver.py"
PLUGIN = "s2_taskdriven_sr"
QGIS = shutil.which("qgis")
XVFB_RUN = shutil.which("xvfb-run")
#: QGIS start-up plus two small jobs take about 30-40 s on a 2-core CPU; this is the hard stop.
PROCESS_TIMEOUT_S = 150
STAGE_TIMEOUT_S = 60

pytestmark = pytest.mark.skipif(
    not (QGIS and XVFB_RUN),
    reason="needs the QGIS program and xvfb-run (Debian: apt install qgis xvfb xauth libgl1-mesa-dri; "
           "'make test' installs them) to start a real QGIS with OpenGL on a virtual screen",
)


def write_scene(path: Path, size: int = 80) -> Path:
    """A small uint16 L2A-like GeoTIFF in UTM 33N, 10 m pixels, B02/B03/B04/B08: fields, roads, roofs.

    Four named bands, as an analyst's export of one date is, so the dock's
    "All 10 m bands" run (the shipped networks are 4-band) gets what it needs.
    """
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:size, 0:size]
    field = np.sin(xx / 9.0) * np.cos(yy / 13.0)
    road = ((xx % 27) < 2) | ((yy % 31) < 2)
    roof = np.zeros((size, size), bool)
    for y0, x0 in rng.integers(4, size - 8, (18, 2)):
        roof[y0:y0 + 3, x0:x0 + 4] = True
    # vegetation: dark in the visible bands, bright in NIR; roads grey; roofs bright and reddish
    base = {"B02": (450, 60), "B03": (750, 90), "B04": (600, 150), "B08": (3000, 500)}
    grey = {"B02": 1100, "B03": 1200, "B04": 1300, "B08": 1500}
    roofs = {"B02": 1500, "B03": 1600, "B04": 2200, "B08": 2600}
    bands = []
    for name, (mean, amp) in base.items():
        image = mean + amp * field + rng.normal(0, 30, (size, size))
        image[road] = grey[name]
        image[roof] = roofs[name]
        bands.append(np.clip(image, 1, 10000).astype("uint16"))
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=4, dtype="uint16",
                       crs="EPSG:32633", transform=from_origin(500000.0, 6000000.0, 10.0, 10.0)) as dst:
        dst.write(np.stack(bands))
        dst.descriptions = tuple(base)
    return path


def make_profile(root: Path) -> Path:
    """A throwaway QGIS profiles folder whose default profile has this repository as an enabled plugin."""
    profile = root / "profiles" / "default"
    plugins = profile / "python" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / PLUGIN).symlink_to(ROOT, target_is_directory=True)
    (profile / "QGIS").mkdir()
    (profile / "QGIS" / "QGIS3.ini").write_text(
        "[PythonPlugins]\n"
        f"{PLUGIN}=true\n"
        "grassprovider=false\nsagaprovider=false\ndb_manager=false\nMetaSearch=false\n"
        "[qgis]\ncheckVersion=false\nshowTips=false\n", encoding="utf-8")
    return root


def qgis_environment(result: Path, shot: Path, raster: Path) -> Dict[str, str]:
    """This interpreter's environment for QGIS, with real GL and this interpreter's packages.

    ``make test`` sets QT_QPA_PLATFORM=offscreen, which would hide the bug: it is
    set to xcb so Qt draws on the virtual X server with Mesa's OpenGL, even from
    a Wayland desktop session. QGIS's own Python does not
    see a virtual environment's site-packages (PyTorch lives there in
    development), so they go on PYTHONPATH.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env["QT_QPA_PLATFORM"] = "xcb"
    extra: List[str] = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    if env.get("PYTHONPATH"):
        extra.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(extra)
    env.update({
        "S2SR_GUI_RESULT": str(result),
        "S2SR_GUI_SHOT": str(shot),
        "S2SR_GUI_RASTER": str(raster),
        "S2SR_GUI_SR_MODEL": "hat_taskdriven",
        "S2SR_GUI_STAGE_TIMEOUT": str(STAGE_TIMEOUT_S),
        "PYTHONDONTWRITEBYTECODE": "1",  # no __pycache__ in the checkout from the symlinked plugin
    })
    return env


def run_qgis(command: List[str], env: Dict[str, str], log: Path, timeout: float) -> int:
    """Run ``command`` in its own process group; kill the whole group (Xvfb included) on timeout."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return -999
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # leftovers (Xvfb, a crash handler's gdb) or the hung QGIS
            except ProcessLookupError:
                pass
            proc.wait()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_exit(code: int, output: str = "") -> str:
    """The exit in words; QGIS's own crash handler turns a SIGSEGV into SIGABRT, so its line is quoted too."""
    if code == -999:
        return f"QGIS did not finish within {PROCESS_TIMEOUT_S} s and was killed"
    text = f"QGIS exited with code {code}"
    if code > 128:  # xvfb-run is a shell script: a child killed by signal N exits with 128 + N
        text += f" ({_signal_name(code - 128)})"
    died = re.search(r"QGIS died on signal (\d+)", output)
    if died:
        text += f"; QGIS's crash handler: died on {_signal_name(int(died.group(1)))}"
    return text


def test_real_qgis_super_resolves_and_segments_without_crashing(tmp_path: Path):
    raster = write_scene(tmp_path / "tiny_s2_4band.tif")
    profiles = make_profile(tmp_path / "qgis_profiles")
    result, shot, log = tmp_path / "result.json", tmp_path / "qgis_screenshot.png", tmp_path / "qgis.log"
    command = [XVFB_RUN, "-a", "-s", "-screen 0 1280x1024x24", QGIS, "--profiles-path", str(profiles),
               "--nologo", "--noversioncheck", "--code", str(DRIVER)]
    start = time.monotonic()
    code = run_qgis(command, qgis_environment(result, shot, raster), log, PROCESS_TIMEOUT_S)
    seconds = time.monotonic() - start
    output = log.read_text(encoding="utf-8", errors="replace")
    tail = "\n".join(output.splitlines()[-25:])
    assert result.is_file(), f"{describe_exit(code, output)} before the driver ran; QGIS output:\n{tail}"
    state = json.loads(result.read_text(encoding="utf-8"))
    where = f"at stage '{state['stage']}' after {seconds:.0f} s"
    assert state["ok"], (f"{describe_exit(code, output)}; the run stopped {where}.\n{state['error']}\n"
                         f"plugin log: {state['log'][-8:]}\nQGIS output:\n{tail}")
    assert code == 0, f"{describe_exit(code, output)} {where} (after the work succeeded); QGIS output:\n{tail}"

    print(f"\nGUI smoke test: {seconds:.0f} s; screenshot: {shot}")
    assert any("LLVM" in p or "swrast" in p for p in state["gl_libraries"]), (
        "QGIS did not load Mesa's OpenGL (libLLVM/swrast; Debian: libgl1-mesa-dri), so this run could not meet the crash it guards "
        f"against; loaded: {state['gl_libraries']}")
    assert state["triton_loaded"] is False, "triton was imported inside QGIS despite the guard"
    assert state["guard"] == "installed", f"the triton guard is {state['guard']} in QGIS"
    assert any(" SR x3 " in name for name in state["layers"]), state["layers"]
    assert {m.split(" mask")[0] for m in state["masks"]} == {"buildings", "roads"}, state["masks"]
    assert shot.is_file() and shot.stat().st_size > 20_000, f"screenshot missing or blank: {shot}"
