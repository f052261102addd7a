"""Render the results of an experiment grid the way the study shows them.

One table per data version (simulated / real-world), each metric column colour
coded within that table from worst (red) to best (green); LPIPS is the only
"lower is better" metric. Markdown has no colours, so it carries a marker square
(🟥 🟧 🟨 🟩) in front of each value; the HTML file uses real cell backgrounds
and embeds its plots, so it is one self-contained file to mail or archive.
A metric that was not computed (None / NaN, e.g. LPIPS without its weights)
shows as "n/a" and takes no colour: it is never coloured as if it were a value.

Plots use matplotlib's object API with the Agg canvas (no pyplot state), so
they can be drawn from worker threads and inside QGIS.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..io.atomic import atomic_write
from ..io.jsonsafe import json_safe

__all__ = [
    "MetricSpec",
    "DEFAULT_METRICS",
    "normalize_row",
    "render_markdown",
    "render_html",
    "write_report",
    "plot_training_curves",
    "plot_sr_comparison",
    "colour_for",
    "level_for",
    "MARKERS",
]

Row = Mapping[str, Any]
PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class MetricSpec:
    """A coloured column: row key, header label, direction and number format."""

    key: str
    label: str
    higher_is_better: bool = True
    fmt: str = "{:.3f}"


DEFAULT_METRICS: Tuple[MetricSpec, ...] = (
    MetricSpec("cpsnr", "cPSNR [dB]", True, "{:.2f}"),
    MetricSpec("cssim", "cSSIM", True, "{:.4f}"),
    MetricSpec("lpips", "LPIPS", False, "{:.4f}"),
    MetricSpec("dice_buildings", "Building Dice", True, "{:.3f}"),
    MetricSpec("dice_roads", "Road Dice", True, "{:.3f}"),
)

#: Dice on the output shifted to its revisits' brightness (see core.evaluation.evaluate_sr).
ANCHORED_METRICS: Tuple[MetricSpec, ...] = (
    MetricSpec("dice_buildings_anchored", "Building Dice, anchored", True, "{:.3f}"),
    MetricSpec("dice_roads_anchored", "Road Dice, anchored", True, "{:.3f}"),
)

# Markers from worst to best; level i of len(MARKERS) covers t in [i/n, (i+1)/n).
MARKERS = ("🟥", "🟧", "🟨", "🟩")
# Background anchors (red -> yellow -> green) interpolated for HTML cells.
_ANCHORS = ((0.0, (215, 48, 39)), (0.5, (254, 224, 139)), (1.0, (26, 152, 80)))

# Accepted spellings of the fixed keys (after lower-casing, spaces/hyphens -> "_").
_ALIASES = {
    "id": "id",
    "exp": "id",
    "experiment_id": "id",
    "name": "name",
    "experiment": "name",
    "data_version": "data_version",
    "data": "data_version",
    "version": "data_version",
    "cpsnr": "cpsnr",
    "cssim": "cssim",
    "lpips": "lpips",
    "dice_buildings": "dice_buildings",
    "buildings_dice": "dice_buildings",
    "building_dice": "dice_buildings",
    "b_dice": "dice_buildings",
    "dice_roads": "dice_roads",
    "roads_dice": "dice_roads",
    "road_dice": "dice_roads",
    "r_dice": "dice_roads",
}


def _canon(key: str) -> str:
    k = re.sub(r"[\s\-]+", "_", str(key).strip().lower())
    return _ALIASES.get(k, k)


def normalize_row(row: Row) -> Dict[str, Any]:
    """Map the accepted spellings ("data version", "cPSNR", "building Dice", ...) to canonical keys."""
    return {_canon(k): v for k, v in row.items()}


def _number(value: Any) -> Optional[float]:
    """A finite float, or None for missing / "n/a" / NaN / non-numeric values."""
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _position(value: float, values: Sequence[float], higher_is_better: bool) -> float:
    """0 for the column's worst value, 1 for its best (1 when all values are equal), by rank.

    Why rank and not distance: one diverged run (a task loss alone can drive cPSNR to -50 dB)
    would otherwise squeeze every other row into the same colour. Equal values share a colour.
    """
    distinct = sorted(set(values))
    if len(distinct) == 1:
        return 1.0
    t = distinct.index(value) / (len(distinct) - 1)
    return t if higher_is_better else 1.0 - t


def level_for(t: float) -> int:
    """Index into ``MARKERS`` for a position ``t`` in [0, 1]."""
    return min(len(MARKERS) - 1, int(t * len(MARKERS)))


def colour_for(t: float) -> str:
    """Hex background for position ``t`` (0 worst: red, 0.5: yellow, 1 best: green)."""
    t = min(1.0, max(0.0, t))
    for (t0, c0), (t1, c1) in zip(_ANCHORS, _ANCHORS[1:]):
        if t <= t1:
            f = (t - t0) / (t1 - t0)
            rgb = tuple(round(a + (b - a) * f) for a, b in zip(c0, c1))
            return "#{:02x}{:02x}{:02x}".format(*rgb)
    return "#{:02x}{:02x}{:02x}".format(*_ANCHORS[-1][1])


def _group(rows: Sequence[Row]) -> List[Tuple[str, List[Dict[str, Any]]]]:
    groups: Dict[str, List[Dict[str, Any]]] = {}
    for row in rows:
        r = normalize_row(row)
        groups.setdefault(str(r.get("data_version") or "all"), []).append(r)
    return list(groups.items())


def _extra_keys(rows: Sequence[Mapping[str, Any]], metrics: Sequence[MetricSpec]) -> List[str]:
    fixed = {"id", "name", "data_version"} | {m.key for m in metrics}
    keys: List[str] = []
    for r in rows:
        for k, v in r.items():
            if k not in fixed and k not in keys and not isinstance(v, (dict, list, tuple)):
                keys.append(k)
    return keys


def _cells(rows: Sequence[Mapping[str, Any]], metrics: Sequence[MetricSpec]) -> List[List[Tuple[str, Optional[float]]]]:
    """Per row, per metric: (formatted text, colour position or None for n/a)."""
    columns = []
    for m in metrics:
        vals = [_number(r.get(m.key)) for r in rows]
        present = [v for v in vals if v is not None]
        col = []
        for v in vals:
            if v is None:
                col.append(("n/a", None))
            else:
                col.append((m.fmt.format(v), _position(v, present, m.higher_is_better)))
        columns.append(col)
    return [list(cells) for cells in zip(*columns)] if columns else [[] for _ in rows]


def _plain(value: Any) -> str:
    n = _number(value)
    if n is not None and not isinstance(value, (int, np.integer)):
        return f"{n:.4g}"
    return "n/a" if value is None else str(value)


def _legend_md() -> str:
    return f"Colours per column within each table: {MARKERS[0]} worst → {MARKERS[1]} → {MARKERS[2]} → {MARKERS[3]} best."


def render_markdown(rows: Sequence[Row], title: str, metrics: Sequence[MetricSpec] = DEFAULT_METRICS) -> str:
    """Markdown tables (one per data version) with a worst→best marker square per metric cell."""

    def esc(s: Any) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")

    out = [f"# {esc(title)}", "", _legend_md(), ""]
    for version, grp in _group(rows):
        extras = _extra_keys(grp, metrics)
        header = ["ID", "Experiment"] + [f"{m.label} {'↑' if m.higher_is_better else '↓'}" for m in metrics] + extras
        out += [f"## Data: {esc(version)}", "", "| " + " | ".join(map(esc, header)) + " |"]
        out.append("|" + "|".join([":--"] * 2 + ["--:"] * (len(metrics) + len(extras))) + "|")
        for r, cells in zip(grp, _cells(grp, metrics)):
            line = [esc(r.get("id", "")), esc(r.get("name", ""))]
            line += [text if t is None else f"{MARKERS[level_for(t)]} {text}" for text, t in cells]
            line += [esc(_plain(r.get(k))) for k in extras]
            out.append("| " + " | ".join(line) + " |")
        out.append("")
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 2em 0}
th,td{border:1px solid #bbb;padding:4px 10px}
th{background:#eee} td.num{text-align:right;font-variant-numeric:tabular-nums}
td.na{color:#777;text-align:center} .legend span{padding:2px 8px;margin-right:2px}
img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}
"""


