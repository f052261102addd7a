"""Case 6: every failure of ``python -m core.cli`` is one ``error:`` line and a non-zero exit.

Reported with a traceback each: a truncated GeoTIFF, a model card whose ``arch`` is a
list, ``frames=10**12``, ``scale="three"``, a read-only output folder during training,
scene.json with ``dates: 5`` or ``scale: 0``, ``--set data.lr_patch=1``, ``--tile 100000``.
Each is run here as a user runs it, in a fresh interpreter; ``-v`` still shows the traceback.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from tests.robustness_support import (
    ROOT,
    assert_one_line_error,
    mounted_tmpfs,
    run_cli,
    run_main,
    write_tiny_dataset,
)

HAT = ROOT / "resources" / "models" / "hat_baseline.safetensors"
TINY = ROOT / "resources" / "configs" / "tiny_rams_baseline.yaml"


@pytest.fixture(scope="module")
def lr_raster(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lr") / "lr.tif"
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", driver="GTiff", width=128, height=128, count=1, dtype="uint16",
                       crs="EPSG:32634", transform=from_origin(500_000, 6_000_000, 10, 10), tiled=True,
                       blockxsize=64, blockysize=64, compress="deflate") as ds:
        ds.write(rng.integers(500, 4000, (1, 128, 128)).astype(np.uint16))
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("data"))


def test_truncated_geotiff(lr_raster: Path, tmp_path: Path) -> None:
    data = lr_raster.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: len(data) // 2])
    proc = run_cli(["predict", "--checkpoint", HAT, "--inputs", cut, "--out", tmp_path / "sr.tif"])
    # named by the reader itself: rasterio >= 1.4 says only "Read failed. See previous exception for details."
    line = assert_one_line_error(proc, str(cut), "band 1 cannot be read", "damaged or incomplete")
    assert "previous exception" not in line
    assert not (tmp_path / "sr.tif").exists()


def test_gdal_reason_is_found_behind_a_generic_message(lr_raster: Path, tmp_path: Path) -> None:
    """``error_text`` reads GDAL's reason from the causes rasterio chains (all of them on rasterio >= 1.4)."""
    from core.jobs import error_text

    cut = tmp_path / "cut.tif"
    cut.write_bytes(lr_raster.read_bytes()[:-4000])
    with rasterio.open(cut) as ds, pytest.raises(Exception) as caught:
        ds.read(1)
    text = error_text(caught.value)
    assert "cut.tif" in text and "IReadBlock failed" in text, text
    assert "previous exception" not in text

    try:
        try:
            raise ValueError("TIFFFillTile: got 6812 bytes, expected 7039")
        except ValueError as gdal:
            raise OSError("Read failed. See previous exception for details.") from gdal
    except OSError as generic:
        assert error_text(generic) == "TIFFFillTile: got 6812 bytes, expected 7039"


def test_model_card_with_a_list_as_arch(lr_raster: Path, tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(HAT), framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    card = json.loads(meta["card"])
    card["arch"] = ["hat", "rams"]
    meta["card"] = json.dumps(card)
    bad = tmp_path / "bad_card.safetensors"
    save_file(tensors, str(bad), metadata=meta)
    proc = run_cli(["predict", "--checkpoint", bad, "--inputs", lr_raster, "--out", tmp_path / "sr.tif"])
    assert_one_line_error(proc, "bad_card.safetensors")


def test_frames_of_ten_to_the_twelve(dataset: Path, tmp_path: Path) -> None:
    proc = run_cli(["simulate", "--src", dataset, "--out", tmp_path / "sim", "--frames", str(10**12)])
    assert_one_line_error(proc, "frames", "1000000000000")
    proc = run_cli(["synth", "--out", tmp_path / "synth", "--scenes", "1", "--size", "48", "--frames", str(10**12)])
    assert_one_line_error(proc, "frames", "1000000000000")
    assert not (tmp_path / "synth").exists()
    proc = run_cli(["train", TINY, "--set", f"data.frames={10**12}", "--set", f"data.root={dataset}",
                    "--out", tmp_path / "run"])
    assert_one_line_error(proc, "data.frames")


def test_scale_three_as_text(dataset: Path, tmp_path: Path) -> None:
    proc = run_cli(["train", TINY, "--set", "model.scale=three", "--out", tmp_path / "run"])
    assert_one_line_error(proc, "model.scale", "three")


@pytest.mark.parametrize("key,value", [("dates", 5), ("scale", 0)])
def test_bad_scene_json(dataset: Path, tmp_path: Path, key: str, value) -> None:
    src = tmp_path / "src"
    shutil.copytree(dataset, src)
    meta = json.loads((src / "s1" / "scene.json").read_text())
    meta[key] = value
    (src / "s1" / "scene.json").write_text(json.dumps(meta))
    proc = run_cli(["simulate", "--src", src, "--out", tmp_path / "sim", "--frames", "2"])
    assert_one_line_error(proc, key, "scene.json")


def test_lr_patch_of_one(dataset: Path, tmp_path: Path) -> None:
    proc = run_cli(["train", TINY, "--set", "data.lr_patch=1", "--set", f"data.root={dataset}",
                    "--out", tmp_path / "run"])
    assert_one_line_error(proc, "data.lr_patch")
    assert not (tmp_path / "run").exists()


def test_tile_of_a_hundred_thousand(lr_raster: Path, tmp_path: Path) -> None:
    proc = run_cli(["predict", "--checkpoint", HAT, "--inputs", lr_raster, "--out", tmp_path / "sr.tif",
                    "--tile", "100000"])
    assert_one_line_error(proc, "tile", "100000")


def test_read_only_output_folder_for_training(dataset: Path, tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path, "ro", "ro,size=1m",
                       "needs root and mount(8) for a read-only file system (permission bits do not stop root)",
                       "mounting a read-only tmpfs is not permitted here") as ro:
        proc = run_cli(["train", TINY, "--set", f"data.root={dataset}", "--set", "epochs=1",
                        "--set", "data.samples_per_epoch=4", "--set", "data.batch_size=2", "--out", ro / "run"])
    assert_one_line_error(proc, "out_dir", "Read-only")


def test_verbose_keeps_the_traceback(tmp_path: Path) -> None:
    proc = run_cli(["-v", "train", TINY, "--set", "data.lr_patch=1", "--out", tmp_path / "run"])
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "data.lr_patch" in proc.stderr


def test_an_unforeseen_error_is_one_line_too(tmp_path: Path, capsys, monkeypatch) -> None:
    """A bug (here a TypeError injected into the split command) is one line with a hint, exit 70."""
    import core.data.scene as scene

    def broken(*args, **kwargs):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    monkeypatch.setattr(scene, "make_split", broken)
    proc = run_main(["split", "--root", tmp_path], capsys)
    line = assert_one_line_error(proc, "unexpected TypeError", "-v")
    assert proc.returncode == 70, line
