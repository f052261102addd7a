"""Issue 21, defect 1: the Compare tab's second map view follows the main map and never throws it away.

After *Run two checkpoints* the main map jumped from 1:4,873 to 1:284,925,949:
the new, empty view changed its own extent while QGIS laid it out, and that
extent was copied onto the main canvas. The view now follows the main map; the
main map follows the view only when the analyst moves the view.
"""

from __future__ import annotations

import pytest


def _press(widget) -> None:
    """A real left-button press in ``widget``, as the analyst's pan tool starts."""
    from qgis.PyQt.QtCore import QCoreApplication, QEvent, QPointF, Qt
    from qgis.PyQt.QtGui import QMouseEvent

    event = QMouseEvent(QEvent.Type.MouseButtonPress, QPointF(10, 10), Qt.MouseButton.LeftButton,
                        Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QCoreApplication.sendEvent(widget, event)


def test_new_view_follows_the_main_map_and_does_not_move_it(clean_qgis, qh, tmp_path):
    from qgis.core import QgsCoordinateReferenceSystem, QgsPointXY, QgsRectangle

    mod = qh.ui("dock.synced_view")
    layer = qh.load_raster(qh.write_tif(tmp_path / "lr.tif", qh.smooth_image(30, 30, 1)), "lr")
    main = clean_qgis.mapCanvas()
    main.resize(800, 600)
    main.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:32633"))
    main.setLayers([layer])
    main.setExtent(QgsRectangle(500000, 5999700, 500300, 6000000))  # a village
    scale, center = main.scale(), main.center()
    assert 100 < scale < 1e6

    view = mod.SyncedView(clean_qgis, "test synced view")
    try:
        view.show_layers([layer])
        assert main.scale() == pytest.approx(scale, rel=1e-6)
        # the new view changes its extent by itself (QGIS lays it out: a strip first, then its size, and an
        # empty canvas's own extent): none of that may reach the main map ...
        view.canvas.resize(298, 71)
        view.canvas.setExtent(QgsRectangle(-2.0e7, -1.0e7, 2.0e7, 1.0e7))
        view.canvas.resize(500, 400)
        assert main.scale() == pytest.approx(scale, rel=1e-6), \
            f"the main map was thrown to 1:{main.scale():,.0f} (was 1:{scale:,.0f})"
        assert (main.center().x(), main.center().y()) == pytest.approx((center.x(), center.y()), abs=1e-6)
        # ... and the view comes back to the main map's place and scale
        assert view.canvas.scale() == pytest.approx(scale, rel=1e-3)
        assert view.canvas.center().x() == pytest.approx(center.x(), abs=1e-3)

        # the main map moves: the view follows
        main.setCenter(QgsPointXY(500100, 5999800))
        main.zoomScale(scale * 2)
        assert view.canvas.scale() == pytest.approx(scale * 2, rel=1e-3)
        assert view.canvas.center().y() == pytest.approx(5999800, abs=1e-3)

        # the analyst zooms and pans in the view: the main map follows
        _press(view.canvas.viewport())
        view.canvas.zoomScale(scale / 2)
        view.canvas.setCenter(QgsPointXY(500200, 5999900))
        assert main.scale() == pytest.approx(scale / 2, rel=1e-3)
        assert (main.center().x(), main.center().y()) == pytest.approx((500200, 5999900), abs=1e-3)
    finally:
        view.close()
