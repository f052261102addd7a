"""Does the upsampler stamp a 3-pixel grid? Old pixel shuffle vs the guarded ones, after training.

Tiny RAMS and HAT networks are trained for a few hundred steps on natural-like
textures (fractal noise with flat parcels, reflectance 0.05-0.5), degraded to
LR with the project's Sentinel-2 operator (``core.data.degrade``: PSF,
sub-pixel shifts, 3x3 area mean, noise). The loss is L1 to the HR image plus,
by default, a task-like term that rewards edges everywhere
(``1 - mean(tanh(|grad SR| / tau))``): a crude stand-in for the Dice losses of
frozen segmentation networks, which push an SR network towards high-frequency
texture, and the cheapest such texture for a pixel shuffle is a grid.

For each architecture and upsampler, it prints the 3-px grid score
(``core.models.artifacts.grid_score``; natural images ~0.5-1.5, a visible
grid tens to thousands) of the network's output on a flat field and on a
held-out textured field, the 90th percentile of the score in 48-px windows of
the textured field (a grid confined to some places), the PSNR on the textured
field (fidelity: does the guard cost detail?), and the same for bicubic
upsampling of the reference frame. Scores and PSNR skip a 24-px (8 LR pixel)
border: zero-padded convolutions make every network's output near the edge of
a tile differ from its interior (tiled inference blends those parts away).
Same seed, data and steps for every variant.

Usage::

    python bench/bench_checkerboard.py                       # ~4 min on 2 idle CPU cores
    python bench/bench_checkerboard.py --upsamplers all --task-weight 0 0.3

``--upsamplers``: any of pixelshuffle, pixelshuffle_icnr, pixelshuffle_balanced,
pixelshuffle_degrid, resize_conv, or ``all`` (default: pixelshuffle resize_conv,
the old and the new default).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from core.data.degrade import Degradation, add_noise  # noqa: E402
from core.data.synthetic.towns import fractal_noise  # noqa: E402
from core.models.artifacts import grid_score, local_grid_energy  # noqa: E402
from core.models.registry import build  # noqa: E402
from core.models.upsampling import DEFAULT_UPSAMPLER, UPSAMPLERS  # noqa: E402

SCALE = 3
NORM = 0.5  # model units = reflectance / NORM
MODELS = {
    "rams": dict(arch="rams", filters=16, N=2, r=4, frames=9),
    "hat": dict(arch="hat", preset="hat-tiny"),
}


# --------------------------------------------------------------------------- data


def texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """HR reflectance [size, size]: fractal texture with a few flat parcels (fields, water)."""
    img = 0.25 + 0.07 * fractal_noise((size, size), 2.2, rng)
    for _ in range(int(rng.integers(2, 6))):
        h, w = (int(v) for v in rng.integers(size // 6, size // 2, 2))
        y, x = (int(v) for v in rng.integers(0, size - min(h, w), 2))
        img[y:y + h, x:x + w] = rng.uniform(0.05, 0.45)
    return np.clip(img, 0.01, 0.6).astype(np.float32)


def degrade(hr: torch.Tensor, frames: int, gen: torch.Generator) -> torch.Tensor:
    """HR [B, 1, H, W] -> LR [B, T, h, w]; frame 0 unshifted (the reference grid), others +-1 LR pixel."""
    op = Degradation(scale=SCALE)
    b = hr.shape[0]
    shifts = (torch.rand(b, frames, 2, generator=gen) * 2 - 1) * SCALE
    shifts[:, 0] = 0.0
    x = hr.repeat_interleave(frames, 0)
    lr = op(x, shifts.reshape(-1, 2))
    lr = add_noise(lr, generator=gen).clamp_min(0.0)
    return lr.reshape(b, frames, *lr.shape[-2:])


class Batches:
    """Random crops of a fixed pool of textures, degraded on the fly (deterministic per seed)."""

    def __init__(self, seed: int, frames: int, lr_patch: int, batch: int, pool: int = 24, size: int = 144) -> None:
        rng = np.random.default_rng(seed)
        self.pool = torch.from_numpy(np.stack([texture(size, rng) for _ in range(pool)]))[:, None]
        self.gen = torch.Generator().manual_seed(seed)
        self.frames, self.p, self.batch = frames, lr_patch * SCALE, batch

    def next(self) -> Tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, self.pool.shape[0], (self.batch,), generator=self.gen)
        side = self.pool.shape[-1] - self.p
        ys = (torch.randint(0, side // SCALE, (self.batch,), generator=self.gen) * SCALE).tolist()
        xs = (torch.randint(0, side // SCALE, (self.batch,), generator=self.gen) * SCALE).tolist()
        hr = torch.stack([self.pool[i, :, y:y + self.p, x:x + self.p] for i, y, x in zip(idx.tolist(), ys, xs)])
        return degrade(hr, self.frames, self.gen), hr


# --------------------------------------------------------------------------- training and scoring


def edge_reward_loss(sr: torch.Tensor, tau: float = 0.02) -> torch.Tensor:
    """1 - mean(tanh(|grad| / tau)) over the HR image: lower when there are edges everywhere."""
    gy = sr[..., 1:, :-1] - sr[..., :-1, :-1]
    gx = sr[..., :-1, 1:] - sr[..., :-1, :-1]
    return 1.0 - torch.tanh(torch.sqrt(gy * gy + gx * gx + 1e-12) / tau).mean()


def model_input(lr: torch.Tensor, arch: str) -> torch.Tensor:
    return lr / NORM if arch == "rams" else lr[:, :1] / NORM


def train(arch: str, upsampler: str, task_weight: float, steps: int, seed: int, lr_patch: int,
          batch: int) -> Tuple[torch.nn.Module, float]:
    kw = dict(MODELS[arch])
    kw.pop("arch")
    torch.manual_seed(seed)
    model = build(arch, upsampler=upsampler, **kw).train()
    frames = int(model.frames)
    data = Batches(seed, frames, lr_patch, batch)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    for _ in range(steps):
        lr, hr = data.next()
        sr = model(model_input(lr, arch)) * NORM
        loss = (sr - hr).abs().mean()
        if task_weight:
            loss = loss + task_weight * edge_reward_loss(sr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval(), time.perf_counter() - t0


def test_fields(frames: int, seed: int, size_lr: int = 64) -> Dict[str, Tuple[torch.Tensor, torch.Tensor]]:
    """Flat field and held-out texture: name -> (LR [1, T, h, w], HR [1, 1, 3h, 3w])."""
    gen = torch.Generator().manual_seed(seed + 1000)
    flat = torch.full((1, 1, size_lr * SCALE, size_lr * SCALE), 0.2)
    tex = torch.from_numpy(texture(size_lr * SCALE, np.random.default_rng(seed + 1000)))[None, None]
    return {name: (degrade(hr, frames, gen), hr) for name, hr in (("flat", flat), ("texture", tex))}


BORDER = 24  # HR pixels left out at each edge


def _crop(img: torch.Tensor, border: int = BORDER) -> np.ndarray:
    return img[0, 0, border:-border, border:-border].numpy()


def psnr(sr: torch.Tensor, hr: torch.Tensor) -> float:
    mse = float(((_crop(sr) - _crop(hr)) ** 2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def scores(out: Dict[str, torch.Tensor], fields: Dict[str, Tuple[torch.Tensor, torch.Tensor]]) -> Dict[str, float]:
    local = local_grid_energy(_crop(out["texture"]), window=48, step=12)
    return {"flat_grid": grid_score(_crop(out["flat"])), "texture_grid": grid_score(_crop(out["texture"])),
            "texture_local_p90": float(np.nanpercentile(local, 90)),
            "texture_psnr": psnr(out["texture"], fields["texture"][1])}


def bicubic(fields: Dict[str, Tuple[torch.Tensor, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    return {k: F.interpolate(lr[:, :1], scale_factor=SCALE, mode="bicubic", align_corners=False)
            for k, (lr, _) in fields.items()}


def main(argv: List[str] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archs", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--upsamplers", nargs="+", default=["pixelshuffle", DEFAULT_UPSAMPLER])
    ap.add_argument("--task-weight", nargs="+", type=float, default=[0.3],
                    help="weights of the edge-reward term to train with (0 = L1 only)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr-patch", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="also write the rows to this file")
    args = ap.parse_args(argv)
    ups = list(UPSAMPLERS) if args.upsamplers == ["all"] else args.upsamplers
    for u in ups:
        if u not in UPSAMPLERS:
            ap.error(f"unknown upsampler {u!r}; choose from {', '.join(UPSAMPLERS)} or all")
    torch.set_num_threads(args.threads)

    rows = []
    print(f"{args.steps} steps, batch {args.batch} of {args.lr_patch}x{args.lr_patch} LR patches; grid score: "
          "natural ~0.5-1.5, visible grid >> 10")
    header = (f"{'arch':<5} {'upsampler':<22} {'task w':>6} {'flat grid':>10} {'texture grid':>13} "
              f"{'local p90':>10} {'PSNR dB':>8} {'train s':>8}")
    for arch in args.archs:
        print(header)
        frames = int(MODELS[arch].get("frames", 1))
        fields = test_fields(frames, args.seed)
        with torch.inference_mode():
            ref = scores(bicubic(fields), fields)
        print(f"{arch:<5} {'bicubic':<22} {'':>6} {ref['flat_grid']:>10.2f} {ref['texture_grid']:>13.2f} "
              f"{ref['texture_local_p90']:>10.2f} {ref['texture_psnr']:>8.2f} {'':>8}")
        rows.append(dict(arch=arch, upsampler="bicubic", task_weight=None, **ref))
        for w in args.task_weight:
            for up in ups:
                model, secs = train(arch, up, w, args.steps, args.seed, args.lr_patch, args.batch)
                with torch.inference_mode():
                    out = {k: model(model_input(lr, arch)) * NORM for k, (lr, _) in fields.items()}
                s = scores(out, fields)
                print(f"{arch:<5} {up:<22} {w:>6.2f} {s['flat_grid']:>10.2f} {s['texture_grid']:>13.2f} "
                      f"{s['texture_local_p90']:>10.2f} {s['texture_psnr']:>8.2f} {secs:>8.1f}", flush=True)
                rows.append(dict(arch=arch, upsampler=up, task_weight=w, train_seconds=secs, **s))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
