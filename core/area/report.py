"""The report of an area fine-tune: JSON (everything), Markdown (for people) and a before/after plot.

Why a module of its own: :mod:`core.area` decides *what* is measured; this
one only lays it out, so the wording and figures can change without touching
the workflow. Files are written to a temporary name and renamed.
"""

from __future__ import annotations

import json
import math
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ..io.atomic import atomic_write, write_text_atomic

__all__ = ["write_area_report", "plot_before_after", "markdown_table", "finite_or_none", "recipe_record",
           "machine_line", "write_json_and_figure", "area_name", "finish_markdown",
           "write_markdown", "segmenters_markdown", "SEG_METRICS"]

Metric = Tuple[str, str, bool]


def finite_or_none(v: Any) -> Optional[float]:
    """``v`` as a finite float, else None: the reports print "n/a" rather than a bool, NaN or infinity.

    Shared by the area and Wald reports so both read a metric the same way.
    """
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def recipe_record(config: Any, selection_share: bool = True) -> Dict[str, Any]:
    """The training recipe as the reports record it (JSON key order kept: it is what readers diff).

    Shared by the area and Wald reports; the Wald one has no patch selection.
    """
    record: Dict[str, Any] = {
        "epochs": config.epochs, "lr": config.lr, "seed": config.seed, "device": config.device,
        "losses": [t.name for t in config.loss.terms],
        "proportions": {t.name: t.proportion for t in config.loss.terms},
        "weighting": config.loss.weighting, "reference": config.loss.reference}
    if selection_share:
        record["selection_share"] = config.data.selection.share
    record.update({"lr_patch": config.data.lr_patch, "samples_per_epoch": config.data.samples_per_epoch,
                   "batch_size": config.data.batch_size})
    return record


def machine_line() -> str:
    """``<arch> <system>, <n> CPU(s)``: where a run's time was measured, for the reports."""
    return f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU(s)"


def write_json_and_figure(stem: Path, payload: Mapping[str, Any], draw: Callable[[Path], Path]) -> Dict[str, Path]:
    """``<stem>.json`` now and ``<stem>.png`` if ``draw`` manages it; the paths (keys json, md, png).

    A figure must never lose the numbers, so a failing ``draw`` only leaves out the png.
    """
    out = {"json": stem.with_suffix(".json"), "md": stem.with_suffix(".md")}
    write_text_atomic(out["json"], json.dumps(payload, indent=1, default=str) + "\n")
    try:
        out["png"] = draw(stem.with_suffix(".png"))
    except Exception:  # a figure must never lose the numbers
        pass
    return out


def area_name(area: Mapping[str, Any]) -> str:
    """The area's name for a report title: its folder, or the folder above a folder called ``area``."""
    root = Path(str(area.get("root")))
    return root.parent.name if root.name == "area" else root.name


def finish_markdown(md: List[str], command: Optional[str], out: Mapping[str, Path]) -> str:
    """The reports' common tail (the command, the figure if it was drawn) joined into the Markdown text."""
    if command:
        md = md + [f"- command: `{command}`"]
    if "png" in out:
        md = md + ["", f"![before/after]({out['png'].name})"]
    return "\n".join(md) + "\n"


def write_markdown(out: Dict[str, Path], md: List[str], command: Optional[str], seconds: float,
                   machine: str) -> Dict[str, Path]:
    """Write a report's Markdown to ``out["md"]``: ``md``, the run time, then :func:`finish_markdown`'s tail.

    Returns ``out``.
    """
    md = md + [f"- run time: {seconds / 60:.1f} min on {machine}"]
    write_text_atomic(out["md"], finish_markdown(md, command, out))
    return out


def _fmt(v: Any, key: str) -> str:
    f = finite_or_none(v)
    if f is None:
        return "n/a"
    return f"{f:.2f}" if "cpsnr" in key else f"{f:.3f}"


def markdown_table(before: Mapping[str, Any], after: Mapping[str, Any], metrics: Sequence[Metric]) -> str:
    """``| metric | before | after | change |`` rows."""
    lines = ["| held-out metric | before | after | change |", "|---|---:|---:|---:|"]
    for key, label, _higher in metrics:
        b, a = finite_or_none(before.get(key)), finite_or_none(after.get(key))
        change = "n/a" if a is None or b is None else f"{a - b:+.2f}" if "cpsnr" in key else f"{a - b:+.3f}"
        lines.append(f"| {label} | {_fmt(b, key)} | {_fmt(a, key)} | {change} |")
    return "\n".join(lines)