def _text_colour(bg: str) -> str:
    r, g, b = (int(bg[i : i + 2], 16) for i in (1, 3, 5))
    return "#000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#fff"


def render_html(
    rows: Sequence[Row],
    title: str,
    metrics: Sequence[MetricSpec] = DEFAULT_METRICS,
    images: Optional[Mapping[str, PathLike]] = None,
) -> str:
    """A self-contained HTML page: coloured tables per data version, then ``images`` (embedded PNGs)."""
    e = html.escape
    legend = "".join(
        f'<span style="background:{colour_for(t)};color:{_text_colour(colour_for(t))}">{lab}</span>'
        for t, lab in ((0.0, "worst"), (0.5, "middle"), (1.0, "best"))
    )
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f'<p class="legend">Colours per column within each table: {legend}. '
        "↑ higher is better, ↓ lower is better; n/a = not computed.</p>",
    ]
    for version, grp in _group(rows):
        extras = _extra_keys(grp, metrics)
        parts.append(f"<h2>Data: {e(version)}</h2><table><thead><tr><th>ID</th><th>Experiment</th>")
        parts += [f"<th>{e(m.label)} {'↑' if m.higher_is_better else '↓'}</th>" for m in metrics]
        parts += [f"<th>{e(k)}</th>" for k in extras]
        parts.append("</tr></thead><tbody>")
        for r, cells in zip(grp, _cells(grp, metrics)):
            tds = [f"<td>{e(str(r.get('id', '')))}</td>", f"<td>{e(str(r.get('name', '')))}</td>"]
            for text, t in cells:
                if t is None:
                    tds.append(f'<td class="na">{e(text)}</td>')
                else:
                    bg = colour_for(t)
                    tds.append(f'<td class="num" style="background:{bg};color:{_text_colour(bg)}">{e(text)}</td>')
            tds += [f'<td class="num">{e(_plain(r.get(k)))}</td>' for k in extras]
            parts.append("<tr>" + "".join(tds) + "</tr>")
        parts.append("</tbody></table>")
    for caption, path in (images or {}).items():
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        parts.append(f"<h3>{e(caption)}</h3><img alt=\"{e(caption)}\" src=\"data:image/png;base64,{data}\">")
    parts.append("</body></html>")
    return "\n".join(parts)


