"""Figure of synthetic world v2 scenes: docs/img/world_v2.png.

Rows are scenes; columns: true colour (B04/B03/B02) at 3.33 m, false colour
(B08/B04/B03) at 3.33 m, one 10 m revisit in true colour (real-world-like
version, so haze, clouds and date differences show), and the masks
(buildings red, roads yellow) over a grey HR image. Colours use a 2-98 %
percentile stretch per band, as a GIS would show them.

    python scripts/figure_world_v2.py [--out docs/img/world_v2.png] [--seeds 3 5 8 12] [--size 384]
    python scripts/figure_world_v2.py --spectrum   # also print radially averaged power spectra slopes
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.data.synthetic.world_v2 import make_world_scene  # noqa: E402


def stretch(rgb: np.ndarray, valid: np.ndarray = None, lo: float = 2, hi: float = 98) -> np.ndarray:
    """[3, H, W] -> [H, W, 3] in 0..1, each band stretched between its percentiles."""
    out = np.empty(rgb.shape[1:] + (3,), np.float32)
    for i in range(3):
        vals = rgb[i][valid] if valid is not None and valid.any() else rgb[i]
        a, b = np.percentile(vals, [lo, hi])
        out[..., i] = np.clip((rgb[i] - a) / max(b - a, 1e-6), 0, 1)
    return out


def radial_spectrum(img: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum (frequency in cycles/px, power), Hann-windowed."""
    h, w = img.shape
    win = np.outer(np.hanning(h), np.hanning(w))
    f = np.fft.fftshift(np.abs(np.fft.fft2((img - img.mean()) * win)) ** 2)
    yy, xx = np.indices(f.shape)
    r = np.hypot(yy - h // 2, xx - w // 2).astype(int)
    power = np.bincount(r.ravel(), f.ravel()) / np.maximum(np.bincount(r.ravel()), 1)
    k = np.arange(power.size) / h
    sel = (k > 2 / h) & (k < 0.5)
    return k[sel], power[sel]


def slope(img: np.ndarray) -> float:
    k, p = radial_spectrum(img)
    return float(np.polyfit(np.log(k), np.log(p), 1)[0])


def main(argv: List[str] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "docs" / "img" / "world_v2.png"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 5, 8, 12])
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--spectrum", action="store_true", help="print power-spectrum slopes at 3.33 m and 10 m")
    args = ap.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(args.seeds)
    fig, axes = plt.subplots(rows, 4, figsize=(16, 4.1 * rows))
    axes = np.atleast_2d(axes)
    for r, seed in enumerate(args.seeds):
        sim = make_world_scene(args.size, frames=9, seed=seed)
        real = make_world_scene(args.size, frames=9, seed=seed, real_world=True)
        hr = sim.hr
        # alternate rows show a clear and a cloudy revisit (when the scene has one)
        kinds = [f["kind"] for f in real.extra["frames"]]
        clear = [i for i, k in enumerate(kinds) if k == "clear"] or list(range(len(kinds)))
        cloudy = [i for i, k in enumerate(kinds) if k == "cloud"]
        t = cloudy[0] if cloudy and r % 2 else clear[len(clear) // 2]
        lr = real.lr[t]
        grey = np.clip((hr[3] - np.percentile(hr[3], 2)) / np.ptp(np.percentile(hr[3], [2, 98])), 0, 1)
        ov = np.stack([grey * 0.7] * 3, -1)
        ov[sim.masks["roads"]] = (1.0, 0.85, 0.1)
        ov[sim.masks["buildings"]] = (0.95, 0.1, 0.1)
        tiles = [
            (stretch(hr[[2, 1, 0]]), f"{sim.extra['archetype']}: true colour 3.33 m, {sim.extra['hr_date']}"),
            (stretch(hr[[3, 2, 1]]), "false colour B08/B04/B03, 3.33 m"),
            (stretch(lr[[2, 1, 0]], real.lr_valid[t]) * real.lr_valid[t][..., None],
             f"10 m revisit {real.dates[t]} ({real.extra['frames'][t]['kind']})"),
            (ov, f"masks: {sim.extra['n_buildings']} buildings, object-free {sim.extra['object_free_share']:.0%}"),
        ]
        for c, (img, title) in enumerate(tiles):
            ax = axes[r, c]
            ax.imshow(img, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        if args.spectrum:
            b8 = hr[3]
            lr8 = sim.lr[0, 3]
            print(f"seed {seed} ({sim.extra['archetype']}): spectral slope B08 3.33 m {slope(b8):.2f}, "
                  f"10 m {slope(lr8):.2f}; B04 3.33 m {slope(hr[2]):.2f}")
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
