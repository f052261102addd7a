"""Case 5: no stale GDAL side-car after an output is replaced, no orphan partial file after a kill.

Reported: replacing an output kept its old ``.aux.xml`` (a new Byte output then claimed
STATISTICS_MAXIMUM=6880), and SIGTERM left a ``.partial-*`` file that no later run removed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from core.io.atomic import remove_orphans, temp_path_for, write_json_atomic
from core.io.rasters import Grid
from core.io.writer import GeoTiffSink, geotiff_profile
from tests.robustness_support import ROOT

GRID = Grid(CRS.from_epsg(32634), from_origin(500_000.0, 6_000_000.0, 10.0, 10.0), 300, 200)


def _write(path: Path, data: np.ndarray) -> Path:
    with GeoTiffSink(path, geotiff_profile(GRID, data.dtype.name, 1, None)) as sink:
        sink.write_rows(0, data)
        return sink.commit()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def band_statistics(ds, band: int):
    """GDAL's statistics of ``band`` (kept in ``<file>.aux.xml``), asked without rasterio's deprecation warning.

    rasterio 1.4 deprecates ``statistics(bidx)`` for ``stats(indexes=...)``,
    which 1.3 (Debian 12) does not have.
    """
    stats = getattr(ds, "stats", None)
    return stats(indexes=[band])[0] if stats is not None else ds.statistics(band)


def test_replacing_an_output_drops_the_old_statistics(tmp_path: Path) -> None:
    out = tmp_path / "sr.tif"
    _write(out, np.full((1, 200, 300), 6880, np.uint16))
    with rasterio.open(out) as ds:  # GDAL computes statistics and keeps them in sr.tif.aux.xml
        band_statistics(ds, 1)
    aux = Path(f"{out}.aux.xml")
    assert aux.is_file() and "6880" in aux.read_text()

    _write(out, np.ones((1, 200, 300), np.uint8))
    assert not aux.exists()
    with rasterio.open(out) as ds:
        assert ds.dtypes[0] == "uint8"
        assert "STATISTICS_MAXIMUM" not in ds.tags(1)
        assert float(band_statistics(ds, 1).max) == 1.0


def test_replacing_a_json_file_drops_its_side_car_too(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    write_json_atomic(target, {"cpsnr": 30.0})
    Path(f"{target}.aux.xml").write_text("<PAMDataset/>")
    write_json_atomic(target, {"cpsnr": 31.0})
    assert json.loads(target.read_text()) == {"cpsnr": 31.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_orphans_of_dead_writers_go_and_files_of_live_ones_stay(tmp_path: Path) -> None:
    out = tmp_path / "sr.tif"
    dead = tmp_path / f".sr.tif.partial-{_dead_pid()}-0badc0de"
    old_style = tmp_path / ".sr.tif.partial-0badc0de"  # no process id: an orphan by definition
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = tmp_path / f".sr.tif.partial-{live.pid}-c0ffee00"
        for p in (dead, old_style, alive):
            p.write_bytes(b"II*\x00 half a GeoTIFF")
        _write(out, np.ones((1, 200, 300), np.uint8))
        assert not dead.exists() and not old_style.exists()
        assert alive.exists()  # another run is still writing it
    finally:
        live.kill()
        live.wait()
    assert remove_orphans(out) == 1 and not alive.exists()


WRITER = """
import sys, time
import numpy as np
from rasterio.crs import CRS
from rasterio.transform import from_origin
from core.io.rasters import Grid
from core.io.writer import GeoTiffSink, geotiff_profile
grid = Grid(CRS.from_epsg(32634), from_origin(500000.0, 6000000.0, 10.0, 10.0), 600, 1200)
sink = GeoTiffSink(sys.argv[1], geotiff_profile(grid, "uint16", 1, None))
sink.write_rows(0, np.ones((1, 600, 600), np.uint16))
print("writing", flush=True)
time.sleep(60)
"""


def test_a_partial_file_left_by_sigterm_is_removed_by_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "sr.tif"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout.readline().strip() == "writing"
        partial = [p for p in tmp_path.iterdir() if p.name.startswith(".sr.tif.partial-")]
        assert len(partial) == 1 and str(proc.pid) in partial[0].name
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert partial[0].exists()  # what a killed process leaves behind
    time.sleep(0.05)
    _write(out, np.ones((1, 200, 300), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sr.tif"]


def test_temporary_names_carry_the_writer_and_stay_hidden(tmp_path: Path) -> None:
    tmp = temp_path_for(tmp_path / "sr.tif", ".tif")
    assert tmp.parent == tmp_path and tmp.name.startswith(f".sr.tif.partial-{os.getpid()}-")
    assert tmp.suffix == ".tif"


@pytest.mark.parametrize("module", ["core.evaluation.report", "core.area.report", "core.area.tiles",
                                    "core.training.trainer", "core.data.synthetic.area", "core.data.scene",
                                    "core.data.vectors"])
def test_no_hand_written_temporary_files_are_left_in(module: str) -> None:
    """The sites that wrote ``tmp`` + ``os.replace`` by hand now go through core.io.atomic (scenes and areas,
    replaced as whole folders, use its PID-marked names)."""
    source = (ROOT / (module.replace(".", "/") + ".py")).read_text()
    assert "uuid" not in source and "mkstemp" not in source and ".tmp" not in source
