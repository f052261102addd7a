"""Case 8: ``rasterize`` refuses empty masks, has one rule for ``--out``, burns only vehicle roads.

Reported: vectors missing the grid (or a layer without usable geometry) gave exit 0 and an
empty mask; ``--out x.tif`` with both kinds made a folder named ``x.tif``; footways, paths
and steps were burnt as roads (17.6 % of a city centre); GDAL flooded the terminal with
one line per broken geometry.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from core.data.scene import SceneError, write_geotiff
from core.data.vectors import NON_VEHICLE_CLASSES, rasterize_to_grid, rasterize_vectors
from tests.robustness_support import assert_one_line_error, run_main

X0, Y0 = 500_000.0, 5_000_100.0
GRID = Affine(1.0, 0.0, X0, 0.0, -1.0, Y0)
SHAPE = (100, 100)


def geojson(path: Path, features: list, epsg: int = 32634) -> Path:
    doc = {"type": "FeatureCollection",
           "crs": {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{epsg}"}},
           "features": [{"type": "Feature", "properties": p, "geometry": g} for g, p in features]}
    path.write_text(json.dumps(doc))
    return path


def line(x0, y0, x1, y1) -> dict:
    return {"type": "LineString", "coordinates": [[x0, y0], [x1, y1]]}


def square(x0, y0, x1, y1) -> dict:
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


@pytest.fixture()
def grid(tmp_path: Path) -> Path:
    return write_geotiff(tmp_path / "hr.tif", np.ones(SHAPE, np.uint16), "EPSG:32634", GRID, nodata=0)


def test_vectors_missing_the_grid_are_refused_naming_both_extents(tmp_path: Path, grid: Path, capsys) -> None:
    far = geojson(tmp_path / "far.geojson", [(square(X0 + 5000, Y0 - 50, X0 + 5010, Y0 - 40), {"building": "yes"})])
    with pytest.raises(SceneError, match=r"x 505000\.0\.\.505010\.0.*x 500000\.0\.\.500100\.0.*EPSG:32634"):
        rasterize_to_grid(far, grid, tmp_path / "m.tif", kind="buildings")
    proc = run_main(["rasterize", "--vectors", far, "--grid", grid, "--out", tmp_path / "masks",
                     "--kind", "buildings"], capsys)
    assert_one_line_error(proc, "cover no pixel", "505000.0", "500000.0")
    assert not (tmp_path / "masks" / "buildings.tif").exists()


def test_a_layer_without_usable_geometry_is_refused(tmp_path: Path, grid: Path) -> None:
    only_paths = geojson(tmp_path / "paths.geojson", [(line(X0 + 5, Y0 - 50, X0 + 95, Y0 - 50), {"highway": c})
                                                      for c in ("footway", "path", "steps")])
    with pytest.raises(SceneError, match=r"no usable roads.*left out: 1 footway, 1 path, 1 steps"):
        rasterize_to_grid(only_paths, grid, tmp_path / "roads.tif", kind="roads")
    points = geojson(tmp_path / "points.geojson", [({"type": "Point", "coordinates": [X0 + 5, Y0 - 5]}, {})])
    with pytest.raises(SceneError, match=r"no usable buildings.*1 not buildings"):
        rasterize_to_grid(points, grid, tmp_path / "b.tif", kind="buildings")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hr.tif", "paths.geojson", "points.geojson"]


def test_out_tif_with_both_kinds_is_refused_and_creates_nothing(tmp_path: Path, grid: Path, capsys) -> None:
    osm = geojson(tmp_path / "osm.geojson", [(square(X0 + 10, Y0 - 50, X0 + 20, Y0 - 40), {"building": "yes"})])
    proc = run_main(["rasterize", "--vectors", osm, "--grid", grid, "--out", tmp_path / "x.tif"], capsys)
    assert_one_line_error(proc, "--kind both")
    assert not (tmp_path / "x.tif").exists()
    proc = run_main(["rasterize", "--vectors", osm, "--grid", grid, "--out", tmp_path / "x.tif",
                     "--kind", "buildings"], capsys)
    assert proc.returncode == 0 and (tmp_path / "x.tif").is_file()


def test_the_output_may_not_be_an_input(tmp_path: Path, grid: Path, capsys) -> None:
    osm = geojson(tmp_path / "osm.geojson", [(square(X0 + 10, Y0 - 50, X0 + 20, Y0 - 40), {"building": "yes"})])
    before = grid.read_bytes()
    proc = run_main(["rasterize", "--vectors", osm, "--grid", grid, "--out", grid, "--kind", "buildings"], capsys)
    assert_one_line_error(proc, "also an input")
    assert grid.read_bytes() == before


def test_footways_paths_and_steps_are_no_roads_unless_given_a_width(tmp_path: Path, grid: Path, capsys) -> None:
    feats = [(line(X0 + 5, Y0 - 20.5, X0 + 95, Y0 - 20.5), {"highway": "residential"})]
    feats += [(line(X0 + 5, Y0 - y, X0 + 95, Y0 - y), {"highway": c})
              for y, c in ((40.5, "footway"), (60.5, "path"), (80.5, "steps"))]
    osm = geojson(tmp_path / "osm.geojson", feats)
    default = rasterize_vectors(osm, GRID, SHAPE, "EPSG:32634", kind="roads")
    assert default[15:26].any() and not default[30:].any()
    with_footway = rasterize_vectors(osm, GRID, SHAPE, "EPSG:32634", kind="roads", widths={"footway": 2})
    assert with_footway[39:42].any() and not with_footway[55:].any()
    no_residential = rasterize_vectors(osm, GRID, SHAPE, "EPSG:32634", kind="roads",
                                       widths={"residential": 0, "path": 3})
    assert not no_residential[15:26].any() and no_residential[58:63].any()
    assert {"footway", "path", "steps", "pedestrian", "cycleway", "bridleway"} <= set(NON_VEHICLE_CLASSES)

    proc = run_main(["rasterize", "--vectors", osm, "--grid", grid, "--out", tmp_path / "m", "--kind", "roads",
                     "--widths", "footway=2,steps=2"], capsys)
    assert proc.returncode == 0, proc.stderr
    with rasterio.open(tmp_path / "m" / "roads.tif") as ds:
        burnt = ds.read(1)
    assert burnt[39:42].any() and burnt[79:82].any() and not burnt[55:65].any()
    proc = run_main(["rasterize", "--vectors", osm, "--grid", grid, "--out", tmp_path / "m2", "--kind", "roads",
                     "--widths", "footway=wide"], capsys)
    assert_one_line_error(proc, "footway=wide")


def test_help_documents_the_classes_and_widths(capsys) -> None:
    from core.cli.main import main

    with pytest.raises(SystemExit):
        main(["rasterize", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "footway" in text and "residential 6" in text and "--widths" in text


def test_broken_geometries_are_summed_up_in_one_line(tmp_path: Path, caplog, capfd) -> None:
    feats = [(line(X0 + 5, Y0 - 20.5, X0 + 95, Y0 - 20.5), {"highway": "primary"})]
    feats += [({"type": "LineString", "coordinates": [[X0 + 5, Y0 - 5]]}, {"highway": "primary"})] * 30
    osm = geojson(tmp_path / "osm.geojson", feats)
    with caplog.at_level(logging.INFO):
        mask = rasterize_vectors(osm, GRID, SHAPE, "EPSG:32634", kind="roads")
    assert mask[15:26].any()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "30 roads feature(s) with broken geometry" in warnings[0].getMessage()
    assert capfd.readouterr().err.count("IllegalArgumentException") == 0  # not printed by GDAL itself
