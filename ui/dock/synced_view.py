"""A second map view that follows the main one: the Compare tab shows the task-driven output there.

Why a real map view: the analyst compares the two outputs by looking, so both
must show the same place at the same scale whichever view is panned or
zoomed. In QGIS it is a real map view (``iface.createNewMapCanvas``); where the
interface cannot make one (tests, other hosts) a QgsMapCanvas in a dock widget.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from qgis.gui import QgsDockWidget, QgsMapCanvas
from qgis.PyQt.QtCore import QObject, Qt

from ..log import log

__all__ = ["SyncedView"]


class SyncedView(QObject):
    """A second map view whose extent follows the main canvas (and the other way round).

    In QGIS it is a real map view (``iface.createNewMapCanvas``); where the
    interface cannot make one (tests, other hosts) a QgsMapCanvas in a dock widget.
    """

    def __init__(self, iface: Any, name: str, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.iface = iface
        self.name = name
        self.main: QgsMapCanvas = iface.mapCanvas()
        self.dock: Optional[QgsDockWidget] = None
        canvas = None
        try:
            canvas = iface.createNewMapCanvas(name)
        except Exception as exc:  # an interface without map views
            log(f"no new map view from QGIS ({exc}); using a docked canvas")
        if not isinstance(canvas, QgsMapCanvas):
            canvas = QgsMapCanvas()
            canvas.setObjectName(f"{name} canvas")
            self.dock = QgsDockWidget(name, iface.mainWindow())
            self.dock.setObjectName(name)
            self.dock.setWidget(canvas)
            try:
                iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
            except Exception:
                self.dock.show()
        self.canvas: QgsMapCanvas = canvas
        self._syncing = False
        self.canvas.setDestinationCrs(self.main.mapSettings().destinationCrs())
        self.main.extentsChanged.connect(self._from_main)
        self.canvas.extentsChanged.connect(self._from_view)
        self.main.destinationCrsChanged.connect(self._crs_from_main)

    def show_layers(self, layers: Sequence[Any], theme: Optional[str] = None) -> None:
        if theme:
            self.canvas.setTheme(theme)
        self.canvas.setLayers(list(layers))
        self._from_main()

    def _crs_from_main(self) -> None:
        self.canvas.setDestinationCrs(self.main.mapSettings().destinationCrs())

    @staticmethod
    def _follow(source: QgsMapCanvas, target: QgsMapCanvas) -> None:
        """Same centre and scale (not extent: the two views differ in size and shape)."""
        if target.extent().isEmpty() or source.width() < 2 or target.width() < 2:
            target.setExtent(source.extent())
        if source.width() >= 2 and target.width() >= 2:
            target.setCenter(source.center())
            target.zoomScale(source.scale())
        target.refresh()

    def _from_main(self) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            self._follow(self.main, self.canvas)
        finally:
            self._syncing = False

    def _from_view(self) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            self._follow(self.canvas, self.main)
        finally:
            self._syncing = False

    def close(self) -> None:
        for signal, slot in ((self.main.extentsChanged, self._from_main),
                             (self.canvas.extentsChanged, self._from_view),
                             (self.main.destinationCrsChanged, self._crs_from_main)):
            try:
                signal.disconnect(slot)
            except (TypeError, RuntimeError):
                pass
        if self.dock is not None:
            try:
                self.iface.removeDockWidget(self.dock)
            except Exception:
                pass
            self.dock.close()
            self.dock.deleteLater()
            self.dock = None
        else:
            try:
                self.iface.closeMapCanvas(self.name)
            except Exception:
                pass
