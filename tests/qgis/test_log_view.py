"""Issue 21, defect 8: the dock's log keeps following new lines after a run resized it (Segment, Compare)."""

from __future__ import annotations


def _log(qh, n, start=0):
    from qgis.core import Qgis, QgsApplication

    log = qh.ui("log")
    for i in range(start, start + n):
        QgsApplication.messageLog().logMessage(f"line {i}: " + "words " * 12, log.TAG, Qgis.MessageLevel.Info)
    qh.wait_until(lambda: False, 0.2)  # the view receives them queued


def test_log_follows_new_lines_after_the_view_is_resized(clean_qgis, qh):
    view = qh.ui("log").LogView()
    view.resize(300, 200)
    view.show()
    try:
        bar = view.verticalScrollBar()
        _log(qh, 40)
        assert bar.value() == bar.maximum() > 0
        # a result arrives: the dock's layout gives the log another size (narrower: more wrapped lines), then more lines
        view.resize(180, 90)
        qh.wait_until(lambda: False, 0.1)
        _log(qh, 10, 40)
        view.resize(260, 140)
        qh.wait_until(lambda: False, 0.1)
        _log(qh, 5, 50)
        assert bar.value() == bar.maximum(), (bar.value(), bar.maximum())
        assert view.toPlainText().rstrip().endswith("words")
        # the analyst scrolls up to read: new lines do not pull the view away ...
        bar.triggerAction(bar.SliderAction.SliderPageStepSub)
        qh.wait_until(lambda: False, 0.1)
        held = bar.value()
        _log(qh, 5, 60)
        assert bar.value() == held < bar.maximum()
        # ... and once back at the bottom it follows again
        bar.triggerAction(bar.SliderAction.SliderToMaximum)
        qh.wait_until(lambda: False, 0.1)
        _log(qh, 5, 70)
        assert bar.value() == bar.maximum()
    finally:
        view.detach()
        view.deleteLater()
