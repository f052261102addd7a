"""A stall monitor for Qt's event loop: a timer ticking every few milliseconds records the longest gap.

Why: "QGIS freezes" is measured, not guessed (issue 21). While the UI thread is
busy (matplotlib drawing, a blocking call) the timer cannot fire; the gap
between two ticks minus the interval is how long the analyst's clicks, map
panning and repaints waited. Used by the offscreen tests and, inside a real
QGIS, by ``tests/gui/qgis_driver.py`` (plain Qt, no pytest).
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
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
        #: (seconds since start, the UI thread's innermost frames) sampled once per stall by a watchdog thread,
        #: so a stall names its cause instead of leaving it to be guessed.
        self.stacks: List[Tuple[float, str]] = []
        self._start = self._last = 0.0
        self._ui_thread = threading.get_ident()
        self._watching = threading.Event()
        self._watchdog: Optional[threading.Thread] = None

    def start(self) -> StallMonitor:
        self._start = self._last = time.monotonic()
        self._ui_thread = threading.get_ident()
        self.timer.start()
        self._watching.set()
        self._watchdog = threading.Thread(target=self._watch, name="stall-watchdog", daemon=True)
        self._watchdog.start()
        return self

    def _watch(self) -> None:
        """Sample the UI thread's stack every ``threshold / 4`` while a tick is overdue (runs off the UI thread).

        Every sample of one stall is kept, so ``stacks`` shows where the stall's time went, not only where it
        happened to be once."""
        while self._watching.is_set():
            time.sleep(self.threshold / 4)
            if time.monotonic() - self._last - self.interval > self.threshold:
                frame = sys._current_frames().get(self._ui_thread)
                if frame is not None:
                    lines = [line for line in traceback.format_stack(frame) if "<frozen importlib" not in line]
                    self.stacks.append((time.monotonic() - self._start, "".join(lines[-40:])))

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
        self._watching.clear()
        if self._watchdog is not None:
            self._watchdog.join(timeout=1.0)
        return self.longest

    def stack_near(self, seconds: float) -> str:
        """The UI thread's stack sampled during the stall that ended at ``seconds`` (empty if none was sampled)."""
        before = [(t, text) for t, text in self.stacks if t <= seconds + self.interval]
        return before[-1][1] if before else ""

    def report(self) -> str:
        worst = sorted(self.stalls, key=lambda s: -s[1])[:5]
        listed = ", ".join(f"{g:.2f} s at {t:.1f} s" for t, g in worst)
        return (f"longest event-loop stall {self.longest:.3f} s over {time.monotonic() - self._start:.1f} s "
                f"({self.ticks} ticks; {len(self.stalls)} over {self.threshold:.2f} s{': ' + listed if listed else ''})")
