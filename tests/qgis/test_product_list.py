"""Issue 21, defect 8: the product dialog's list shows a whole line per product (it was 40 px, the name cut)."""

from __future__ import annotations

from pathlib import Path

NAME = "S2B_MSIL2A_20230512T095559_N0509_R122_T33UXP_20230512T123456.SAFE"


def test_product_list_shows_the_product_name(clean_qgis, qh, tmp_path):
    from qgis.PyQt.QtCore import Qt

    mod = qh.ui("dock.product_dialog")
    for mode in (mod.EXPORT, mod.STACK):
        dialog = mod.ProductDialog(mode, clean_qgis, lambda _p: Path(tmp_path))
        try:
            dialog.resize(360, 400)
            dialog.show()
            dialog.add_inputs([str(tmp_path / NAME)])
            qh.wait_until(lambda: False, 0.2)
            items = dialog.input_list
            item = items.item(0)
            rect = items.visualItemRect(item)
            line = items.fontMetrics().lineSpacing()
            assert items.viewport().height() >= 2 * line, (mode, items.viewport().height(), line)
            assert rect.height() <= items.viewport().height(), (mode, rect, items.viewport().size())
            assert not items.horizontalScrollBar().isVisible(), mode  # no scroll bar eating the line
            assert items.textElideMode() == Qt.TextElideMode.ElideMiddle and item.toolTip().endswith(NAME)
        finally:
            dialog.deleteLater()
