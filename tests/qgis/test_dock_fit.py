"""The dock at QGIS's default width (360 px): nothing on any tab reaches past the visible area.

Why: QGIS opens a new dock about 360 px wide. A form that is wider is cut off
on the right (combo boxes, the model card, the metric table) and the analyst
cannot see or reach what is there. The dock is shown in a main window with
long layer and checkpoint names, a model card and a filled metric table, set
to 360 px, and every visible widget of every tab is mapped into its tab's
visible area (the scroll viewport): it must start and end inside it, its own
text must fit inside it, and the metric table must need no horizontal scroll.
"""

from __future__ import annotations

import shutil
from typing import Any, List

import pytest

DOCK_WIDTH = 360
LONG = "S2B_MSIL2A_20240612T100559_N0510_R022_T33UUU_20240612T141300_B08_10m_revisit"


def _settle() -> None:
    from qgis.PyQt.QtCore import QCoreApplication

    for _ in range(5):
        QCoreApplication.processEvents()


def _text_overflow(widget: Any) -> float:
    """How many pixels of a label's / button's own text lie beyond its width (0 when it fits)."""
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtGui import QTextDocument, QTextOption
    from qgis.PyQt.QtWidgets import QAbstractButton, QLabel

    if isinstance(widget, QLabel):
        if not widget.text():
            return 0.0
        room = widget.contentsRect().width()
        if not widget.wordWrap():
            return max(0.0, widget.sizeHint().width() - widget.width())
        doc = QTextDocument()
        doc.setDefaultFont(widget.font())
        option = QTextOption()
        option.setWrapMode(QTextOption.WrapMode.WordWrap)
        if widget.textFormat() == Qt.TextFormat.PlainText:
            doc.setDefaultTextOption(option)
            doc.setPlainText(widget.text())
        else:
            doc.setHtml(widget.text())
        doc.setDocumentMargin(0)
        doc.setTextWidth(room)
        return max(0.0, doc.idealWidth() - room)
    if isinstance(widget, QAbstractButton) and widget.text():
        return max(0.0, widget.sizeHint().width() - widget.width())
    return 0.0


def _problems(page: Any) -> List[str]:
    """Visible widgets of a tab page (a QScrollArea) that reach past its viewport or cut their own text."""
    from qgis.PyQt.QtCore import QPoint
    from qgis.PyQt.QtWidgets import QWidget

    viewport = page.viewport()
    width = viewport.width()
    found = []
    for w in page.widget().findChildren(QWidget):
        if not w.isVisible() or w.width() <= 0:
            continue
        left = w.mapTo(viewport, QPoint(0, 0)).x()
        name = f"{type(w).__name__} '{w.objectName() or getattr(w, 'text', lambda: '')()}'"
        if left < 0 or left + w.width() > width:
            found.append(f"{name}: x {left}..{left + w.width()} outside 0..{width}")
        cut = _text_overflow(w)
        if cut > 1:
            found.append(f"{name}: its text needs {cut:.0f} px more than its width")
    return found


@pytest.fixture
def shown_dock(dock, qh, checkpoints, scene_files):
    """The dock at 360 px in a main window, filled with long names, a model card and a metric table."""
    from qgis.core import QgsProject
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtWidgets import QMainWindow, QWidget

    from core.api import CompareResult

    long_files = []  # long file names too: the engine's input checks name the files in the check lines
    for i, p in enumerate(scene_files["revisits"]):
        long_files.append(p.with_name(f"{LONG}_{i}.tif"))
        shutil.copyfile(p, long_files[-1])
    layers = [qh.load_raster(p, f"{LONG}_{i}") for i, p in enumerate(long_files)]
    for key in ("baseline", "taskdriven", "buildings", "roads"):
        dock.add_checkpoint(str(checkpoints[key]))
    dock.select_checkpoint(str(checkpoints["taskdriven"]))
    dock.layer_combo.setLayer(layers[0])
    dock.seg_layer_combo.setLayer(layers[1])  # a 10 m raster: the Segment tab's check line warns
    dock.out_dir.setFilePath(str(scene_files["folder"] / "a_rather_long_output_folder_name_for_the_results"))
    dock.compare.reference_combo.setLayer(layers[2])
    metrics = {label: {"cpsnr": 31.234, "cssim": 0.8765, "buildings_dice": 0.4321, "roads_dice": 0.3789,
                       "trust_mean": 0.01234, "trust_flagged": 0.0567} for label in ("Baseline", "Task-driven")}
    result = CompareResult(outputs={}, metrics=metrics, notes={"roads_dice": "no roads mask or vector layer given, "
                                                                            "so this row stays empty"})
    dock.compare.summary.setText(dock.compare.table.fill(result))
    window = QMainWindow()
    window.setCentralWidget(QWidget())  # the map's place: the dock gets only its own width
    window.resize(1280, 900)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    dock.show()
    window.show()
    _settle()
    window.resizeDocks([dock], [DOCK_WIDTH], Qt.Orientation.Horizontal)
    _settle()
    yield dock
    window.removeDockWidget(dock)
    dock.setParent(None)  # the dock fixture shuts it down; the window must not delete it first
    window.close()
    QgsProject.instance().removeAllMapLayers()


def test_dock_does_not_force_more_than_360_px(shown_dock):
    assert shown_dock.minimumSizeHint().width() <= DOCK_WIDTH
    assert abs(shown_dock.width() - DOCK_WIDTH) <= 2, shown_dock.width()


@pytest.mark.parametrize("mode", ["SINGLE", "REVISITS"])
def test_every_tab_fits_360_px(shown_dock, qh, mode):
    dock_mod = qh.ui("dock")
    dock = shown_dock
    dock.mode_combo.setCurrentIndex(getattr(dock_mod, mode))
    if mode == "REVISITS":
        from qgis.core import QgsProject

        dock.set_revisits(list(QgsProject.instance().mapLayers().values()))
    assert "10.0 m pixels" in dock.seg_check_label.text()  # the engine's warning, naming a long file
    problems = {}
    for i in range(dock.tabs.count()):
        dock.tabs.setCurrentIndex(i)
        _settle()
        page = dock.tabs.widget(i)
        assert page.widget() is not None and page.viewport().width() > 200
        found = _problems(page)
        if found:
            problems[dock.tabs.tabText(i)] = found
    assert problems == {}, problems
    table = dock.compare.table
    dock.tabs.setCurrentWidget(dock.tabs.widget(2))
    _settle()
    assert table.horizontalHeader().length() <= table.viewport().width() + 1  # every column in view
    assert "31.23" in table.values()["cPSNR (dB)"]["Baseline"]


def test_advanced_options_fit_when_opened(shown_dock):
    from qgis.gui import QgsCollapsibleGroupBox

    dock = shown_dock
    for i in range(2):
        dock.tabs.setCurrentIndex(i)
        for box in dock.tabs.widget(i).widget().findChildren(QgsCollapsibleGroupBox):
            box.setCollapsed(False)
        _settle()
        assert _problems(dock.tabs.widget(i)) == []
