"""Case 7 (scenes): scene.json values of the wrong type or range are refused before anything is built.

Reported: ``radiometric_scale: 0`` read as-is made every pixel 0 and evaluation printed
cPSNR 43.5 dB; ``dates: 5`` and ``scale: 0`` ended in tracebacks.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from core.data.scene import SceneError, read_scene, write_scene
from tests.robustness_support import assert_one_line_error, run_main, tiny_scene

BAD_VALUES = [
    ("radiometric_scale", 0),
    ("radiometric_scale", -1e-4),
    ("radiometric_scale", "1e-4"),
    ("radiometric_scale", math.inf),
    ("radiometric_scale", True),
    ("scale", 0),
    ("scale", "three"),
    ("scale", 2.5),
    ("dates", 5),
    ("dates", [20210501, 20210502, 20210503]),
    ("dates", ["2021-05-01"]),  # three revisits
    ("bands", "B8"),
    ("bands", [8]),
    ("lr_files", "lr/t00.tif"),
    ("masks", "buildings"),
    ("has_hr", "yes"),
    ("split", "training"),
    ("extra", [1, 2]),
    ("name", 7),
]


@pytest.fixture()
def scene_dir(tmp_path: Path) -> Path:
    return write_scene(tiny_scene(), tmp_path / "data" / "s1")


def _set(scene_dir: Path, key: str, value) -> None:
    meta_path = scene_dir / "scene.json"
    meta = json.loads(meta_path.read_text())
    meta[key] = value
    meta_path.write_text(json.dumps(meta))


@pytest.mark.parametrize("key,value", BAD_VALUES, ids=[f"{k}={v!r}" for k, v in BAD_VALUES])
def test_bad_scene_json_value_is_refused_naming_the_key(scene_dir: Path, key: str, value) -> None:
    _set(scene_dir, key, value)
    with pytest.raises(SceneError, match=key) as info:
        read_scene(scene_dir)
    assert "scene.json" in str(info.value)


def test_the_written_values_are_accepted(scene_dir: Path) -> None:
    scene = read_scene(scene_dir)
    assert scene.scale == 3 and scene.radiometric_scale == pytest.approx(1e-4) and len(scene.dates) == 3


@pytest.mark.parametrize("key,value", [("radiometric_scale", 0), ("dates", 5), ("scale", 0)])
def test_cli_reports_a_bad_scene_json_in_one_line(scene_dir: Path, key: str, value, tmp_path: Path,
                                                  capsys) -> None:
    _set(scene_dir, key, value)
    proc = run_main(["simulate", "--src", scene_dir.parent, "--out", tmp_path / "out", "--frames", "2"], capsys)
    assert_one_line_error(proc, key, "scene.json")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