def plot_before_after(before: Mapping[str, Any], after: Mapping[str, Any], out_png: Path,
                      title: str = "Held-out part of the area") -> Path:
    """Bars of building/road Dice before and after, and the consistency cPSNR beside them."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.2, 3.2))
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    labels = ["buildings", "roads"]
    xs = range(len(labels))
    for off, (name, res, color) in zip((-0.18, 0.18), (("before", before, "0.6"), ("after", after, "tab:blue"))):
        vals = [finite_or_none(res.get(f"{t}_dice")) or 0.0 for t in labels]
        bars = ax.bar([x + off for x in xs], vals, width=0.36, color=color, label=name)
        for b, v in zip(bars, vals):
            ax.text(b.get_x() + b.get_width() / 2, v + 0.01, f"{v:.3f}", ha="center", fontsize=8)
    ax.set_xticks(list(xs), [f"Dice {t}" for t in labels])
    ax.set_ylim(0, 1)
    ax.set_ylabel("Dice on the SR output")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    vals = [finite_or_none(before.get("consistency_cpsnr")) or 0.0, finite_or_none(after.get("consistency_cpsnr")) or 0.0]
    bars = ax2.bar([0, 1], vals, color=["0.6", "tab:blue"])
    for b, v in zip(bars, vals):
        ax2.text(b.get_x() + b.get_width() / 2, v + 0.2, f"{v:.2f}", ha="center", fontsize=8)
    ax2.set_xticks([0, 1], ["before", "after"])
    ax2.set_ylabel("consistency cPSNR (dB)")
    ax2.set_ylim(0, max(vals + [1.0]) * 1.15)
    ax2.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_write(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    return out_png


SEG_METRICS: Tuple[Metric, ...] = (("dice", "Dice", True), ("precision", "precision", True),
                                   ("recall", "recall", True), ("dice_anchored", "Dice on the anchored output", True))


def segmenters_markdown(segmenters: Mapping[str, Mapping[str, Any]]) -> List[str]:
    """The segmenter stage's section: per network, held-out Dice/precision/recall before and after, and files."""
    if not segmenters:
        return []
    first = next(iter(segmenters.values()))
    md = ["## Stage 1: segmenters fine-tuned on the area", "",
          f"Each network learned on {first.get('input_description') or first.get('input')}, against the OSM masks "
          "rasterized on the HR grid, on the training tiles; scored on the held-out tiles (counts summed over "
          "them). Weights: the last epoch's.", ""]
    for target, s in segmenters.items():
        before, after = s.get("before") or {}, s.get("after") or {}
        rows = [m for m in SEG_METRICS if m[0] in before or m[0] in after]
        md += [f"### {target}", "", markdown_table(before, after, rows), "",
               f"- started from: `{s.get('start')}`", f"- fine-tuned checkpoint: `{s.get('checkpoint')}`", ""]
    md += ["## Stage 2: the SR network, against the fine-tuned segmenters", ""]
    return md


def write_area_report(stem: Path, area: Mapping[str, Any], before: Mapping[str, Any], after: Mapping[str, Any],
                      checkpoint: Path, start: Any, config: Any, seconds: float, command: Optional[str],
                      metrics: Sequence[Metric], segmenters: Optional[Mapping[str, Mapping[str, Any]]] = None,
                      seg_nets: Optional[Mapping[str, Any]] = None) -> Dict[str, Path]:
    """``<stem>.json``, ``<stem>.md`` and ``<stem>.png``; returns their paths (keys json, md, png).

    ``segmenters``: the segmenter stage's results per target (see
    :func:`core.area.segmenters.finetune_segmenters`), listed before the SR
    stage; ``seg_nets``: the segmentation networks the SR stage used.
    """
    segmenters = dict(segmenters or {})
    stem = Path(stem)
    strip = {k: v for k, v in before.items() if k != "per_tile"}, {k: v for k, v in after.items() if k != "per_tile"}
    payload = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "area": {k: area.get(k) for k in ("root", "train", "held_out", "skipped", "side", "tile_lr", "band_name",
                                           "bands", "crs", "frames", "size_lr", "messages")},
        "start_checkpoint": str(start),
        "checkpoint": str(checkpoint),
        "seg_nets": dict(seg_nets or {}),
        "segmenters": {t: {k: v for k, v in s.items() if k != "sha256"} for t, s in segmenters.items()},
        "recipe": recipe_record(config),
        "before": strip[0],
        "after": strip[1],
        "per_tile": {"before": before.get("per_tile"), "after": after.get("per_tile")},
        "seconds": round(seconds, 1),
        "machine": machine_line(),
    }
    out = write_json_and_figure(stem, payload, lambda png: plot_before_after(before, after, png))
    r = payload["recipe"]
    md = [
        f"# Area fine-tune: {area_name(area)}",
        "",
        f"Held-out block: the {area.get('side')}ern strip, {len(area.get('held_out') or [])} tile(s) of "
        f"{area.get('tile_lr')} LR px, separated from the {len(area.get('train') or [])} training tile(s) by a gap. "
        "The fine-tuned weights are the last epoch's (the held-out tiles are never used to choose them).",
        "",
        *segmenters_markdown(segmenters),
        markdown_table(strip[0], strip[1], metrics),
        "",
        "Dice: frozen segmentation networks" + (" (the ones fine-tuned in stage 1)" if segmenters else "")
        + " on the SR output against the rasterized vectors, counts summed over "
        "the held-out tiles. Consistency cPSNR: the SR output degraded back to 10 m vs the clearest revisit "
        "(1 LR px border), mean over tiles" + (" and bands; per band below it" if len(area.get("bands") or []) > 1
                                              else "") + ".",
        "",
        f"- bands: {', '.join(area.get('bands') or [str(area.get('band_name'))])} (read by name from the revisits)",
        f"- started from: `{start}`",
        f"- fine-tuned checkpoint: `{checkpoint}`",
        *([f"- segmentation networks used: buildings `{seg_nets.get('buildings')}`, roads "
           f"`{seg_nets.get('roads')}`"] if seg_nets else []),
        f"- recipe: {', '.join(r['losses'])} ({r['weighting']} weighting, reference {r['reference']}, "
        f"proportions {', '.join(f'{k} {v}' for k, v in r['proportions'].items() if v is not None)}), patch "
        f"selection share {r['selection_share']}, {r['epochs']} epoch(s) x {r['samples_per_epoch']} patches of "
        f"{r['lr_patch']} px, batch {r['batch_size']}, lr {r['lr']:g}, seed {r['seed']}",
    ]
    return write_markdown(out, md, command, seconds, payload["machine"])
