"""The training curves drawn with matplotlib's Agg backend, in a process of their own (no Qt, no QGIS here).

Why a process: drawing the three panels takes 0.3-0.6 s of Python and C++ that
hold the interpreter lock; drawn in QGIS's process (on the UI thread, and even
in a worker thread on a busy CPU) it paused QGIS's event loop for up to
seconds while a run was followed (issue 21). :class:`ui.train_dialog.plot.CurvePlot`
starts this file as ``python curves_render.py [PACKAGE_FOLDER]`` once and
sends it one JSON line per picture wanted: ``{"gen": n, "size": [w, h],
"out": "<png>", "history": {TrainHistory fields}}``; it answers one JSON line
``{"gen": n, "out": "<png>", "labels": [...]}`` when the PNG is written (or
``{"gen": n, "error": "..."}``). The dialog only loads the PNG.

Run as a file, not as a module of the plugin's package (whose ``__init__``
imports Qt): ``history.py`` beside it is imported as a plain module.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, List, Tuple

__all__ = ["render_curves", "VAL_CURVES", "DPI", "MIN_HEIGHT", "main"]

#: Validation metrics drawn (the log has them all); cPSNR and loss go on a second axis.
VAL_CURVES = ("cpsnr", "loss", "cssim", "buildings_dice", "roads_dice", "dice", "precision", "recall")
DPI = 90
MIN_HEIGHT = 230


def render_curves(h: Any, size: Tuple[int, int], dpi: int = DPI,
                  png: str = "") -> Tuple[Any, Any, bytes, Tuple[int, int]]:
    """Draw ``h`` (a ``TrainHistory``) on a new Agg figure of ``size`` pixels.

    Returns ``(figure, axes, RGBA bytes, (width, height))``; with ``png`` the
    picture is written there instead and the bytes are empty. Plain matplotlib
    objects only (no Qt, no pyplot).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width, height = max(300, size[0]), max(MIN_HEIGHT, size[1])
    # fixed margins, not layout="constrained": its solver (kiwisolver, C++) holds the GIL for seconds with the
    # twin axis, and the UI thread waited for it (issue 21)
    figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    figure.subplots_adjust(left=0.085, right=0.94, bottom=0.17, top=0.9, wspace=0.42)
    canvas = FigureCanvasAgg(figure)
    axes = figure.subplots(1, 3)
    twin = axes[2].twinx()  # cPSNR (dB) beside the 0..1 metrics
    twin.set_visible(False)
    ax_loss, ax_w, ax_val = axes
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
        ax.set_xlabel("epoch", fontsize=8)
    twin.tick_params(labelsize=8)
    ax_loss.set_title("Training losses", fontsize=9)
    ax_w.set_title("Loss weights", fontsize=9)
    ax_val.set_title("Validation", fontsize=9)
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
    shown_twin = False
    for name, series in h.val.items():
        if name not in VAL_CURVES:
            continue
        xs = [e for e, v in zip(h.epochs, series) if v is not None]
        ys = [v for v in series if v is not None]
        if not ys:
            continue
        if name in ("cpsnr", "loss"):
            shown_twin = True
            twin.set_visible(True)
            twin.plot(xs, ys, marker="s", ms=3, lw=1.4, ls="--", color="tab:purple", label=name)
            twin.set_ylabel("cPSNR (dB)" if name == "cpsnr" else name, fontsize=8)
        else:
            ax_val.plot(xs, ys, marker="o", ms=3, lw=1.4, label=name)
    for ax in axes:
        handles, labels = ax.get_legend_handles_labels()
        if shown_twin and ax is ax_val:
            h2, l2 = twin.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        if handles:
            ax.legend(handles, labels, fontsize=7, loc="best")
    if h.epochs_total:
        for ax in axes:
            ax.set_xlim(0, max(h.epochs_total, 1) + 0.2)
    w, hgt = canvas.get_width_height()
    if png:
        canvas.print_png(png)
        return figure, [*axes, twin], b"", (w, hgt)
    canvas.draw()
    return figure, [*axes, twin], bytes(canvas.buffer_rgba()), (w, hgt)


def line_labels(axes: List[Any]) -> List[str]:
    return [ln.get_label() for ax in axes for ln in ax.get_lines()]


def _answer(data: dict) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def main(argv: List[str]) -> int:
    """Read requests from stdin until it closes; write each picture and say so on stdout."""
    if len(argv) > 1 and argv[1] and os.path.isdir(argv[1]) and argv[1] not in sys.path:
        sys.path.append(argv[1])  # the plugin's package folder, after site-packages as inside QGIS
    os.environ.setdefault("MPLBACKEND", "Agg")
    from history import TrainHistory  # beside this file

    _answer({"ready": True})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            history = TrainHistory(**request["history"])
            tmp = request["out"] + ".part"
            _figure, axes, _rgba, _size = render_curves(history, tuple(request["size"]), png=tmp)
            os.replace(tmp, request["out"])
            _answer({"gen": request["gen"], "out": request["out"], "labels": line_labels(axes)})
        except Exception as exc:  # noqa: BLE001 - one bad picture must not end the renderer
            _answer({"gen": request.get("gen"), "error": f"{type(exc).__name__}: {exc}"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
