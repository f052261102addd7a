"""Rasterising OSM-like vector layers against hand-computed masks.

Test files are GeoJSON written as text, so they read the same through OGR or fiona
(whichever :func:`vector_backend` finds); the CRS member names the projection.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import transform as warp_transform

from core.data.scene import SceneError, write_geotiff
from core.data.vectors import ROAD_WIDTHS_M, rasterize_to_grid, rasterize_vectors, vector_backend

FOOTWAY_M = 2.0  # footways are left out by default; the tests that burn one give this width

# a 1 m grid in UTM 34N: pixel (row, col) has its centre at (X0 + col + 0.5, Y0 - row - 0.5)
X0, Y0 = 500_000.0, 5_000_100.0
GRID = Affine(1.0, 0.0, X0, 0.0, -1.0, Y0)
SHAPE = (100, 100)


def geojson(path: Path, features: list, epsg: int = 32634) -> Path:
    doc = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{epsg}"}},
        "features": [{"type": "Feature", "properties": props, "geometry": geom} for geom, props in features],
    }
    path.write_text(json.dumps(doc))
    return path


def square(x0: float, y0: float, x1: float, y1: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def centres() -> tuple:
    rows, cols = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    return X0 + cols + 0.5, Y0 - rows - 0.5


def test_backend_is_available() -> None:
    assert vector_backend() in ("ogr", "fiona")


def test_square_building_in_grid_crs(tmp_path: Path) -> None:
    path = geojson(tmp_path / "b.geojson", [(square(X0 + 10, Y0 - 50, X0 + 20, Y0 - 40), {"building": "yes"})])
    mask = rasterize_vectors(path, GRID, SHAPE, "EPSG:32634", kind="buildings")
    expected = np.zeros(SHAPE, bool)
    expected[40:50, 10:20] = True  # rows from the top: Y0-40 .. Y0-50
    np.testing.assert_array_equal(mask, expected)


def test_building_in_lon_lat_is_reprojected(tmp_path: Path) -> None:
    xs = [X0 + 30.2, X0 + 45.7, X0 + 45.7, X0 + 30.2, X0 + 30.2]
    ys = [Y0 - 80.3, Y0 - 80.3, Y0 - 61.6, Y0 - 61.6, Y0 - 80.3]
    lon, lat = warp_transform("EPSG:32634", "EPSG:4326", xs, ys)
    poly = {"type": "Polygon", "coordinates": [[[a, b] for a, b in zip(lon, lat)]]}
    line = {"type": "LineString", "coordinates": [[lon[0], lat[0]], [lon[1], lat[1]]]}
    path = geojson(tmp_path / "b.geojson", [(poly, {"building": "house"}), (line, {"building": "yes"})], epsg=4326)
    mask = rasterize_vectors(path, GRID, SHAPE, "EPSG:32634", kind="buildings")
    cx, cy = centres()
    expected = (cx > X0 + 30.2) & (cx < X0 + 45.7) & (cy > Y0 - 80.3) & (cy < Y0 - 61.6)
    np.testing.assert_array_equal(mask, expected)  # the line is not a building and is skipped


def _segment_distance(px: np.ndarray, py: np.ndarray, a: tuple, b: tuple) -> np.ndarray:
    (ax, ay), (bx, by) = a, b
    t = np.clip(((px - ax) * (bx - ax) + (py - ay) * (by - ay)) / ((bx - ax) ** 2 + (by - ay) ** 2), 0, 1)
    return np.hypot(px - (ax + t * (bx - ax)), py - (ay + t * (by - ay)))


def test_roads_buffered_by_class_width(tmp_path: Path) -> None:
    a, b = (X0 + 20.0, Y0 - 20.25), (X0 + 80.0, Y0 - 20.25)  # residential: 6 m wide
    c, d = (X0 + 10.0, Y0 - 70.0), (X0 + 60.0, Y0 - 90.0)  # diagonal footway: 2 m when included
    e, f = (X0 + 85.0, Y0 - 40.0), (X0 + 85.0, Y0 - 60.0)  # unknown class: default width
    path = geojson(tmp_path / "r.geojson", [
        ({"type": "LineString", "coordinates": [list(a), list(b)]}, {"highway": "residential"}),
        ({"type": "LineString", "coordinates": [list(c), list(d)]}, {"highway": "footway"}),
        ({"type": "LineString", "coordinates": [list(e), list(f)]}, {"highway": "bogus"}),
    ])
    mask = rasterize_vectors(path, GRID, SHAPE, "EPSG:32634", kind="roads", default_width=3.0,
                             widths={"footway": FOOTWAY_M})
    px, py = centres()
    dist = np.stack([_segment_distance(px, py, a, b) - ROAD_WIDTHS_M["residential"] / 2,
                     _segment_distance(px, py, c, d) - FOOTWAY_M / 2,
                     _segment_distance(px, py, e, f) - 1.5])
    expected = (dist <= 0).any(axis=0)
    # buffers are polygons (16 segments per quarter circle): only pixels within 2 cm of an edge may differ
    ambiguous = (np.abs(dist) < 0.02).any(axis=0)
    assert expected.sum() > 300
    np.testing.assert_array_equal(mask[~ambiguous], expected[~ambiguous])
    wider = rasterize_vectors(path, GRID, SHAPE, "EPSG:32634", kind="roads",
                              widths={"residential": 10, "footway": FOOTWAY_M})
    assert wider.sum() > mask.sum()
    # by default the footway is no road: only the residential street and the unknown class are burnt
    default = rasterize_vectors(path, GRID, SHAPE, "EPSG:32634", kind="roads", default_width=3.0)
    np.testing.assert_array_equal(default[~ambiguous], (dist[[0, 2]] <= 0).any(axis=0)[~ambiguous])
    # attribute names are matched case-insensitively (Shapefiles often upper-case them)
    upper = geojson(tmp_path / "u.geojson", [
        ({"type": "LineString", "coordinates": [list(c), list(d)]}, {"HIGHWAY": "footway"}),
    ])
    footway = rasterize_vectors(upper, GRID, SHAPE, "EPSG:32634", kind="roads", widths={"footway": FOOTWAY_M})
    near = np.abs(dist[1]) >= 0.02
    np.testing.assert_array_equal(footway[near], (dist[1] <= 0)[near])


def test_osm_width_tag_overrides_the_class_width(tmp_path: Path) -> None:
    """OSM's ``width=*`` (metres, number or text such as "9 m") wins over the class table; feet fall back."""
    a, b = (X0 + 20.0, Y0 - 50.25), (X0 + 80.0, Y0 - 50.25)
    line = {"type": "LineString", "coordinates": [list(a), list(b)]}
    rows = {}
    for name, width in (("tagged", "9 m"), ("number", 9.0), ("feet", "30'"), ("none", None)):
        props = {"highway": "residential"} if width is None else {"highway": "residential", "width": width}
        path = geojson(tmp_path / f"{name}.geojson", [(line, props)])
        mask = rasterize_vectors(path, GRID, SHAPE, "EPSG:32634", kind="roads")
        rows[name] = int(mask[:, 50].sum())  # pixels across the road in one column
    assert rows["tagged"] == rows["number"] == 9
    assert rows["feet"] == rows["none"] == int(ROAD_WIDTHS_M["residential"])


