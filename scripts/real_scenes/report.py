"""Tables, verdict lines and pictures (true colour, buildings red, roads yellow) of the real-scene evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .data import Scene
from .scoring import (
    AGREEMENT_FLOOR,
    METHODS,
    TARGET_LEVEL_AGREEMENT,
    level_ratio,
    pct,
    read_masks,
    times,
    verdicts,
)


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The markdown table printed at the end (one line per scene, level and method)."""
    head = ("| scene | level | method | object-free: road | building | road or building | residential: building "
            "| road | ratio | built-up: building | urban change (OSCD): road or building | whole crop: road | building "
            "| 3-px grid score |")
    lines = [head, "|" + "---|" * 3 + "---:|" * 11]
    for r in rows:
        lines.append(
            f"| {r['scene']} | {r['level']} | {r['title']} | {pct(r.get('object_free_road'))} | "
            f"{pct(r.get('object_free_building'))} | {pct(r.get('object_free_any'))} | "
            f"{pct(r.get('residential_building'))} | {pct(r.get('residential_road'))} | {times(r.get('ratio'))} | "
            f"{pct(r.get('built_up_building'))} | {pct(r.get('urban_change_any'))} | {pct(r.get('crop_road'))} | {pct(r.get('crop_building'))} | "
            f"{'n/a' if r.get('grid_score') is None else format(r['grid_score'], '.2f')} |")
    return "\n".join(lines)