# --------------------------------------------------------------------------- files


def _atomic_write(path: Path, data: Union[str, bytes]) -> None:
    """Write through a temporary file in the same folder, then rename: no half-written report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)


def _save_figure(fig, out_png: PathLike) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    with atomic_write(out, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return out


def _safe_name(s: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(s)).strip("_") or "run"


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def write_report(
    rows: Sequence[Row],
    out_dir: PathLike,
    title: str,
    histories: Optional[Mapping[str, Sequence[Mapping[str, Any]]]] = None,
    metrics: Sequence[MetricSpec] = DEFAULT_METRICS,
) -> Dict[str, Path]:
    """Write ``report.md``, ``report.html`` (self-contained), ``results.json`` and one
    ``curves_<id>.png`` per entry of ``histories`` (experiment id -> per-epoch history).

    Returns ``{"markdown": ..., "html": ..., "json": ..., "curves_<id>": ...}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: Dict[str, Path] = {}
    images: Dict[str, Path] = {}
    for exp_id, history in (histories or {}).items():
        if not history:
            continue
        png = plot_training_curves(history, out / f"curves_{_safe_name(exp_id)}.png", title=f"Experiment {exp_id}")
        paths[f"curves_{exp_id}"] = png
        images[f"Training curves: experiment {exp_id}"] = png
    md = render_markdown(rows, title, metrics)
    if images:
        md += "\n## Training curves\n\n" + "\n".join(f"![{c}]({p.name})" for c, p in images.items()) + "\n"
    paths["markdown"] = out / "report.md"
    _atomic_write(paths["markdown"], md)
    paths["html"] = out / "report.html"
    _atomic_write(paths["html"], render_html(rows, title, metrics, images))
    paths["json"] = out / "results.json"
    _atomic_write(paths["json"], json.dumps([json_safe(dict(r)) for r in rows], indent=2, default=_json_default))
    return paths


# --------------------------------------------------------------------------- plots


