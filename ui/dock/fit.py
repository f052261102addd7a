"""Making the dock's pages fit a narrow dock (QGIS's default is about 360 px wide).

Why these helpers: Qt sizes a form to its widest child. A combo box listing a
long layer or checkpoint name, a label with a long file name, or a form row
with a long label then makes the page wider than the dock and everything on
the right is cut off. Each page therefore scrolls vertically only, combo boxes
shrink to a few characters (the full text stays in the list and the tool
tip), labels wrap, and form rows put the field under its label when the two
do not fit side by side.
"""

from __future__ import annotations

from typing import Optional

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QComboBox, QFormLayout, QFrame, QLabel, QScrollArea, QSizePolicy, QWidget

__all__ = ["shrink_combo", "shrink_combos", "wrapped_label", "narrow_form", "scroll_page", "MIN_CHARS"]

#: Characters a combo box shows at least; longer items are elided, not widening the dock.
MIN_CHARS = 10


def shrink_combo(combo: QComboBox, chars: int = MIN_CHARS) -> QComboBox:
    """Let ``combo`` be narrower than its longest item, and grow with the dock."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(chars)
    combo.setSizePolicy(QSizePolicy.Policy.Expanding, combo.sizePolicy().verticalPolicy())
    return combo


def shrink_combos(widget: QWidget, chars: int = MIN_CHARS) -> None:
    """:func:`shrink_combo` for every combo box inside ``widget`` (QGIS's layer and band pickers included)."""
    for combo in widget.findChildren(QComboBox):
        shrink_combo(combo, chars)


def wrapped_label(text: str = "", rich: bool = False, gray: bool = False,
                  parent: Optional[QWidget] = None) -> QLabel:
    """A label that wraps to the dock's width (rich text also inside long words, at zero-width spaces)."""
    label = QLabel(text, parent)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText if rich else Qt.TextFormat.PlainText)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    if gray:
        label.setStyleSheet("color: gray")
    return label


def narrow_form(form: QFormLayout) -> QFormLayout:
    """Fields grow to the dock's width and go under their label when both do not fit on one line."""
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    return form


def scroll_page(content: QWidget) -> QScrollArea:
    """``content`` in a page that scrolls up and down and always has the dock's width."""
    shrink_combos(content)
    page = QScrollArea()
    page.setObjectName(f"{content.objectName() or 'page'}Scroll")
    page.setWidgetResizable(True)
    page.setFrameShape(QFrame.Shape.NoFrame)
    page.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    page.setWidget(content)
    return page
