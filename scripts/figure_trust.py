"""Trust map figure: invented detail beside the HR truth and the trust classes (docs/img/trust_map.png).

Usage: python scripts/figure_trust.py [--size 288] [--seed 910] [--models rams_baseline hat_taskdriven]

One synthetic world-v2 scene (9 simulated revisits, band B08). Rows: the HR
image with inventions planted after the simulation (3-px checkerboards of RMS
0.01 / 0.02 / 0.04 reflectance, painted roads and roofs that are not on the
ground), then the outputs of shipped checkpoints. Columns: the HR truth, the
output, where it is invented (it departs from both the truth and the bicubic
upsampling of its input by more than 0.02; ``core.evaluation.trust_eval``),
the trust classes the plugin writes (green supported, orange uncertain, red
likely invented), and the signal that found it (grid amplitude for the
planted row, instability for the networks). Everything goes through the
plugin's own jobs on GeoTIFFs; it prints each row's class shares and the
share of its invented pixels the classes catch. About 5 min on 2 CPU cores.
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
from matplotlib.colors import ListedColormap  # noqa: E402

from core import api  # noqa: E402
from core.data.scene import write_scene  # noqa: E402
from core.data.synthetic.world_v2 import make_world_scene  # noqa: E402
from core.evaluation.scene_predict import bicubic_baseline  # noqa: E402
from core.evaluation.trust_eval import invented_truth, plant, write_sr_like  # noqa: E402
from core.inference.trust_classes import CLASS_COLOURS, CLASS_NAMES, ClassRule  # noqa: E402
from core.options import SuperResolveOptions  # noqa: E402

MODELS = ROOT / "resources" / "models"
CLASS_CMAP = ListedColormap([np.array(CLASS_COLOURS[k][:3]) / 255 for k in (0, 1, 2)])


def _read(path: Path, band: int = 1) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(band)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=288, help="HR size in pixels (multiple of 3)")
    parser.add_argument("--seed", type=int, default=910)
    parser.add_argument("--models", nargs="*", default=["rams_baseline", "hat_taskdriven"])
    parser.add_argument("--out", default=str(ROOT / "docs" / "img" / "trust_map.png"))
    args = parser.parse_args(argv)
    from core.models.zoo import read_card

    four = [p.name for p in sorted(MODELS.glob("*.safetensors")) if len(read_card(p).bands) > 1]
    if four:  # the figure super-resolves and judges B08 alone with the shipped networks
        print(f"error: the shipped networks take several bands ({', '.join(four)}); this figure judges B08 with "
              "one-band networks: put one-band checkpoints in resources/models to remake it", file=sys.stderr)
        return 2

    scene = make_world_scene(size_hr=args.size, frames=9, seed=[args.seed, 1], object_free=False)
    b = list(scene.bands).index("B08")
    hr = scene.hr[b]
    bic = bicubic_baseline(scene, [b], list(range(scene.lr.shape[0])))[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="trust_fig_") as tmp:
        tmp = Path(tmp)
        folder = write_scene(scene, tmp / "scene")
        lr = sorted((folder / "lr").glob("*.tif"))
        planted, where = plant(hr, scene.masks, "checkerboard", args.seed)
        planted, where2 = plant(planted, scene.masks, "fake_objects", args.seed + 1)
        rule = ClassRule()
        outputs = [("HR + planted checkerboards, roads, roofs", write_sr_like(tmp / "planted.tif", planted, scene, lr,
                                                                              "B08"), 6,
                    f"grid amplitude (red from {rule.grid_amplitude:g})", 0.03)]
        for name in args.models:
            path = tmp / f"{name}.tif"
            api.super_resolve(lr, path, str(MODELS / f"{name}.safetensors"), SuperResolveOptions(band="B08"))
            outputs.append((f"{name} output", path, 4, f"instability (orange from {rule.instability_uncertain:g}, "
                                                        f"red from {rule.instability:g})", 2 * rule.instability_uncertain))
        for title, path, band, signal, vmax in outputs:
            s = api.trust_map(path)
            sr = _read(path).astype(np.float32) * np.float32(scene.radiometric_scale)
            truth = invented_truth(sr, hr, bic)
            cls = _read(s.class_path)
            caught = float((cls[truth] == 2).mean()) if truth.any() else float("nan")
            flagged = float((cls[truth] >= 1).mean()) if truth.any() else float("nan")
            print(f"{title}: {100 * truth.mean():.1f} % invented (truth); classes "
                  + ", ".join(f"{CLASS_NAMES[k]} {100 * v:.1f} %" for k, v in zip((0, 1, 2), (
                      s.supported_share, s.uncertain_share, s.invented_share)))
                  + f"; {100 * caught:.0f} % of the invented pixels likely invented, {100 * flagged:.0f} % at least "
                  "uncertain")
            rows.append((title, sr, truth, np.ma.masked_equal(cls, 255), _read(s.path, band), signal, vmax, s))

    fig, axes = plt.subplots(len(rows), 5, figsize=(17, 3.5 * len(rows) + 0.4))
    axes = np.atleast_2d(axes)
    lo, hi = np.percentile(hr, [1, 99])
    for i, (title, sr, truth, cls, sig, signal, vmax, s) in enumerate(rows):
        ax = axes[i]
        ax[0].imshow(hr, cmap="gray", vmin=lo, vmax=hi)
        ax[0].set_title("HR truth (B08)" if i == 0 else "")
        ax[1].imshow(sr, cmap="gray", vmin=lo, vmax=hi)
        ax[1].set_title(title, fontsize=10)
        ax[2].imshow(truth, cmap="gray_r")
        ax[2].set_title(f"invented (truth): {100 * truth.mean():.0f} %", fontsize=10)
        ax[3].imshow(cls, cmap=CLASS_CMAP, vmin=0, vmax=2, interpolation="nearest")
        ax[3].set_title(f"trust class: {100 * s.supported_share:.0f} / {100 * s.uncertain_share:.0f} / "
                        f"{100 * s.invented_share:.0f} %", fontsize=10)
        im = ax[4].imshow(sig, cmap="magma", vmin=0, vmax=vmax)
        ax[4].set_title(signal, fontsize=10)
        fig.colorbar(im, ax=ax[4], fraction=0.046, pad=0.02)
        for a in ax:
            a.set_xticks([])
            a.set_yticks([])
    fig.suptitle("Trust classes: green supported, orange uncertain, red likely invented (shares in the titles)",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
