"""Signals and the CLI's last line (issue 23, cases 11 and 12): SIGTERM unwinds like Ctrl-C; errors start a line.

Real commands in a fresh interpreter (``python -m core.cli``) on real rasters
and products; the signal is a real SIGTERM sent while the output is being written.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.robustness_support import ROOT, assert_one_line_error, mounted_tmpfs, run_cli, run_main
from tests.s2_fixtures import make_safe, textured_scene, write_geotiff

#: Side of the test rasters: large enough that writing the stack takes a few seconds on a loaded 2-core machine.
SIDE = 1024
#: Stacking is quicker than a network's pass: with GDAL's block cache working (core.io.rasters.gdal_env) a
#: 1024 px stack was written in under the 0.2 s the test waits, so the stack test gets a larger area.
STACK_SIDE = 3072


def dated_rasters(folder: Path, side: int = SIDE) -> list:
    """Three dated single-band GeoTIFFs of B08 (L2A DN) of one area."""
    folder.mkdir(parents=True, exist_ok=True)
    dn = (textured_scene(side, seed=3) * 10000).astype(np.uint16)
    paths = []
    for day in ("20230512", "20230601", "20230703"):
        paths.append(write_geotiff(folder / f"T34UDA_{day}_B08.tif", dn, tags={"S2_LEVEL": "L2A"}))
    return paths


def terminate_while_writing(args: list, out_dir: Path) -> subprocess.CompletedProcess:
    """Run ``python -m core.cli ARGS``, send SIGTERM once its hidden ``.partial-*`` output is being written."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if any(".partial-" in p.name for p in out_dir.iterdir()):
                time.sleep(0.2)  # well into writing rows
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the command ended before its output was being written: make the input larger"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def assert_terminated_cleanly(proc: subprocess.CompletedProcess, out_dir: Path) -> None:
    assert proc.returncode == 143, proc.stderr
    lines = [line for line in proc.stderr.split("\n") if line.strip()]
    assert lines[-1].startswith("terminated (SIGTERM)"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(out_dir.iterdir()) == []  # neither the output nor its hidden .partial-* file


def test_sigterm_while_stacking_cleans_up_and_says_so(tmp_path):
    inputs = dated_rasters(tmp_path / "in", STACK_SIDE)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = terminate_while_writing(["stack", *inputs, "--bands", "B08", "--out", out_dir / "stack.tif"], out_dir)
    assert_terminated_cleanly(proc, out_dir)


def test_sigterm_during_predict_cleans_up_and_says_so(tmp_path):
    inputs = revisits(tmp_path / "in")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = terminate_while_writing(["predict", "--checkpoint", ROOT / "resources/models/rams_taskdriven.safetensors",
                                    "--inputs", *inputs, "--all-bands", "--out", out_dir / "sr.tif"], out_dir)
    assert_terminated_cleanly(proc, out_dir)


def test_error_after_the_progress_bar_starts_a_line_of_its_own(tmp_path):
    good = make_safe(tmp_path / "dl", date="2023-05-12", size=60)
    bad = make_safe(tmp_path / "dl", date="2023-06-01", size=60)
    mtd = bad / "MTD_MSIL2A.xml"
    mtd.write_text(re.sub(r"(<BOA_QUANTIFICATION_VALUE[^>]*>)[^<]*", r"\g<1>ten thousand", mtd.read_text()))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "core.cli", "stack", str(good), str(bad), "--out",
                           str(tmp_path / "stack.tif")], cwd=ROOT, env=env, capture_output=True, timeout=120)
    err = proc.stderr.decode()  # bytes as written: text mode would turn the bar's carriage returns into newlines
    assert proc.returncode == 1, err
    assert "stacking" in err  # the bar drew before the error
    errors = [line for line in err.split("\n") if line.startswith("error:")]  # "\n" only, as a log splits
    assert len(errors) == 1 and "'ten thousand'" in errors[0], repr(err)


def revisits(folder: Path, side: int = 192) -> list:
    """Three real 4-band revisits (B02, B03, B04, B08 in DN) of one area, as the shipped RAMS takes them."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, day in enumerate(("20230512", "20230601", "20230703")):
        dn = np.stack([(textured_scene(side, seed=i + k) * 10000).astype(np.uint16) for k in range(4)])
        paths.append(write_geotiff(folder / f"T34UDA_{day}.tif", dn, descriptions=["B02", "B03", "B04", "B08"]))
    return paths


def test_small_disk_refusal_reads_in_units_that_show_the_sizes(tmp_path):
    inputs = revisits(tmp_path / "in")
    with mounted_tmpfs(tmp_path, "disk", "size=1m", "needs root and mount(8) to make a small real file system",
                       "mount refused") as disk:
        proc = run_cli(["predict", "--checkpoint", ROOT / "resources/models/rams_taskdriven.safetensors",
                        "--inputs", *inputs, "--all-bands", "--out", disk / "sr.tif"], timeout=240)
        line = assert_one_line_error(proc, "sr.tif: the output could take up to")
        assert list(disk.iterdir()) == []
    assert "0.0 GB" not in line
    assert re.search(r"up to \d+\.\d MB but only \d+\.\d (KB|MB) are free", line), line


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_wald_out_that_cannot_be_a_folder_is_one_clear_line(tmp_path, capsys, where):
    inputs = revisits(tmp_path / "in", side=384)  # room for training and held-out tiles
    blocker = tmp_path / "taken.txt"
    blocker.write_text("not a folder")
    out = blocker if where == "a file" else blocker / "myarea"
    proc = run_main(["area", "wald", "--revisits", *inputs, "--checkpoint",
                     ROOT / "resources/models/rams_taskdriven.safetensors", "--out", out, "--progress", "none"],
                    capsys)
    line = assert_one_line_error(proc, str(out), "is a file, not a folder")
    assert "Errno" not in line
    assert blocker.read_text() == "not a folder"


def truncate_half(path: Path) -> Path:
    """Cut a file to half its bytes, as an interrupted copy leaves it (GDAL still opens it)."""
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)
    return path


@pytest.mark.parametrize("command", ["predict", "stack"])
def test_truncated_second_revisit_fails_in_one_line_naming_it(tmp_path, command):
    inputs = revisits(tmp_path / "in")
    damaged = truncate_half(inputs[1])
    out = tmp_path / "out.tif"
    if command == "predict":
        args = ["predict", "--checkpoint", ROOT / "resources/models/rams_taskdriven.safetensors", "--inputs",
                *inputs, "--all-bands", "--out", out]
    else:
        args = ["stack", *inputs, "--out", out]
    proc = run_cli(args, timeout=240)
    line = assert_one_line_error(proc, str(damaged), "damaged or incomplete")
    assert "ERROR 1" not in proc.stderr, proc.stderr
    assert line and not out.exists()
