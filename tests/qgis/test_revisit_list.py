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


def test_four_band_run_shows_its_bands_and_logs_the_radiometry_once(dock, checkpoints4, qh, tmp_path):
    """Nine revisits of four bands without scale metadata: one radiometry line, not 36; 'Bands: all four'."""
    import numpy as np

    from core import api
    from core.options import SuperResolveOptions

    dock_mod = qh.ui("dock")
    paths = []
    for i in range(9):
        data = np.stack([(qh.smooth_image(30, 30, 10 * i + k) * 1e4).astype("uint16") for k in range(4)])
        path = qh.write_tif(tmp_path / f"t{i:02d}.tif", data)
        import rasterio

        with rasterio.open(path, "r+") as ds:
            ds.descriptions = ("B02", "B03", "B04", "B08")
        paths.append(path)
    layers = [qh.load_raster(p, f"t{i:02d}") for i, p in enumerate(paths)]
    dock.mode_combo.setCurrentIndex(dock_mod.REVISITS)
    dock.set_revisits(layers)
    dock.add_checkpoint(str(checkpoints4["rams"]))
    dock.select_checkpoint(str(checkpoints4["rams"]))
    sr = dock.sr
    assert sr.more["all_bands"].isChecked()  # a 4-band network ticks it
    assert sr.band_combo.isHidden() and not sr.bands_note.isHidden()
    assert sr.band_label.text() == "Bands" and "B02, B03, B04, B08" in sr.bands_note.text()
    assert "9 revisit(s)" in dock.check_label.text() and "36" not in dock.check_label.text(), dock.check_label.text()
    sr.more["all_bands"].setChecked(False)
    assert not sr.band_combo.isHidden() and sr.bands_note.isHidden() and sr.band_label.text() == "Band"

    result = api.super_resolve(paths, tmp_path / "out.tif", str(checkpoints4["rams"]),
                               SuperResolveOptions(all_bands=True))
    notes = [m for m in result.messages if "no scale metadata" in m]
    assert len(notes) == 1, result.messages  # the 3 dates used x 4 bands: one line
    assert notes[0].startswith("12 frames (t"), notes
