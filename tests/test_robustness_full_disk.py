"""Case 2: a disk that fills while an output is finished never replaces the previous good output.

Reported: a full disk while building overviews or closing left GDAL *logging* an error,
and the truncated temporary file was renamed over the previous output with exit 0.
Checked twice: on a real, tiny tmpfs (as root), and by making the overview and close
steps fail the way GDAL does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from core.io.rasters import Grid
from core.io.writer import GeoTiffSink, geotiff_profile, verify_geotiff
from core.jobs import OutputError
from tests.robustness_support import mounted_tmpfs

GRID_T = from_origin(500_000.0, 6_000_000.0, 10.0 / 3.0, 10.0 / 3.0)


def _grid(n: int) -> Grid:
    return Grid(CRS.from_epsg(32634), GRID_T, n, n)


def _write(path: Path, data: np.ndarray) -> Path:
    """A whole output through the sink: rows in strips of 256, overviews, close, rename."""
    n = data.shape[-1]
    sink = GeoTiffSink(path, geotiff_profile(_grid(n), data.dtype.name, 1, None))
    with sink:
        for r in range(0, n, 256):
            sink.write_rows(r, data[:, r:r + 256])
        return sink.commit()


def _noise(n: int, seed: int = 0) -> np.ndarray:
    """Incompressible float32 pixels: the file's size is known in advance (4 bytes a pixel)."""
    return np.random.default_rng(seed).random((1, n, n), dtype=np.float32)


def _leftovers(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _assert_previous_kept(out: Path, good: np.ndarray) -> None:
    """``out`` is still the old, whole file, and no temporary file is left beside it."""
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(), good)
    assert _leftovers(out.parent) == []


@pytest.fixture()
def tiny_disk(tmp_path: Path):
    """A 3 MiB tmpfs mounted under tmp_path, unmounted afterwards."""
    with mounted_tmpfs(tmp_path, "disk", "size=3m", "needs root and mount(8) to make a small real file system (tmpfs)",
                       "mounting a tmpfs is not permitted here") as mnt:
        yield mnt


# 850 px: the pixels fit, the directory and overviews written at close do not (GDAL only logs that);
# 1024 px: the disk fills while the overviews are built (GDAL raises).
@pytest.mark.parametrize("n", [850, 1024])
def test_real_full_disk_keeps_the_previous_output(tiny_disk: Path, n: int) -> None:
    out = tiny_disk / "sr.tif"
    good = _noise(64, seed=1)
    _write(out, good)
    with pytest.raises(OutputError, match="disk is full") as info:
        _write(out, _noise(n))
    assert "previous file was kept" in str(info.value)
    _assert_previous_kept(out, good)


def test_real_full_disk_without_a_previous_output_leaves_nothing(tiny_disk: Path) -> None:
    with pytest.raises(OutputError, match="nothing was written"):
        _write(tiny_disk / "sr.tif", _noise(850))
    assert list(tiny_disk.iterdir()) == []


# --------------------------------------------------------------------------- injected, as GDAL fails


def test_close_that_silently_truncates_is_caught(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "sr.tif"
    good = _noise(300, seed=1)
    _write(out, good)
    original = GeoTiffSink.close_dataset

    def close_on_a_full_disk(self) -> None:  # GDAL < 3.7: the flush fails, close() returns normally
        original(self)
        size = self.tmp.stat().st_size
        with open(self.tmp, "r+b") as fh:
            fh.truncate(size // 2)

    monkeypatch.setattr(GeoTiffSink, "close_dataset", close_on_a_full_disk)
    with pytest.raises(OutputError, match="previous file was kept"):
        _write(out, _noise(300))
    _assert_previous_kept(out, good)


def test_overviews_failing_inside_gdal_is_an_output_error(tmp_path: Path, monkeypatch) -> None:
    from rasterio._err import CPLE_AppDefinedError

    out = tmp_path / "sr.tif"
    good = _noise(300, seed=1)
    _write(out, good)

    def overviews_on_a_full_disk(self, factors) -> None:
        raise CPLE_AppDefinedError(1, 1, "_tiffWriteProc:No space left on device")

    monkeypatch.setattr(GeoTiffSink, "build_overviews", overviews_on_a_full_disk)
    with pytest.raises(OutputError, match="disk is full"):
        _write(out, _noise(300))
    _assert_previous_kept(out, good)


def test_verify_accepts_a_whole_file_and_refuses_a_cut_one(tmp_path: Path) -> None:
    out = _write(tmp_path / "sr.tif", _noise(300))
    assert verify_geotiff(out, 300, 300, 1, 1) is None
    assert "overview" in verify_geotiff(out, 300, 300, 1, 2)
    data = out.read_bytes()
    for keep in (len(data) - 100, len(data) // 2):
        cut = tmp_path / f"cut{keep}.tif"
        cut.write_bytes(data[:keep])
        assert verify_geotiff(cut, 300, 300, 1, 1) is not None
