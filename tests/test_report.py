"""The experiment report: colour order, n/a handling, files and plots."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from core.evaluation.report import (
    MARKERS,
    colour_for,
    level_for,
    plot_sr_comparison,
    plot_training_curves,
    render_html,
    render_markdown,
    write_report,
)

GREEN, RED = colour_for(1.0), colour_for(0.0)

ROWS = [
    # spellings as a person would type them in a results sheet
    {"id": 1, "name": "cL1 baseline", "data version": "simulated", "cPSNR": 32.58, "cSSIM": 0.91,
     "LPIPS": 0.20, "building Dice": 0.157, "road Dice": 0.278},
    {"id": 2, "name": "cL1 + B-Dice | R-Dice", "data_version": "simulated", "cpsnr": 32.09, "cssim": 0.90,
     "lpips": 0.25, "dice_buildings": 0.392, "dice_roads": 0.380, "epochs": 30},
    {"id": 3, "name": "cL1 + 0.1 B-Dice", "data_version": "simulated", "cpsnr": 32.30, "cssim": 0.905,
     "lpips": None, "buildings_dice": 0.30, "roads_dice": 0.33},
    {"id": 4, "name": "real baseline", "data_version": "real", "cpsnr": 28.1, "cssim": 0.80,
     "lpips": float("nan"), "dice_buildings": 0.001, "dice_roads": 0.05},
    {"id": 5, "name": "real task-driven", "data_version": "real", "cpsnr": 27.9, "cssim": 0.79,
     "lpips": None, "dice_buildings": 0.45, "dice_roads": 0.30},
]


def md_row(md: str, exp_id: int) -> list:
    line = next(ln for ln in md.splitlines() if ln.startswith(f"| {exp_id} |"))
    return [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]


def test_colour_scale_runs_red_to_green():
    assert level_for(0.0) == 0 and level_for(1.0) == len(MARKERS) - 1
    assert [level_for(t) for t in (0.0, 0.3, 0.6, 0.9)] == [0, 1, 2, 3]
    reds = [int(colour_for(t)[1:3], 16) for t in (0.0, 0.5, 1.0)]
    greens = [int(colour_for(t)[3:5], 16) for t in (0.0, 0.5, 1.0)]
    assert reds[0] > reds[2] and greens[0] < greens[2]  # starts red, ends green


def test_markdown_best_is_green_worst_is_red_per_table():
    md = render_markdown(ROWS, "Grid")
    assert md.count("## Data: ") == 2 and "## Data: simulated" in md and "## Data: real" in md
    # columns: ID, name, cPSNR, cSSIM, LPIPS, B-Dice, R-Dice, extras
    r1, r2, r3 = md_row(md, 1), md_row(md, 2), md_row(md, 3)
    assert r1[2] == "🟩 32.58" and r2[2] == "🟥 32.09"  # higher cPSNR is better
    assert r1[4] == "🟩 0.2000" and r2[4] == "🟥 0.2500"  # lower LPIPS is better
    assert r3[4] == "n/a"  # never coloured, never a number
    assert r2[5] == "🟩 0.392" and r1[5] == "🟥 0.157"
    assert r3[5].startswith(("🟧", "🟨"))  # in between
    assert "cL1 + B-Dice \\| R-Dice" in md  # a pipe in a name does not break the table
    assert r2[-1] == "30" and r1[-1] == "n/a"  # extra column, uncoloured
    # tables are coloured independently: the real-world table has its own best/worst
    r4, r5 = md_row(md, 4), md_row(md, 5)
    assert r4[2] == "🟩 28.10" and r5[2] == "🟥 27.90"
    assert r4[4] == "n/a" and r5[4] == "n/a"
    assert r5[5] == "🟩 0.450"


def test_html_uses_real_backgrounds_and_escapes():
    page = render_html(ROWS, "Grid <1>")
    assert page.startswith("<!DOCTYPE html>") and "Grid &lt;1&gt;" in page
    row1 = next(r for r in page.split("<tr>") if "<td>1</td>" in r)
    row2 = next(r for r in page.split("<tr>") if "<td>2</td>" in r)
    assert f"background:{GREEN}" in row1.split("32.58")[0].rsplit("<td", 1)[1]
    assert f"background:{RED}" in row2.split("32.09")[0].rsplit("<td", 1)[1]
    row3 = next(r for r in page.split("<tr>") if "<td>3</td>" in r)
    assert '<td class="na">n/a</td>' in row3


def test_single_value_column_and_equal_values():
    md = render_markdown([{"id": 1, "name": "a", "cpsnr": 30.0}, {"id": 2, "name": "b", "cpsnr": 30.0}], "t")
    assert md_row(md, 1)[2] == "🟩 30.00" and md_row(md, 2)[2] == "🟩 30.00"


HISTORY = [
    {"epoch": e, "train": {"cl1": 0.05 / e, "dice_buildings": 0.8 - 0.05 * e},
     "weights": {"cl1": 1.0, "dice_buildings": 0.25 * (0.05 / e) / (0.8 - 0.05 * e)},
     "val": {"cpsnr": 30 + e, "dice_buildings": 0.1 * e}}
    for e in range(1, 5)
]


def is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_report_files(tmp_path):
    out = tmp_path / "report"
    paths = write_report(ROWS, out, "Experiment grid", histories={"2": HISTORY, "7": []})
    assert set(paths) == {"markdown", "html", "json", "curves_2"}
    assert is_png(paths["curves_2"])
    html_text = paths["html"].read_text(encoding="utf-8")
    assert "data:image/png;base64," in html_text and "src=\"curves_" not in html_text  # self-contained
    assert "![Training curves: experiment 2](curves_2.png)" in paths["markdown"].read_text(encoding="utf-8")
    rows = json.loads(paths["json"].read_text())  # standard JSON: NaN written as null
    assert rows[3]["lpips"] is None and rows[0]["cPSNR"] == 32.58
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_plots(tmp_path):
    png = plot_training_curves(HISTORY, tmp_path / "curves.png", title="run 1")
    assert is_png(png)
    with pytest.raises(ValueError, match="nothing|no train"):
        plot_training_curves([{"epoch": 1}], tmp_path / "empty.png")
    rng = np.random.default_rng(0)
    img = rng.random((48, 48))
    mask = np.zeros((48, 48), bool)
    mask[10:20, 10:30] = True
    panels = [
        ("baseline", img, {"buildings": mask, "roads": mask.T}),
        ("task-driven", img * 0.9, {"buildings": mask}),
        ("HR", img, None),
    ]
    assert is_png(plot_sr_comparison(panels, tmp_path / "cmp.png"))
    with pytest.raises(ValueError, match="mask 'roads'"):
        plot_sr_comparison([("x", img, {"roads": mask[:10]})], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_one_diverged_row_does_not_paint_the_others_alike():
    rows = [{"id": str(i), "name": f"run {i}", "data_version": "simulated", "cpsnr": v}
            for i, v in enumerate([25.0, 24.5, 24.0, -51.0], start=1)]
    md = render_markdown(rows, "Grid")
    cells = [md_row(md, i)[2][0] for i in range(1, 5)]
    assert cells == ["🟩", "🟨", "🟧", "🟥"]  # by rank: the three sane runs keep three colours
