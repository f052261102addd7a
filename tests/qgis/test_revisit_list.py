"""Issue 21, defects 6 and 8 in the dock: the revisit list offers no SR outputs; a 4-band run shows its bands.

The Super-resolve tab listed every raster layer as a revisit, so "t00 SR x3"
could be ticked among the revisits; and its Band box said B08 while a 4-band
network used all four bands.
"""

from __future__ import annotations


def _names(dock):
    return [dock.revisit_list.item(i).text() for i in range(dock.revisit_list.count())]


def test_revisit_list_leaves_out_super_resolved_outputs(dock, scene_files, checkpoints, qh, tmp_path):
    from core.inference.sr import super_resolve

    dock_mod = qh.ui("dock")
    layers = [qh.load_raster(p, f"t{i:02d}") for i, p in enumerate(scene_files["revisits"])]
    out = super_resolve(scene_files["revisits"], tmp_path / "t00_sr.tif", str(checkpoints["baseline"])).path
    qh.load_raster(out, "t00 SR x3")  # a real output of this tool: its scale metadata and 3.33 m pixels
    stripped = qh.write_tif(tmp_path / "resampled.tif", qh.smooth_image(60, 60, 3), px=10 / 3)
    qh.load_raster(stripped, "3.33 m, no metadata")
    dock.mode_combo.setCurrentIndex(dock_mod.REVISITS)
    dock.set_revisits(layers)
    names = _names(dock)
    assert names[:len(layers)] == [lyr.name() for lyr in layers]
    assert "t00 SR x3" not in names and "3.33 m, no metadata" not in names, names
