"""A second map view that follows the main one: the Compare tab shows the task-driven output there.

Why a real map view: the analyst compares the two outputs by looking, so both
must show the same place at the same scale whichever view is panned or
zoomed. In QGIS it is a real map view (``iface.createNewMapCanvas``); where the
interface cannot make one (tests, other hosts) a QgsMapCanvas in a dock widget.

Which way it follows (issue 21): the view follows the main map; the main map
follows the view only when the analyst moves the view (a mouse press, wheel
or key in it just before its extent changed). A new view changes its extent
by itself while it is laid out (tiny, then resized); copying *that* onto the
main map threw the analyst's map to 1:284,925,949.
"""

from __future__ import annotations

import math
import time
from typing import Any, Optional, Sequence

from qgis.gui import QgsDockWidget, QgsMapCanvas
from qgis.PyQt.QtCore import QEvent, QObject, Qt
from qgis.PyQt.QtWidgets import QDockWidget

from ..log import log

__all__ = ["SyncedView", "MIN_VIEW_SIZE", "USER_GESTURE_S"]

#: The least size (px) the second view gets when it is shown: a 298 x 71 strip shows nothing to compare.
MIN_VIEW_SIZE = (360, 300)
#: How long after the analyst's press, wheel or key in the view its extent changes count as theirs.
USER_GESTURE_S = 1.5
_GESTURES = (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonRelease, QEvent.Type.MouseMove,
             QEvent.Type.Wheel, QEvent.Type.KeyPress)


class SyncedView(QObject):
    """A second map view whose extent follows the main canvas (and the main canvas it, when the analyst moves it).

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
        self._gesture_at = -math.inf
        for widget in (self.canvas, self.canvas.viewport()):
            widget.installEventFilter(self)
        self.canvas.setDestinationCrs(self.main.mapSettings().destinationCrs())
        self.main.extentsChanged.connect(self._from_main)
        self.canvas.extentsChanged.connect(self._from_view)
        self.main.destinationCrsChanged.connect(self._crs_from_main)
        self.give_room()

    # ------------------------------------------------------------------ size
    def dock_widget(self) -> Optional[QDockWidget]:
        """The dock widget that holds the view (QGIS's map view dock, or ours)."""
        widget = self.canvas.parentWidget()
        while widget is not None and not isinstance(widget, QDockWidget):
            widget = widget.parentWidget()
        return widget

    def give_room(self) -> None:
        """Make the view at least :data:`MIN_VIEW_SIZE` (a third of the window wide, half of it high)."""
        dock, window = self.dock_widget(), self.iface.mainWindow()
        if dock is None or window is None:
            return
        try:
            width = max(MIN_VIEW_SIZE[0], window.width() // 3)
            height = max(MIN_VIEW_SIZE[1], window.height() // 2)
            if dock.isFloating():
                dock.resize(max(dock.width(), width), max(dock.height(), height))
                return
            if window.dockWidgetArea(dock) == Qt.DockWidgetArea.NoDockWidgetArea:
                return  # not (yet) in the window's layout (interfaces that only record addDockWidget)
            dock.setMinimumSize(min(width, MIN_VIEW_SIZE[0]), min(height, MIN_VIEW_SIZE[1]))
            window.resizeDocks([dock], [width], Qt.Orientation.Horizontal)
            window.resizeDocks([dock], [height], Qt.Orientation.Vertical)
        except (AttributeError, RuntimeError, TypeError):  # not a QMainWindow (other hosts)
            pass

    # ------------------------------------------------------------------ following
    def show_layers(self, layers: Sequence[Any], theme: Optional[str] = None) -> None:
        if theme:
            self.canvas.setTheme(theme)
        self.canvas.setLayers(list(layers))
        self._from_main()

    def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 - Qt API
        if event.type() in _GESTURES and (event.type() != QEvent.Type.MouseMove or event.buttons()):
            self._gesture_at = time.monotonic()
        return False

    def analyst_moves_view(self) -> bool:
        """Whether the view's last extent change came from the analyst (a gesture in it just before)."""
        return time.monotonic() - self._gesture_at <= USER_GESTURE_S

    def _crs_from_main(self) -> None:
        self.canvas.setDestinationCrs(self.main.mapSettings().destinationCrs())

    @staticmethod
    def _laid_out(canvas: QgsMapCanvas) -> bool:
        return canvas.width() >= 2 and canvas.height() >= 2

    @staticmethod
    def _sane(canvas: QgsMapCanvas) -> bool:
        scale = canvas.scale()
        return (not canvas.extent().isEmpty() and math.isfinite(scale) and scale > 0
                and SyncedView._laid_out(canvas))

    @staticmethod
    def _follow(source: QgsMapCanvas, target: QgsMapCanvas) -> None:
        """Same centre and scale (not extent: the two views differ in size and shape)."""
        if target.extent().isEmpty():  # a canvas without an extent yet has no centre to move
            target.setExtent(source.extent())
        target.setCenter(source.center())
        target.zoomScale(source.scale())
        target.refresh()

    def _from_main(self) -> None:
        if self._syncing or self.main.extent().isEmpty():
            return
        self._syncing = True
        try:
            if self._sane(self.main) and self._laid_out(self.canvas):
                self._follow(self.main, self.canvas)
            else:  # one of them not shown yet: the same extent; the first resize comes back through _from_view
                self.canvas.setExtent(self.main.extent())
                self.canvas.refresh()
        finally:
            self._syncing = False

    def _from_view(self) -> None:
        if self._syncing:
            return
        if not (self.analyst_moves_view() and self._sane(self.canvas)):
            self._from_main()  # the view moved by itself (laid out, resized, layers set): back to the main map
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
        for widget in (self.canvas, self.canvas.viewport()):
            try:
                widget.removeEventFilter(self)
            except RuntimeError:
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
