"""A stall monitor for Qt's event loop: a timer ticking every few milliseconds records the longest gap.

Why: "QGIS freezes" is measured, not guessed (issue 21). While the UI thread is
busy (matplotlib drawing, a blocking call) the timer cannot fire; the gap
between two ticks minus the interval is how long the analyst's clicks, map
panning and repaints waited. Used by the offscreen tests and, inside a real
QGIS, by ``tests/gui/qgis_driver.py`` (plain Qt, no pytest).
"""

from __future__ import annotations

import time
from typing import List, Optional, Tuple

from qgis.PyQt.QtCore import QObject, Qt, QTimer

__all__ = ["StallMonitor"]


class StallMonitor(QObject):
    """``start()``, let the event loop run, ``stop()``; then ``longest`` (s), ``stalls`` over a threshold, ``ticks``."""

    def __init__(self, interval_ms: int = 15, threshold_s: float = 0.1, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.interval = interval_ms / 1000.0
        self.threshold = threshold_s
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.longest = 0.0
        self.ticks = 0
        self.stalls: List[Tuple[float, float]] = []  # (seconds since start, stall length)
        self._start = self._last = 0.0

    def start(self) -> StallMonitor:
        self._start = self._last = time.monotonic()
        self.timer.start()
        return self

    def _tick(self) -> None:
        now = time.monotonic()
        gap = now - self._last - self.interval
        self._last = now
        self.ticks += 1
        if gap > self.longest:
            self.longest = gap
        if gap > self.threshold:
            self.stalls.append((now - self._start, gap))

    def stop(self) -> float:
        self._tick()
        self.timer.stop()
        return self.longest

    def report(self) -> str:
        worst = sorted(self.stalls, key=lambda s: -s[1])[:5]
        listed = ", ".join(f"{g:.2f} s at {t:.1f} s" for t, g in worst)
        return (f"longest event-loop stall {self.longest:.3f} s over {time.monotonic() - self._start:.1f} s "
                f"({self.ticks} ticks; {len(self.stalls)} over {self.threshold:.2f} s{': ' + listed if listed else ''})")