def test_rasterize_to_grid_writes_a_mask_on_the_grid(tmp_path: Path) -> None:
    grid = write_geotiff(tmp_path / "hr.tif", np.ones(SHAPE, np.uint16), "EPSG:32634", GRID, nodata=0)
    path = geojson(tmp_path / "b.geojson", [(square(X0 + 10, Y0 - 50, X0 + 20, Y0 - 40), {})])
    out = rasterize_to_grid(path, grid, tmp_path / "masks" / "buildings.tif", kind="buildings")
    with rasterio.open(out) as ds:
        assert ds.transform == GRID and ds.crs.to_epsg() == 32634 and ds.dtypes[0] == "uint8"
        data = ds.read(1)
    assert data.sum() == 100 and set(np.unique(data)) == {0, 1}
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["buildings.tif"]  # no temporary left


def test_bad_vector_input(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gpkg"
    junk.write_text("not a geopackage")
    with pytest.raises(SceneError, match="junk.gpkg"):
        rasterize_vectors(junk, GRID, SHAPE, "EPSG:32634")
    with pytest.raises(SceneError, match="not found"):
        rasterize_vectors(tmp_path / "missing.geojson", GRID, SHAPE, "EPSG:32634")
    path = geojson(tmp_path / "b.geojson", [(square(X0, Y0 - 5, X0 + 5, Y0), {})])
    with pytest.raises(SceneError, match="no layer 'roads'"):
        rasterize_vectors(path, GRID, SHAPE, "EPSG:32634", layer="roads")
    with pytest.raises(SceneError, match="kind"):
        rasterize_vectors(path, GRID, SHAPE, "EPSG:32634", kind="trees")
    not_raster = tmp_path / "grid.tif"
    not_raster.write_text("nope")
    with pytest.raises(SceneError, match=r"grid\.tif.*not a raster"):
        rasterize_to_grid(path, not_raster, tmp_path / "m.tif")
    assert not (tmp_path / "m.tif").exists()


def test_cli_rasterize_both_kinds(tmp_path: Path) -> None:
    from core.cli.main import main

    grid = write_geotiff(tmp_path / "hr.tif", np.ones(SHAPE, np.uint16), "EPSG:32634", GRID, nodata=0)
    feats = [
        (square(X0 + 10, Y0 - 50, X0 + 20, Y0 - 40), {"building": "yes", "highway": None}),
        ({"type": "LineString", "coordinates": [[X0 + 5, Y0 - 80.25], [X0 + 95, Y0 - 80.25]]}, {"highway": "primary"}),
    ]
    path = geojson(tmp_path / "osm.geojson", feats)
    assert main(["rasterize", "--vectors", str(path), "--grid", str(grid), "--out", str(tmp_path / "masks")]) == 0
    with rasterio.open(tmp_path / "masks" / "buildings.tif") as b, rasterio.open(tmp_path / "masks" / "roads.tif") as r:
        assert b.read(1).sum() == 100
        roads = r.read(1)
    assert roads[74:86, 10:90].all() and roads.sum() == roads[74:86].sum()  # primary: 12 m wide
