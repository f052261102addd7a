"""The training dialog's live curves: losses, loss weights and validation metrics per epoch (matplotlib).

Why matplotlib's Qt canvas: the curves are the reason to watch a run in QGIS
(does the dynamic weighting behave? is the task Dice rising?); matplotlib is
optional, so without it the dialog says so and training still runs.
"""

from __future__ import annotations

from typing import Optional

from qgis.PyQt.QtWidgets import QLabel, QVBoxLayout, QWidget

from .history import TrainHistory

__all__ = ["CurvePlot", "VAL_CURVES"]

#: Validation metrics drawn (the log has them all); cPSNR and loss go on a second axis.
VAL_CURVES = ("cpsnr", "loss", "cssim", "buildings_dice", "roads_dice", "dice", "precision", "recall")


class CurvePlot(QWidget):
    """Losses, loss weights and validation metrics per epoch (matplotlib's Qt canvas)."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.canvas = None
        try:
            from matplotlib.figure import Figure

            try:
                from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
            except ImportError:  # older matplotlib
                from matplotlib.backends.backend_qt5agg import FigureCanvasQTAgg
        except ImportError as exc:
            note = QLabel(f"No live curves: matplotlib is not available ({exc}). Training still runs.")
            note.setWordWrap(True)
            layout.addWidget(note)
            return
        self.figure = Figure(figsize=(9, 2.8), dpi=90, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(230)
        layout.addWidget(self.canvas)
        self.axes = self.figure.subplots(1, 3)
        self.twin = self.axes[2].twinx()  # cPSNR (dB) beside the 0..1 metrics
        self.draw(TrainHistory())

    def draw(self, h: TrainHistory) -> None:
        if self.canvas is None:
            return
        ax_loss, ax_w, ax_val = self.axes
        for ax in self.axes:
            ax.clear()
            ax.grid(True, alpha=0.3)
            ax.tick_params(labelsize=8)
        self.twin.clear()
        self.twin.tick_params(labelsize=8)
        self.twin.set_visible(False)
        ax_loss.set_title("Training losses", fontsize=9)
        ax_w.set_title("Loss weights", fontsize=9)
        ax_val.set_title("Validation", fontsize=9)
        for ax in self.axes:
            ax.set_xlabel("epoch", fontsize=8)
        if h.step_x:
            ax_loss.plot(h.step_x, h.step_loss, color="0.75", lw=0.8, label="step (weighted total)")
        positive = True
        for name, series in h.train.items():
            xs = [e for e, v in zip(h.epochs, series) if v is not None]
            ys = [v for v in series if v is not None]
            if ys:
                positive = positive and min(ys) > 0
                ax_loss.plot(xs, ys, marker="o", ms=3, lw=1.4, label=name)
        if positive and (h.train or h.step_loss) and min(h.step_loss or [1.0]) > 0:
            ax_loss.set_yscale("log")
        for name, series in h.weights.items():
            xs = [e for e, v in zip(h.epochs, series) if v is not None]
            ys = [v for v in series if v is not None]
            if ys:
                ax_w.step(xs, ys, where="post", marker="o", ms=3, lw=1.4, label=name)
        twin = None
        for name, series in h.val.items():
            if name not in VAL_CURVES:
                continue
            xs = [e for e, v in zip(h.epochs, series) if v is not None]
            ys = [v for v in series if v is not None]
            if not ys:
                continue
            if name in ("cpsnr", "loss"):
                twin = self.twin
                twin.set_visible(True)
                twin.plot(xs, ys, marker="s", ms=3, lw=1.4, ls="--", color="tab:purple", label=name)
                twin.set_ylabel("cPSNR (dB)" if name == "cpsnr" else name, fontsize=8)
            else:
                ax_val.plot(xs, ys, marker="o", ms=3, lw=1.4, label=name)
        for ax in (ax_loss, ax_w, ax_val):
            handles, labels = ax.get_legend_handles_labels()
            if twin is not None and ax is ax_val:
                h2, l2 = twin.get_legend_handles_labels()
                handles, labels = handles + h2, labels + l2
            if handles:
                ax.legend(handles, labels, fontsize=7, loc="best")
        if h.epochs_total:
            for ax in self.axes:
                ax.set_xlim(0, max(h.epochs_total, 1) + 0.2)
        self.canvas.draw_idle()
