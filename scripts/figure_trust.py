"""Trust map figure for the README: planted buildings that no revisit saw must light up.

Usage: python scripts/figure_trust.py [--size 288] [--seed 3] [--out docs/img/trust_map.png]

A synthetic scene's 9 LR revisits are simulated from its HR image (S-2 PSF,
sub-pixel shifts up to one LR pixel, noise). The "SR output" is that HR image
with bright roofs pasted in *after* the simulation, i.e. detail invented by a
model. ``core.trust.trust_map`` runs on the real GeoTIFFs; the script prints
the mean disagreement inside / outside the planted roofs and their ratio, and
draws LR revisit, SR output, disagreement (band 1) and revisit spread (band 2).
Runs headless (matplotlib Agg) in a few seconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import rasterio  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from core.data.scene import write_scene  # noqa: E402
from core.data.synthetic.towns import make_scene  # noqa: E402
from core.inference.trust import trust_map  # noqa: E402

ROOF_DN = 5000  # reflectance 0.5: a bright roof


def plant(hr: np.ndarray, n: int, seed: int):
    """Paste ``n`` bright rectangles (4-12 HR px a side); returns the new image and their boxes."""
    rng = np.random.default_rng(seed)
    out = hr.copy()
    boxes = []
    size = hr.shape[0]
    for _ in range(n):
        h, w = (int(v) for v in rng.integers(4, 13, 2))
        y, x = (int(v) for v in rng.integers(9, size - 9 - 12, 2))
        out[y : y + h, x : x + w] = ROOF_DN
        boxes.append((y, x, h, w))
    return out, boxes


def add_cloud(lr_paths, n: int) -> np.ndarray:
    """A soft bright cloud in 2 of the 9 revisits (in place), lower left: the revisits disagree there."""
    yy, xx = np.mgrid[0:n, 0:n]
    cy, cx, r = 0.72 * n, 0.2 * n, 0.1 * n
    blob = np.clip(1.5 - np.hypot(yy - cy, xx - cx) / r, 0, 1)  # flat top, soft edge
    for p in (lr_paths[2], lr_paths[6]):
        with rasterio.open(p, "r+") as ds:
            dn = ds.read(1).astype(np.float64)
            ds.write(np.clip(dn + 2500 * blob, 1, 65535).astype(np.uint16), 1)
    return blob >= 1.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=288, help="HR size in pixels (multiple of 3)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--roofs", type=int, default=12)
    parser.add_argument("--out", default=str(ROOT / "docs" / "img" / "trust_map.png"))
    args = parser.parse_args(argv)

    scene = make_scene(size_hr=args.size, frames=9, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="trust_fig_") as tmp:
        folder = write_scene(scene, Path(tmp) / "scene")
        lr_paths = sorted((folder / "lr").glob("*.tif"))
        cloud = add_cloud(lr_paths, args.size // 3)
        with rasterio.open(folder / "hr.tif") as ds:
            profile, hr_dn = ds.profile, ds.read(1)
        planted, boxes = plant(hr_dn, args.roofs, args.seed)
        sr_path = Path(tmp) / "sr_planted.tif"
        with rasterio.open(sr_path, "w", **profile) as ds:
            ds.write(planted, 1)
        consistent = trust_map(folder / "hr.tif", lr_paths, out_path=Path(tmp) / "consistent_trust.tif")
        summary = trust_map(sr_path, lr_paths)
        with rasterio.open(summary.path) as ds:
            dis, spread = ds.read(1), ds.read(2)
        with rasterio.open(lr_paths[2]) as ds:
            lr = ds.read(1) * 1e-4

    s = 3
    hr_mask = np.zeros(hr_dn.shape, bool)
    for y, x, h, w in boxes:
        hr_mask[y : y + h, x : x + w] = True
    lr_mask = hr_mask.reshape(hr_dn.shape[0] // s, s, hr_dn.shape[1] // s, s).mean(axis=(1, 3)) > 0.5
    inside, outside = float(dis[lr_mask].mean()), float(dis[~lr_mask].mean())  # "outside" includes the cloud
    ratio = inside / outside
    print(f"consistent output (HR image itself): mean disagreement {consistent.mean_disagreement:.4f}, "
          f"{100 * consistent.flagged_share:.2f} % flagged")
    print(f"planted roofs: mean disagreement inside {inside:.4f}, outside {outside:.4f}, ratio {ratio:.1f}")
    quiet = ~lr_mask & ~cloud
    print(f"revisit spread inside roofs {float(spread[lr_mask].mean()):.4f}, elsewhere {float(spread[quiet].mean()):.4f}")
    print(f"cloud in 2 of 9 revisits: disagreement {float(dis[cloud].mean()):.4f} (elsewhere "
          f"{float(dis[quiet].mean()):.4f}), spread {float(spread[cloud].mean()):.4f}")
    print(f"summary: mean {summary.mean_disagreement:.4f}, p95 {summary.p95_disagreement:.4f}, "
          f"{100 * summary.flagged_share:.1f} % of pixels above {summary.threshold:g}")

    refl = planted * 1e-4
    vmin, vmax = np.percentile(hr_dn * 1e-4, [1, 99])
    side = args.size * 10 / 3  # metres
    extent = (0, side, 0, side)
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.8), constrained_layout=True)
    panels = (
        (lr, "LR revisit 3 of 9 (10 m; cloud in 2 of them)", "gray", vmin, vmax),
        (refl, f"'SR output' with {len(boxes)} pasted roofs (3.3 m)", "gray", vmin, vmax),
        (dis, f"trust band 1: disagreement\n(inside/outside roofs = {ratio:.0f}x)", "Reds", 0.0, 0.1),
        (spread, "trust band 2: revisit spread\n(the cloud shows here, not in band 1)", "Reds", 0.0, 0.1),
    )
    for ax, (img, title, cmap, lo, hi) in zip(axes, panels):
        im = ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi, extent=extent, interpolation="nearest")
        ax.set_title(title, fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
        if cmap == "Reds":
            fig.colorbar(im, ax=ax, shrink=0.8, label="reflectance")
    for y, x, h, w in boxes:  # outline the pasted roofs on the SR panel
        px = 10 / 3
        axes[1].add_patch(Rectangle((x * px, side - (y + h) * px), w * px, h * px, fill=False, ec="tab:red", lw=0.8))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