def class_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Road / building share per land-use class (unshrunk polygons): which land the flags fall on."""
    names = sorted({c for r in rows for c in r.get("classes", {})})
    if not names:
        return ""
    lines = ["| scene | level | method | " + " | ".join(names) + " |", "|" + "---|" * 3 + "---:|" * len(names)]
    for r in rows:
        cells = []
        for c in names:
            v = r.get("classes", {}).get(c)
            cells.append("" if v is None else f"{pct(v['road'])} / {pct(v['building'])}")
        lines.append(f"| {r['scene']} | {r['level']} | {r['title']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict_lines(rows: Sequence[Mapping[str, Any]]) -> List[str]:
    """PASS/FAIL lines: the three per-run targets, then L1C vs L2A agreement per scene and method."""
    out: List[str] = []
    for r in rows:
        for target, ok, numbers in verdicts(r):
            state = "N/A " if ok is None else ("PASS" if ok else "FAIL")
            out.append(f"{state} {r['scene']} {r['level']} {r['title']}: {target} ({numbers})")
    by_key: Dict[Tuple[str, str], Dict[str, Mapping[str, Any]]] = {}
    for r in rows:
        by_key.setdefault((r["scene"], r["method"]), {})[r["level"]] = r
    overall: Dict[Tuple[str, str], List[Optional[bool]]] = {}
    for r in rows:
        overall.setdefault((r["scene"], r["title"]), []).extend(ok for _t, ok, _n in verdicts(r))
    for (scene, _method), levels in by_key.items():
        if len(levels) < 2:
            continue
        (la, a), (lb, b) = sorted(levels.items())[:2]
        for key, what in (("object_free_any", "object-free flagged"), ("residential_building",
                                                                       "residential flagged as building")):
            ratio = level_ratio(a.get(key), b.get(key))
            state = "N/A " if ratio is None else ("PASS" if ratio <= TARGET_LEVEL_AGREEMENT else "FAIL")
            out.append(f"{state} {scene} {a['title']}: {la} and {lb} agree within {TARGET_LEVEL_AGREEMENT:g}x on "
                       f"{what} ({pct(a.get(key))} vs {pct(b.get(key))}; ratio {times(ratio)}, shares below "
                       f"{100 * AGREEMENT_FLOOR:g} % count as {100 * AGREEMENT_FLOOR:g} %)")
            overall[(scene, a["title"])].append(ratio is not None and ratio <= TARGET_LEVEL_AGREEMENT)
    for (scene, title), oks in overall.items():
        judged = [ok for ok in oks if ok is not None]
        state = "FAIL" if not all(judged) else ("PASS" if judged and len(judged) == len(oks) else "N/A ")
        out.append(f"{state} {scene} {title}: all of issue 20's targets on this scene "
                   f"({sum(judged)} of {len(oks)} met{'; some cannot be judged without land use' if len(judged) < len(oks) else ''})")
    return out


def pictures(scene: Scene, level: str, lr_path: Path, outputs: Mapping[str, Tuple[Path, Path]],
             zones: Mapping[str, np.ndarray], out_dir: Path, stem: str) -> List[Path]:
    """Overview (whole crop), detail (192 px at 3.33 m) and texture (96 px of object-free land, no overlay).

    True colour, buildings red, roads yellow.

    The detail is the scene's own window, else the most built-up land use
    (the same for every level), else the most flagged land.

    Written with the project's own figure function (one shared stretch, so
    brightness differences are real), then reduced to a palette of at most 256 colours so
    that each PNG stays under 300 KB.
    """
    import rasterio
    from PIL import Image

    from core.evaluation.report import plot_sr_comparison

    def rgb(path: Path) -> np.ndarray:
        with rasterio.open(path) as ds:
            names = [str(d) for d in ds.descriptions]
            return np.stack([ds.read(names.index(b) + 1).astype(np.float32) * 1e-4 for b in ("B04", "B03", "B02")])

    images = {m: rgb(sr) for m, (sr, _mask) in outputs.items()}
    masks = {m: read_masks(mask) for m, (_sr, mask) in outputs.items()}
    shown = [m for m in ("bicubic", "hat_baseline", "hat_taskdriven") if m in outputs]
    free = zones.get("object_free")
    built = zones.get("built_up", zones.get("residential"))

    def truth_panel() -> Optional[Tuple[str, np.ndarray, Dict[str, np.ndarray]]]:
        if free is None:
            return None
        base = images["bicubic"]
        osm = scene.landuse is not None
        overlays = {("object-free land use" if osm else "water or dense vegetation"): free}
        if built is not None and built.any():
            overlays["residential / built-up" if osm else "built-up or bare (read from the image)"] = built
        return ("OSM land use on bicubic" if osm else "NDWI/NDVI zones on bicubic", base, overlays)

    written: List[Path] = []
    h = images["bicubic"].shape[1]
    d = min(192, h)
    y0, x0 = scene.detail if scene.detail else _busiest(masks, built, d)
    figures: List[Tuple[str, List[Tuple[str, Any, Optional[Dict[str, np.ndarray]]]]]] = []
    for name, crop in (("overview", (slice(None), slice(None))), ("detail", (slice(y0, y0 + d), slice(x0, x0 + d)))):
        panels: List[Tuple[str, Any, Optional[Dict[str, np.ndarray]]]] = [
            (f"{level}: bicubic, true colour", images["bicubic"][(slice(None),) + crop], None)]
        for m in shown:
            b, r, _v = masks[m]
            panels.append((f"{METHODS[m][0]} + segmentation", images[m][(slice(None),) + crop],
                           {"buildings": b[crop], "roads": r[crop]}))
        t = truth_panel()
        if t is not None:
            panels.append((t[0], t[1][(slice(None),) + crop], {k: v[crop] for k, v in t[2].items()}))
        figures.append((name, panels))
    if free is not None and free.any():
        # texture at 4x: the 96 px window with the most object-free land, no overlay (what the networks add where nothing is)
        z = 96
        fy, fx = _busiest({"zone": (free, free, free)}, free, z)
        crop = (slice(fy, fy + z), slice(fx, fx + z))
        figures.append(("texture", [(f"{level}: {METHODS[m][0]}, mostly object-free land (x4)",
                                     images[m][(slice(None),) + crop], None) for m in shown]))
    for name, panels in figures:
        path = out_dir / f"{stem}_{name}.png"
        plot_sr_comparison(panels, path, ncols=len(panels))
        with Image.open(path) as im:
            rgb_image = im.convert("RGB")
        for colours in (256, 192, 128, 96, 64):  # fewest colours last: the docs keep each picture under 300 KB
            rgb_image.quantize(colors=colours, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
                path, optimize=True)
            if path.stat().st_size < 290_000:
                break
        written.append(path)
    return written


def _busiest(masks: Mapping[str, Tuple[np.ndarray, np.ndarray, np.ndarray]], built: Optional[np.ndarray],
             d: int) -> Tuple[int, int]:
    """Top-left of a ``d`` px detail window: the most built-up land, else the most flagged pixels (any method)."""
    import torch
    import torch.nn.functional as F

    first = next(iter(masks.values()))[0]
    score = np.zeros(first.shape, np.float32)
    if built is not None and built.any():
        score += built
    else:
        for b, r, _v in masks.values():
            score += b | r
    pooled = F.avg_pool2d(torch.from_numpy(score)[None, None], d, stride=max(1, d // 4))[0, 0].numpy()
    i, j = np.unravel_index(int(np.argmax(pooled)), pooled.shape)
    step = max(1, d // 4)
    return int(i * step), int(j * step)
