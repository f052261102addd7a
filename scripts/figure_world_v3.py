"""Figure of synthetic world v3: one scene per city type, true colour next to its masks.

Each row pair shows a scene in true colour (B04/B03/B02, 2-98 % stretch per
band, as a GIS would show it) and the same image in grey with the building
mask in red and the road mask in yellow. Prints the building and road share
and the time per scene.

    python scripts/figure_world_v3.py --out /tmp/world_v3.png [--size 384] [--seed 0] [--types high_rise,...]
    python scripts/figure_world_v3.py --out docs/img/world_v3.png --crop 192 --palette   # the docs figure (< 600 KB)

``--crop N`` shows the central N x N HR pixels of each scene at full
resolution (the 3.33 m detail), ``--palette`` stores the PNG with a 256-colour
palette so that the docs figure stays small.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.data.synthetic.world_v3 import CITY_TYPES, make_world_v3_scene  # noqa: E402


def stretch(rgb: np.ndarray, lo: float = 2, hi: float = 98) -> np.ndarray:
    """[3, H, W] -> [H, W, 3] in 0..1, each band stretched between its percentiles."""
    out = np.empty(rgb.shape[1:] + (3,), np.float32)
    for i in range(3):
        a, b = np.percentile(rgb[i], [lo, hi])
        out[..., i] = np.clip((rgb[i] - a) / max(b - a, 1e-6), 0, 1)
    return out


def overlay(hr: np.ndarray, buildings: np.ndarray, roads: np.ndarray) -> np.ndarray:
    grey = stretch(hr[[2, 1, 0]]).mean(-1, keepdims=True) * 0.6
    img = np.repeat(grey, 3, -1)
    img[roads] = [1.0, 0.85, 0.0]
    img[buildings] = [0.9, 0.1, 0.1]
    return img


def main(argv: List[str] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--types", default=",".join(CITY_TYPES))
    ap.add_argument("--cols", type=int, default=2, help="scenes per row (each takes two panels)")
    ap.add_argument("--dpi", type=int, default=60)
    ap.add_argument("--crop", type=int, default=0, help="show the central N x N HR pixels (0: the whole scene)")
    ap.add_argument("--palette", action="store_true", help="write a 256-colour palette PNG (smaller file)")
    args = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    types = [t for t in args.types.split(",") if t]
    rows = int(np.ceil(len(types) / args.cols))
    fig, axes = plt.subplots(rows, 2 * args.cols, figsize=(4 * 2 * args.cols, 4.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k, city in enumerate(types):
        t0 = time.process_time()
        s = make_world_v3_scene(args.size, frames=1, seed=args.seed, city_type=city)
        dt = time.process_time() - t0
        e = s.extra
        print(f"{city:22s} {dt:5.2f} s  buildings {e['building_share']:.3f}  roads {e['road_share']:.3f}  "
              f"object-free {e['object_free_share']:.3f}  {e['place']} ({e['climate']}) {e.get('variant', '')} "
              f"sun el {e['sun']['elevation']}")
        r, c = divmod(k, args.cols)
        rgb, over = stretch(s.hr[[2, 1, 0]]), overlay(s.hr, s.masks["buildings"], s.masks["roads"])
        if args.crop:
            a = (args.size - args.crop) // 2
            rgb, over = rgb[a:a + args.crop, a:a + args.crop], over[a:a + args.crop, a:a + args.crop]
        axes[r, 2 * c].imshow(rgb, interpolation="nearest")
        axes[r, 2 * c].set_title(f"{city} ({e['place']}, {e['hr_date']})", fontsize=9)
        axes[r, 2 * c + 1].imshow(over, interpolation="nearest")
        axes[r, 2 * c + 1].set_title(f"b {e['building_share']:.2f}  r {e['road_share']:.2f}  free {e['object_free_share']:.2f}",
                                     fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out, dpi=args.dpi)
    if args.palette:
        from PIL import Image

        Image.open(args.out).convert("RGB").quantize(256).save(args.out, optimize=True)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
