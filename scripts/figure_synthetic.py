"""Render one synthetic scene (HR, one LR revisit, building and road masks) to docs/img/synthetic_scene.png.

Usage: python scripts/figure_synthetic.py [--size 384] [--seed 0] [--real-world] [--out docs/img/synthetic_scene.png]
Runs headless (matplotlib Agg); the figure is what the README shows as "the demo data".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from core.data.synthetic.towns import make_scene  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=384, help="HR size in pixels (multiple of 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frame", type=int, default=0, help="which LR revisit to show")
    parser.add_argument("--real-world", action="store_true", help="real-world-like revisits")
    parser.add_argument("--out", default=str(ROOT / "docs" / "img" / "synthetic_scene.png"))
    args = parser.parse_args(argv)

    scene = make_scene(size_hr=args.size, frames=max(args.frame + 1, 2), seed=args.seed, real_world=args.real_world)
    hr = scene.hr[0]
    lr = np.where(scene.lr_valid[args.frame], scene.lr[args.frame, 0], np.nan)
    vmin, vmax = np.percentile(hr, [1, 99])
    extent_hr = (0, hr.shape[1] * 10 / 3, 0, hr.shape[0] * 10 / 3)  # metres from the scene's corner

    fig, axes = plt.subplots(1, 4, figsize=(16, 4.6), constrained_layout=True)
    panels = [
        (hr, f"HR (10/3 m), {hr.shape[1]}x{hr.shape[0]} px", dict(cmap="gray", vmin=vmin, vmax=vmax)),
        (lr, f"LR revisit {args.frame} (10 m), {lr.shape[1]}x{lr.shape[0]} px", dict(cmap="gray", vmin=vmin, vmax=vmax)),
        (scene.masks["buildings"], f"buildings mask ({scene.masks['buildings'].mean():.1%})", dict(cmap="Reds", vmin=0, vmax=1)),
        (scene.masks["roads"], f"roads mask ({scene.masks['roads'].mean():.1%})", dict(cmap="Blues", vmin=0, vmax=1)),
    ]
    for ax, (img, title, kw) in zip(axes, panels):
        ax.imshow(img, extent=extent_hr, interpolation="nearest", **kw)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("m")
    axes[0].set_ylabel("m")
    version = "real-world-like" if args.real_world else "simulated"
    fig.suptitle(f"Synthetic scene {scene.name} ({version}), NIR reflectance, {scene.crs}", fontsize=11)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
