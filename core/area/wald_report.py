"""The report of a Wald adaptation: JSON (everything), Markdown (for people) and a before/after figure.

Why a module of its own: :mod:`core.area.wald` decides what is measured; this
one only lays it out (tables with the bicubic reference beside before and
after, and a crop of the held-out 10 m -> 3.33 m output), so the wording and the
figure can change without touching the workflow. Files are written atomically.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..io.atomic import atomic_write
from .report import (
    area_name,
    finite_or_none,
    machine_line,
    recipe_record,
    write_json_and_figure,
    write_markdown,
)

__all__ = ["write_wald_report", "plot_wald", "wald_tables", "WALD_METRICS", "UPSCALED_METRICS"]

Metric = Tuple[str, str, bool]

#: 30 m -> 10 m on the held-out strip, against its 10 m reference: (key, label, higher is better).
WALD_METRICS: Tuple[Metric, ...] = (("cpsnr", "cPSNR 30 m -> 10 m (dB)", True), ("cssim", "cSSIM 30 m -> 10 m", True))
#: 10 m -> 3.33 m on the held-out strip (no reference image: what the output does, not how close it is).
UPSCALED_METRICS: Tuple[Metric, ...] = (
    ("grid_score", "3-px grid score (median over tiles)", False),
    ("buildings_fp_share", "object-free false positives, buildings", False),
    ("roads_fp_share", "object-free false positives, roads", False),
    ("buildings_dice", "Dice buildings", True),
    ("roads_dice", "Dice roads", True),
    ("consistency_cpsnr", "consistency cPSNR (dB)", True),
)


def _fmt(v: Any, key: str, signed: bool = False) -> str:
    f = finite_or_none(v)
    if f is None:
        return "n/a"
    digits = 2 if "cpsnr" in key or key.startswith("grid") else 3
    return f"{f:+.{digits}f}" if signed else f"{f:.{digits}f}"


def _table(title: str, before: Mapping[str, Any], after: Mapping[str, Any], metrics: Sequence[Metric]) -> List[str]:
    """``| metric | bicubic | before | after | change |`` rows for the metrics measured in ``before``."""
    lines = [f"| {title} | bicubic | before | after | change |", "|---|---:|---:|---:|---:|"]
    for key, label, higher in metrics:
        if key not in before and key not in after:
            continue  # e.g. false positives without masks
        b, a = finite_or_none(before.get(key)), finite_or_none(after.get(key))
        bic_key = key.replace("_share", "_share_bicubic") if key.endswith("_fp_share") else f"{key}_bicubic"
        bic = before.get(bic_key, after.get(bic_key))
        change = "n/a" if a is None or b is None else _fmt(a - b, key, signed=True)
        arrow = "higher is better" if higher else "lower is better"
        lines.append(f"| {label} ({arrow}) | {_fmt(bic, key)} | {_fmt(b, key)} | {_fmt(a, key)} | {change} |")
    return lines


def wald_tables(before: Mapping[str, Mapping[str, Any]], after: Mapping[str, Mapping[str, Any]]) -> str:
    """The two Markdown tables: 30 m -> 10 m against the reference, and the 10 m -> 3.33 m output."""
    bands = list(before["wald"].get("bands") or [])
    per_band = len(bands) > 1  # a multi-band network: each band's cPSNR and consistency too
    wald = WALD_METRICS + (tuple((f"cpsnr_{b}", f"cPSNR 30 m -> 10 m {b} (dB)", True) for b in bands)
                           if per_band else ())
    upscaled = UPSCALED_METRICS + (tuple((f"consistency_cpsnr_{b}", f"consistency cPSNR {b} (dB)", True)
                                         for b in bands) if per_band else ())
    lines = _table("held-out, 30 m -> 10 m", before["wald"], after["wald"], wald)
    lines += [""]
    lines += _table("held-out, 10 m -> 3.33 m", before["upscaled"], after["upscaled"], upscaled)
    return "\n".join(lines)


def _stretch(images: Sequence[np.ndarray]) -> Tuple[float, float]:
    vals = np.concatenate([np.asarray(i, dtype=np.float64)[np.isfinite(i)].ravel() for i in images])
    lo, hi = np.percentile(vals, [1, 99]) if vals.size else (0.0, 1.0)
    return float(lo), float(max(hi, lo + 1e-6))


def plot_wald(before: Mapping[str, Mapping[str, Any]], after: Mapping[str, Mapping[str, Any]], out_png: Path,
              title: str = "Wald adaptation: held-out strip", crop: int = 120) -> Path:
    """Bars of the held-out numbers and a crop of the first held-out tile's 10 m -> 3.33 m output.

    The crop shows, on one grey stretch: the 10 m revisit (nearest, so its
    pixels show), bicubic, the starting network's output and the adapted one's.
    """
    from matplotlib.figure import Figure

    pb, pa = before["upscaled"].get("_preview"), after["upscaled"].get("_preview")
    images = pb is not None and pa is not None
    fig = Figure(figsize=(10.0, 6.4 if images else 3.0))
    grid = fig.add_gridspec(2 if images else 1, 4, height_ratios=[1, 1.5] if images else [1])
    bars = [("wald", "cpsnr", "30 m -> 10 m: cPSNR (dB)"), ("wald", "cssim", "30 m -> 10 m: cSSIM"),
            ("upscaled", "grid_score", "10 m -> 3.33 m: 3-px grid score"),
            ("upscaled", "consistency_cpsnr", "10 m -> 3.33 m: consistency (dB)")]
    for j, (part, key, label) in enumerate(bars):
        ax = fig.add_subplot(grid[0, j])
        vals = [finite_or_none(before[part].get(f"{key}_bicubic")), finite_or_none(before[part].get(key)), finite_or_none(after[part].get(key))]
        names = ["bicubic", "before", "after"]
        keep = [(n, v) for n, v in zip(names, vals) if v is not None]
        colors = {"bicubic": "0.75", "before": "0.45", "after": "tab:blue"}
        ax.bar([n for n, _ in keep], [v for _, v in keep], color=[colors[n] for n, _ in keep])
        for x, (_n, v) in enumerate(keep):
            ax.text(x, v, f"{v:.2f}" if abs(v) >= 1 else f"{v:.3f}", ha="center", va="bottom", fontsize=8)
        if keep:
            lo = min(v for _, v in keep)
            hi = max(v for _, v in keep)
            pad = (hi - lo) * 0.6 + 1e-3 * max(1.0, abs(hi))
            ax.set_ylim(max(0.0, lo - pad) if key != "grid_score" else 0.0, hi + pad)
        ax.set_title(label, fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    if images:
        sr_b, sr_a, bic, lr = pb["sr"], pa["sr"], pb["bicubic"], pb["lr"]
        c = min(int(crop), sr_b.shape[0], sr_b.shape[1])
        c -= c % 3
        y0, x0 = (sr_b.shape[0] - c) // 2 // 3 * 3, (sr_b.shape[1] - c) // 2 // 3 * 3
        win = (slice(y0, y0 + c), slice(x0, x0 + c))
        lr_up = np.repeat(np.repeat(lr, 3, axis=0), 3, axis=1)
        panels = [(lr_up, "10 m revisit (nearest)"), (bic, f"bicubic x3 (tile grid {_fmt(pb.get('grid_score_bicubic'), 'grid')})"),
                  (sr_b, f"before (tile grid {_fmt(pb.get('grid_score'), 'grid')})"),
                  (sr_a, f"after (tile grid {_fmt(pa.get('grid_score'), 'grid')})")]
        lo, hi = _stretch([p[win] for p, _ in panels])
        for j, (img, label) in enumerate(panels):
            ax = fig.add_subplot(grid[1, j])
            ax.imshow(img[win], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_title(label, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.text(0.5, 0.02, f"held-out tile {pb['tile']}, {c} x {c} px crop at 3.33 m", ha="center", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    out_png = Path(out_png)
    with atomic_write(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    return out_png


def _sigmas(value: Any) -> str:
    """The PSF width, or one per band, as the report prints it."""
    return ", ".join(_fmt(v, "x") for v in value) if isinstance(value, (list, tuple)) else _fmt(value, "x")


def _strip(part: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in part.items() if not k.startswith("_") and k != "per_tile"}


def write_wald_report(stem: Path, area: Mapping[str, Any], wald: Mapping[str, Any],
                      before: Mapping[str, Mapping[str, Any]], after: Mapping[str, Mapping[str, Any]],
                      checkpoint: Path, start: Any, config: Any, seconds: float,
                      command: Optional[str]) -> Dict[str, Path]:
    """``<stem>.json``, ``<stem>.md`` and ``<stem>.png``; returns their paths (keys json, md, png)."""
    stem = Path(stem)
    machine = machine_line()
    payload = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "protocol": "Wald: the 10 m revisits degraded to 30 m with the S-2 PSF; target = each tile's clearest 10 m "
                    "revisit; applied at 10 m -> 3.33 m",
        "area": {k: area.get(k) for k in ("root", "train", "held_out", "skipped", "side", "tile_lr", "band_name",
                                           "bands", "crs", "frames", "size_lr", "vectors", "messages")},
        "wald": {k: wald.get(k) for k in ("root", "psf_sigma_10m_px", "noise", "seed", "tile_30m", "messages")},
        "start_checkpoint": str(start),
        "checkpoint": str(checkpoint),
        "recipe": recipe_record(config, selection_share=False),
        "before": {part: _strip(v) for part, v in before.items()},
        "after": {part: _strip(v) for part, v in after.items()},
        "per_tile": {when: {part: v.get("per_tile") for part, v in res.items()}
                     for when, res in (("before", before), ("after", after))},
        "seconds": round(seconds, 1),
        "machine": machine,
    }
    out = write_json_and_figure(stem, payload, lambda png: plot_wald(before, after, png))
    r = payload["recipe"]
    name = area_name(area)
    md = [
        f"# Wald self-supervised adaptation: {name}",
        "",
        "No HR image: the area's 10 m revisits were degraded to 30 m with the Sentinel-2 PSF (sigma "
        f"{_sigmas(wald.get('psf_sigma_10m_px'))} px at 10 m{', noise added' if wald.get('noise') else ''}) and the "
        "network was trained to give back each tile's clearest 10 m revisit, then applied at 10 m -> 3.33 m. "
        f"Held-out block: the {area.get('side')}ern strip, {len(area.get('held_out') or [])} tile(s) of "
        f"{area.get('tile_lr')} px at 10 m, separated from the {len(area.get('train') or [])} training tile(s) by a "
        "gap. The adapted weights are the last epoch's (the held-out tiles never choose them).",
        "",
        wald_tables(before, after),
        "",
        "30 m -> 10 m: cPSNR/cSSIM (3 px border, best shift, bias-corrected) against the held-out 10 m reference, "
        "mean over tiles; bicubic = the upsampled mean of the 30 m revisits. 10 m -> 3.33 m, measured on what the "
        "plugin writes (anchored, quantised): 3-px grid score (spectral peaks of a pixel-shuffle checkerboard; "
        "natural images and bicubic about 1-2), object-free false positives (share of land farther than 20 m from "
        "any mapped object that the frozen network flags; bicubic = the same network on the bicubic upsampling), "
        "Dice against the rasterized vectors, consistency cPSNR (output degraded back to 10 m vs the clearest "
        "revisit)." + (" With several bands, the 30 m -> 10 m cPSNR/cSSIM are over all bands jointly (one error, "
                       "as the evaluator computes it), the per-band rows each band alone, and the consistency "
                       "cPSNR the mean of the bands' values." if len(before["wald"].get("bands") or []) > 1 else ""),
        "",
        f"- started from: `{start}`",
        f"- adapted checkpoint: `{checkpoint}`",
        f"- recipe: {', '.join(r['losses'])} ({r['weighting']} weighting, reference {r['reference']}, proportions "
        f"{', '.join(f'{k} {v}' for k, v in r['proportions'].items() if v is not None) or 'none'}), "
        f"{r['epochs']} epoch(s) x {r['samples_per_epoch']} patches of {r['lr_patch']} px at 30 m, batch "
        f"{r['batch_size']}, lr {r['lr']:g}, seed {r['seed']}",
    ]
    return write_markdown(out, md, command, seconds, machine)
