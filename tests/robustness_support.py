"""Small shared pieces of the robustness tests: a tiny real scene and running the CLI as a user does.

Why a module of its own: the ``test_robustness_*`` files each cover one reported
case, and most of them need the same two things: a scene folder written by the
project's own writer, and ``python -m core.cli`` run in a subprocess (the exit
status and stderr a user sees, not a Python exception).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence

import numpy as np
from affine import Affine

from core.data.scene import Scene, write_scene

ROOT = Path(__file__).resolve().parents[1]
HR_PX = 10.0 / 3.0


def tiny_scene(t: int = 3, h: int = 8, w: int = 10, seed: int = 0, name: str = "s1") -> Scene:
    """A 3-revisit scene of 8 x 10 LR px with HR and both masks, on a UTM 34N grid."""
    rng = np.random.default_rng(seed)
    lr = (rng.integers(100, 6000, size=(t, 1, h, w)) * 1e-4).astype(np.float32)
    hr = (rng.integers(100, 6000, size=(1, 3 * h, 3 * w)) * 1e-4).astype(np.float32)
    hr_t = Affine(HR_PX, 0, 423_450.0, 0, -HR_PX, 5_546_780.0)
    return Scene(
        name=name, lr=lr, lr_valid=np.ones((t, h, w), bool), hr=hr, hr_valid=np.ones((3 * h, 3 * w), bool),
        masks={"buildings": rng.random((3 * h, 3 * w)) > 0.8, "roads": rng.random((3 * h, 3 * w)) > 0.9},
        crs="EPSG:32634", lr_transform=Affine(10.0, 0, 423_450.0, 0, -10.0, 5_546_780.0), hr_transform=hr_t,
        bands=["B8"], dates=[f"2021-05-{d:02d}" for d in range(1, t + 1)],
    )


def write_tiny_dataset(root: Path) -> Path:
    """Two tiny scenes (s1 trains, s2 validates and tests) with their split.json: the smallest real dataset."""
    for i, name in enumerate(("s1", "s2")):
        write_scene(tiny_scene(seed=i, name=name), root / name)
    (root / "split.json").write_text(json.dumps({"train": ["s1"], "val": ["s2"], "test": ["s2"]}))
    return root


@contextlib.contextmanager
def mounted_tmpfs(parent: Path, prefix: str, options: str, needs: str, refused: str) -> Iterator[Path]:
    """A tmpfs mounted with ``options`` in a new folder under ``parent``, unmounted afterwards.

    A real small or read-only file system is the only honest way to make
    writes fail for root; the test is skipped (``needs``, ``refused: ...``)
    where mounting is not possible.
    """
    import pytest

    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip(needs)
    mnt = parent / f"{prefix}-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mnt)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"{refused}: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def run_cli(args: Sequence[str], timeout: float = 300, env: Optional[Dict[str, str]] = None,
            cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    """``python -m core.cli ARGS`` in a fresh interpreter, one torch thread, output captured as text."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "core.cli", *map(str, args)], cwd=cwd or ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def run_main(args: Sequence[str], capsys) -> subprocess.CompletedProcess:
    """``core.cli.main.main(ARGS)`` in this process (no interpreter start-up), shaped like :func:`run_cli`.

    For the cases whose point is not the process boundary; ``capsys`` is
    pytest's fixture, read before and after so that only this command's output counts.
    """
    from core.cli.main import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out, err)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """A failed command as a user should see it: non-zero exit, one ``error:`` line, no traceback.

    Returns that line; each of ``fragments`` must occur in it.
    """
    detail = f"exit {proc.returncode}\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-4000:]}"
    assert proc.returncode != 0, detail
    assert "Traceback" not in proc.stderr, detail
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, detail
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1] == errors[0], detail
    for fragment in fragments:
        assert fragment in errors[0], f"{fragment!r} not in {errors[0]!r}"
    return errors[0]
