"""Issue 21, defect 8: synthetic revisits carry their dates in the GeoTIFFs, so they stack like dated exports.

The dates lived only in scene.json; ``stack`` (and the input checks) read a
plain raster's date from its metadata or name, so a synth scene could not be
stacked ("cannot tell the acquisition date").
"""

from __future__ import annotations

import rasterio

from core import api
from core.data.scene import read_scene, write_scene
from core.data.synthetic.world_v2 import make_world_scene
from core.io.s2_product import frame_info
from core.options import StackOptions


def test_synthetic_revisits_are_dated_and_stack(tmp_path):
    scene = make_world_scene(size_hr=48, frames=3, seed=5, real_world=True, object_free=False)
    folder = write_scene(scene, tmp_path / "scene")
    lr = sorted((folder / "lr").glob("*.tif"))
    assert len(lr) == 3 and len(set(scene.dates)) == 3
    for path, day in zip(lr, scene.dates):
        with rasterio.open(path) as ds:
            assert ds.tags()["ACQUISITION_DATE"] == day
            assert [frame_info(path, b, ds).date for b in range(1, ds.count + 1)] == [day] * ds.count
    assert read_scene(folder).dates == scene.dates  # scene.json still says the same
    result = api.build_stack(lr, tmp_path / "stack.tif", StackOptions(frames=3, min_clear=0.0))
    with rasterio.open(result.path) as ds:
        described = " ".join(d or "" for d in ds.descriptions)
    assert all(day in described for day in scene.dates), described