def plot_training_curves(history: Sequence[Mapping[str, Any]], out_png: PathLike, title: Optional[str] = None) -> Path:
    """Per-epoch training losses, loss weights (dynamic weighting) and validation metrics.

    ``history`` entries look like ``{"epoch": 1, "train": {"cl1": ..}, "weights": {..},
    "val": {"cpsnr": .., "dice_buildings": ..}}``; missing parts are skipped. cPSNR
    (dB) gets its own axis because it lives on a different scale than Dice.
    """
    from matplotlib.figure import Figure

    def series(section: str) -> Dict[str, Tuple[List[float], List[float]]]:
        out: Dict[str, Tuple[List[float], List[float]]] = {}
        for i, h in enumerate(history):
            ep = float(h.get("epoch", i + 1))
            for k, v in (h.get(section) or {}).items():
                f = _number(v)
                if f is not None:
                    xs, ys = out.setdefault(k, ([], []))
                    xs.append(ep)
                    ys.append(f)
        return out

    panels = [(s, series(s)) for s in ("train", "weights", "val")]
    panels = [(s, d) for s, d in panels if d]
    if not panels:
        raise ValueError("the training history holds no train losses, weights or validation metrics to plot")
    titles = {"train": "Training losses (unweighted)", "weights": "Loss weights", "val": "Validation"}
    fig = Figure(figsize=(4.6 * len(panels), 3.6))
    for i, (section, data) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        twin = None
        for name, (xs, ys) in data.items():
            target = ax
            if section == "val" and name.lower().startswith(("cpsnr", "psnr")) and len(data) > 1:
                twin = twin or ax.twinx()
                target = twin
                target.set_ylabel(f"{name} [dB]")
                target.plot(xs, ys, "k--", marker="o", ms=3, label=name)
                continue
            target.plot(xs, ys, marker="o", ms=3, label=name)
        if section == "train" and all(y > 0 for _, ys in data.values() for y in ys):
            ax.set_yscale("log")
        ax.set_title(titles[section])
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if twin is not None:
            h2, l2 = twin.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        ax.legend(handles, labels, fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save_figure(fig, out_png)


_OVERLAY_COLOURS = {"buildings": (0.9, 0.1, 0.1), "roads": (1.0, 0.85, 0.0)}
_FALLBACK_COLOURS = ((0.1, 0.5, 1.0), (0.7, 0.2, 0.9), (0.1, 0.8, 0.8))


def _stretch(images: Sequence[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """2-98 % limits pooled over ``images`` (each ``[C, H, W]``), per channel: one stretch for all panels."""
    c = images[0].shape[0]
    lo, hi = np.zeros(c), np.ones(c)
    for ch in range(c):
        pooled = np.concatenate([a[ch][np.isfinite(a[ch])].ravel() for a in images])
        if pooled.size:
            lo[ch], hi[ch] = np.percentile(pooled, [2, 98])
        hi[ch] = max(hi[ch], lo[ch] + 1e-6)
    return lo, hi


def plot_sr_comparison(
    panels: Sequence[Tuple[str, Any, Optional[Mapping[str, Any]]]],
    out_png: PathLike,
    ncols: Optional[int] = None,
    alpha: float = 0.45,
) -> Path:
    """Side-by-side images (e.g. bicubic, baseline SR, task-driven SR, HR) with mask overlays.

    ``panels``: ``(title, image, {mask name: bool mask} | None)`` where ``image``
    is ``[H, W]`` (grey) or ``[3, H, W]`` (red, green, blue: a true-colour
    composite). All panels of a kind share one stretch (2-98 % of the pooled
    finite pixels, per channel) so brightness differences are real; buildings
    are overlaid in red, roads in yellow.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if not panels:
        raise ValueError("nothing to plot: no panels given")
    imgs = []
    for title, img, _ in panels:
        a = np.asarray(img.detach().cpu() if hasattr(img, "detach") else img, dtype=np.float64).squeeze()
        if a.ndim == 2:
            a = a[None]
        if a.ndim != 3 or a.shape[0] not in (1, 3):
            raise ValueError(f"panel {title!r}: expected [H, W] or [3, H, W], got shape {a.shape}")
        imgs.append(a)
    limits = {c: _stretch([a for a in imgs if a.shape[0] == c]) for c in {a.shape[0] for a in imgs}}
    n = len(panels)
    ncols = ncols or n
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(3.4 * ncols, 3.6 * nrows))
    legend: Dict[str, Tuple[float, float, float]] = {}
    for i, ((title, _, overlays), a) in enumerate(zip(panels, imgs)):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        lo, hi = limits[a.shape[0]]
        if a.shape[0] == 1:
            ax.imshow(a[0], cmap="gray", vmin=lo[0], vmax=hi[0], interpolation="nearest")
        else:
            rgb = (a - lo[:, None, None]) / (hi - lo)[:, None, None]
            ax.imshow(np.clip(np.nan_to_num(rgb), 0, 1).transpose(1, 2, 0), interpolation="nearest")
        for j, (name, mask) in enumerate((overlays or {}).items()):
            m = np.asarray(mask.detach().cpu() if hasattr(mask, "detach") else mask).squeeze().astype(bool)
            if m.shape != a.shape[1:]:
                raise ValueError(f"panel {title!r}: mask {name!r} has shape {m.shape}, image {a.shape[1:]}")
            colour = _OVERLAY_COLOURS.get(name, _FALLBACK_COLOURS[j % len(_FALLBACK_COLOURS)])
            rgba = np.zeros(m.shape + (4,))
            rgba[m] = (*colour, alpha)
            ax.imshow(rgba, interpolation="nearest")
            legend[name] = colour
        ax.set_title(str(title), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if legend:
        fig.legend(
            handles=[Patch(color=c, alpha=alpha, label=k) for k, c in legend.items()],
            loc="lower center",
            ncol=len(legend),
            fontsize=8,
        )
    fig.tight_layout(rect=(0, 0.05 if legend else 0, 1, 1))
    return _save_figure(fig, out_png)
