"""Case 1: paths a dataset names stay inside the dataset; writes stay inside the chosen output.

Reported: a scene.json whose ``name`` was ``../victim`` (or absolute) made ``simulate``
replace and delete that folder, and ``lr_files`` / mask names were opened outside the
dataset (``evaluate`` read /etc/hostname). Every such name is refused with one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.data.scene import SceneError, read_scene, write_scene
from core.io.paths import inside, safe_name
from core.jobs import InputError, OutputError
from tests.robustness_support import assert_one_line_error, run_main, tiny_scene


def _dataset(root: Path, names=("s1", "s2")) -> Path:
    for i, name in enumerate(names):
        write_scene(tiny_scene(seed=i, name=name), root / name)
    (root / "split.json").write_text(json.dumps({"train": [names[0]], "val": [names[-1]], "test": []}))
    return root


def _edit_meta(scene_dir: Path, **changes) -> None:
    meta_path = scene_dir / "scene.json"
    meta = json.loads(meta_path.read_text())
    meta.update(changes)
    meta_path.write_text(json.dumps(meta))


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.txt").write_text("years of work")
    return victim


# ----------------------------------------------------------------------------- the helpers


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "/etc/hostname", "\\\\server\\share\\x", "C:\\x", "..", "", 3])
def test_inside_refuses_what_leaves_the_folder(tmp_path: Path, bad) -> None:
    with pytest.raises(InputError):
        inside(tmp_path, bad, what="lr_files[0]")


def test_inside_keeps_relative_paths_and_names_the_error_kind(tmp_path: Path) -> None:
    assert inside(tmp_path, "lr/t00.tif") == tmp_path / "lr" / "t00.tif"
    assert inside(tmp_path, "lr\\t00.tif") == tmp_path / "lr" / "t00.tif"  # written on Windows
    with pytest.raises(OutputError, match="scene folder"):
        inside(tmp_path, "../x", what="scene folder", error=OutputError)


@pytest.mark.parametrize("bad", ["../victim", "/abs", "a/b", ".", "..", ".hidden", "", None])
def test_safe_name_refuses_anything_but_one_plain_name(bad) -> None:
    with pytest.raises(InputError):
        safe_name(bad)
    assert safe_name("s01 Warsaw") == "s01 Warsaw"


# ----------------------------------------------------------------------------- read side


@pytest.mark.parametrize("name", ["../victim", "/tmp/victim"])
def test_scene_name_leaving_the_output_is_refused_and_nothing_is_deleted(tmp_path: Path, name: str,
                                                                         capsys) -> None:
    victim = _victim(tmp_path)
    src = _dataset(tmp_path / "src")
    _edit_meta(src / "s1", name=name if name.startswith("..") else str(victim))
    out = tmp_path / "nested" / "out"
    proc = run_main(["simulate", "--src", src, "--out", out, "--frames", "2"], capsys)
    assert_one_line_error(proc, "name")
    assert (victim / "thesis.txt").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nested", "src", "victim"]


@pytest.mark.parametrize("field,value", [("lr_files", ["/etc/hostname"]), ("lr_files", ["../../outside.tif"]),
                                         ("masks", ["../../outside"])])
def test_files_named_outside_the_scene_are_not_opened(tmp_path: Path, field: str, value, capsys) -> None:
    src = _dataset(tmp_path / "src")
    # real rasters where the names point, so that only the confinement can refuse them
    (src / "outside.tif").write_bytes((src / "s1" / "masks" / "buildings.tif").read_bytes())  # masks/../../
    (tmp_path / "outside.tif").write_bytes((src / "s1" / "lr" / "t00.tif").read_bytes())  # s1/../../
    _edit_meta(src / "s1", **{field: value})
    with pytest.raises(SceneError, match=field):
        read_scene(src / "s1")
    proc = run_main(["simulate", "--src", src, "--out", tmp_path / "out", "--frames", "2"], capsys)
    assert_one_line_error(proc, field)


# ----------------------------------------------------------------------------- write side


def test_write_scene_stays_inside_its_root(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(OutputError, match="leaves its folder"):
        write_scene(tiny_scene(), out / ".." / "victim", root=out)
    with pytest.raises(OutputError):
        write_scene(tiny_scene(), victim, root=out)
    assert (victim / "thesis.txt").read_text() == "years of work"
    written = write_scene(tiny_scene(), out / "s1", root=out)
    assert read_scene(written).name == "s1"


def test_a_folder_that_is_not_a_scene_is_never_replaced(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    with pytest.raises(OutputError, match="not a scene folder"):
        write_scene(tiny_scene(), victim)
    assert (victim / "thesis.txt").read_text() == "years of work"
    first = write_scene(tiny_scene(seed=1), tmp_path / "s1")
    second = write_scene(tiny_scene(seed=2), tmp_path / "s1")  # a scene is replaced as a whole
    assert first == second
    np.testing.assert_allclose(read_scene(second).lr, tiny_scene(seed=2).lr, atol=1e-7)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_simulate_refuses_an_output_that_holds_the_source(tmp_path: Path, capsys) -> None:
    src = _dataset(tmp_path / "data")
    before = (src / "s1" / "lr" / "t00.tif").read_bytes()
    proc = run_main(["simulate", "--src", src / "s1", "--out", src, "--frames", "2"], capsys)
    assert_one_line_error(proc, "contains the source")
    assert (src / "s1" / "lr" / "t00.tif").read_bytes() == before
