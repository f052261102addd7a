"""The Compare tab's metric table: one row per metric, baseline / task-driven / difference, fits a narrow dock.

Why its own widget: a table with the metric names as a vertical header and
three stretched columns needs ~500 px and was cut off in QGIS's 360 px dock.
Here the rows are stacked: each metric's name spans the table on its own row
and its three values sit on the row below, so the three value columns share
the whole width; the table grows in height (it never scrolls), so every value
is visible at any dock width.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QBrush, QColor
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

__all__ = ["MetricTable", "METRIC_ROWS", "BASELINE", "TASK_DRIVEN", "DIFFERENCE", "format_metric", "summary_line"]

BASELINE = "Baseline"
TASK_DRIVEN = "Task-driven"
DIFFERENCE = "Difference"
#: (result key, row title, higher is better)
METRIC_ROWS = (
    ("cpsnr", "cPSNR (dB)", True),
    ("cssim", "cSSIM", True),
    ("buildings_dice", "Building Dice", True),
    ("roads_dice", "Road Dice", True),
    ("trust_mean", "Trust: mean disagreement", False),
    ("trust_flagged", "Trust: % pixels flagged", False),
    ("trust_supported", "Trust: % supported", True),
    ("trust_uncertain", "Trust: % uncertain", False),
    ("trust_invented", "Trust: % likely invented", False),
)
#: Rows shown as percentages of pixels.
SHARE_KEYS = ("trust_flagged", "trust_supported", "trust_uncertain", "trust_invented")
#: (logical column, header text, header tool tip)
COLUMNS = ((BASELINE, BASELINE, "the baseline output"), (TASK_DRIVEN, TASK_DRIVEN, "the task-driven output"),
           (DIFFERENCE, "\u0394", "difference: task-driven minus baseline (green = better)"))


def format_metric(key: str, value: Optional[float]) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if key == "trust_mean":
        return f"{value:.4f}"  # reflectance: S-2 noise is ~0.002
    if key in SHARE_KEYS:
        return f"{100 * value:.1f} %"
    return f"{value:.2f}" if key == "cpsnr" else f"{value:.3f}"


#: The rows the summary line names when they have both values (result key, short name).
SUMMARY_ROWS = (("cpsnr", "cPSNR"), ("cssim", "cSSIM"), ("buildings_dice", "building Dice"),
                ("roads_dice", "road Dice"), ("trust_invented", "likely invented"))


def summary_line(result: Any, missing: str = "", seconds: Optional[float] = None) -> str:
    """One line under the table: task-driven minus baseline on the rows that have both values, then why the
    others are n/a (``missing``, from :meth:`MetricTable.fill`) and how long the comparison took."""
    parts = []
    for key, name in SUMMARY_ROWS:
        a = result.metrics.get(BASELINE, {}).get(key)
        b = result.metrics.get(TASK_DRIVEN, {}).get(key)
        if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
            continue
        d = b - a
        parts.append(f"{name} {'+' if d >= 0 else ''}{format_metric(key, d)}")
    line = ("Task-driven vs baseline: " + ", ".join(parts) + ".") if parts else \
        "Both outputs are shown; no metric to compare."
    if missing:
        line += f" {missing}."
    if seconds is not None:
        line += f" ({seconds:.0f} s)"
    return line


class MetricTable(QTableWidget):
    """Metrics of two outputs side by side; :meth:`fill` from a ``CompareResult``, :meth:`values` as text.

    Row ``2 i`` holds the name of metric ``i`` (spanning the columns), row ``2 i + 1`` its values.
    """

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(2 * len(METRIC_ROWS), len(COLUMNS), parent)
        self.setObjectName("compareMetricTable")
        self.setHorizontalHeaderLabels([text for _key, text, _tip in COLUMNS])
        for col, (_key, _text, tip) in enumerate(COLUMNS):
            self.horizontalHeaderItem(col).setToolTip(tip)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setWordWrap(True)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        header = self.horizontalHeader()
        header.setMinimumSectionSize(1)
        for col in range(self.columnCount()):  # the values share the width; the difference takes what it needs
            mode = QHeaderView.ResizeMode.ResizeToContents if col == len(COLUMNS) - 1 else QHeaderView.ResizeMode.Stretch
            header.setSectionResizeMode(col, mode)
        for i, (_key, title, _h) in enumerate(METRIC_ROWS):
            name = QTableWidgetItem(title)
            name.setFlags(Qt.ItemFlag.ItemIsEnabled)
            name.setForeground(QBrush(QColor("gray")))
            self.setItem(2 * i, 0, name)
            self.setSpan(2 * i, 0, 1, len(COLUMNS))
            for col in range(self.columnCount()):
                self.setItem(2 * i + 1, col, self._cell(""))
        self._fit_height()

    @staticmethod
    def _cell(text: str) -> QTableWidgetItem:
        item = QTableWidgetItem(text)
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return item

    def _fit_height(self) -> None:
        """All rows visible: the height follows the wrapped rows (the dock's page scrolls, not the table)."""
        self.resizeRowsToContents()
        rows = sum(self.rowHeight(r) for r in range(self.rowCount()))
        self.setFixedHeight(rows + self.horizontalHeader().height() + 2 * self.frameWidth() + 2)

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self._fit_height()

    def fill(self, result: Any) -> str:
        """Show ``result``'s metrics; returns the reasons for the "n/a" cells (for the line below the table)."""
        bands = getattr(result, "metric_bands", None) or {}
        for i, (key, title, higher_better) in enumerate(METRIC_ROWS):
            name = self.item(2 * i, 0)
            name.setText(f"{title}, {bands[key]}" if key in bands else title)
            a = result.metrics.get(BASELINE, {}).get(key)
            b = result.metrics.get(TASK_DRIVEN, {}).get(key)
            diff = "n/a"
            if a is not None and b is not None:
                d = b - a
                diff = ("+" if d >= 0 else "") + format_metric(key, d)
            for col, text in enumerate([format_metric(key, a), format_metric(key, b), diff]):
                item = self._cell(text)
                if text == "n/a" and key in result.notes:
                    item.setToolTip(result.notes[key])
                elif col < 2:
                    item.setToolTip(self._per_band(result, (BASELINE, TASK_DRIVEN)[col], key))
                if col == 2 and diff != "n/a" and a != b:
                    item.setForeground(QBrush(QColor("#1a7f37" if (b > a) == higher_better else "#b42318")))
                self.setItem(2 * i + 1, col, item)
        self._fit_height()
        missing = sorted(set(result.notes.values()))
        return "n/a: " + "; ".join(missing) if missing else ""

    @staticmethod
    def _per_band(result: Any, column: str, key: str) -> str:
        """The per-band values behind a mean (``cpsnr_B08`` ...), for the cell's tool tip."""
        row = result.metrics.get(column, {})
        parts = [f"{k.split('_', 1)[1]}: {format_metric(key, v)}" for k, v in row.items()
                 if k.startswith(f"{key}_") and k.split("_", 1)[1][:1] == "B"]
        return "; ".join(parts)

    def titles(self) -> Dict[str, str]:
        """Each metric's shown title (with the bands it was computed on, when a comparison named them)."""
        return {title: self.item(2 * i, 0).text() for i, (_key, title, _h) in enumerate(METRIC_ROWS)}

    def values(self) -> Dict[str, Dict[str, str]]:
        """The table as text, ``{metric title: {Baseline / Task-driven / Difference: text}}``."""
        out: Dict[str, Dict[str, str]] = {}
        for i, (_key, title, _h) in enumerate(METRIC_ROWS):
            out[title] = {}
            for col, (name, _text, _tip) in enumerate(COLUMNS):
                item = self.item(2 * i + 1, col)
                out[title][name] = item.text() if item else ""
        return out
