"""Sentinel-2-like degradation: PSF blur, sub-pixel shift, 3x3 area sampling, noise.

One operator serves two jobs: it simulates LR revisits from an HR image
(:func:`simulate_frames`, :func:`simulate_dataset`) and it maps a super-resolved
image back to the LR grid for the consistency loss. It is therefore written in
torch, batched and differentiable (with respect to the image *and* the shifts).

The PSF is a Gaussian whose width follows from the band's MTF at the LR Nyquist
frequency. For a Gaussian PSF, ``MTF(f) = exp(-2 pi^2 sigma^2 f^2)``; at Nyquist
``f = 0.5`` cycles per LR pixel, so ``sigma_lr = sqrt(-ln(MTF) / (2 pi^2 * 0.25))``
and ``sigma_hr = scale * sigma_lr``. The MTF of the *whole* chain also includes
the detector footprint, which the 3x3 area mean models separately, so using the
full-system MTF for the Gaussian alone makes the simulation slightly blurrier
than the real instrument: we accept that (it errs on the hard side).

The sub-pixel shift is folded into the PSF: each sample is convolved with a
Gaussian centred at its own (dy, dx), integrated over each HR pixel (erf
differences). That is exact for the model, keeps the blur identical for every
shift (bilinear resampling would blur some frames more than others) and stays
separable. Blur, shift and the 3x3 area mean of one axis together are a banded
matrix, so the whole operator is ``A_y @ pad(hr) @ A_x^T``: two small matrix
products per image (BLAS), exact, and 2-5x faster here on CPU than grouped 1-channel
convolutions. Borders use reflect padding. Kernels are built in float32 (or
float64 for float64 input) whatever the input dtype, e.g. under bf16 autocast.

Convention: a shift (dy, dx) in HR pixels moves image content by +dy rows and
+dx columns (``out[y, x] = psf * in[y - dy, x - dx]``), so a feature's centroid
moves by ``(dy, dx) / scale`` LR pixels.
"""

from __future__ import annotations

import logging
import math
import zlib
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from affine import Affine
from torch import Tensor, nn

from ..io.geo import compose
from ..io.paths import is_inside, safe_name
from ..io.sentinel2 import MTF_NYQUIST, band_key
from ..jobs import OutputError
from .mus2 import find_mus2_scenes, iter_mus2
from .scene import (
    Scene,
    SceneError,
    list_scenes,
    load_split,
    make_split,
    read_scene,
    write_json_atomic,
    write_scene,
)

__all__ = [
    "S2_NIR_MTF",
    "DEFAULT_SIGMA_READ",
    "DEFAULT_GAIN",
    "psf_sigma_from_mtf",
    "sigma_for_bands",
    "Degradation",
    "add_noise",
    "simulate_frames",
    "simulate_scene",
    "simulate_dataset",
]

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]

# MTF at Nyquist of the 10 m bands. The mission requirement is 0.15 < MTF < 0.3;
# in-flight figures reported for S-2A/B sit near the top of that range, lowest in
# NIR. These are round, typical values, not a calibration: pass your own `mtf`.
S2_NIR_MTF = MTF_NYQUIST["B08"]
# Noise in reflectance units: read noise plus a signal-dependent (shot-like)
# term, std = sqrt(sigma_read^2 + gain * signal): about 0.002 at reflectance 0.3,
# i.e. an SNR near 150, the order of S-2's 10 m bands at reference radiance.
DEFAULT_SIGMA_READ = 1e-3
DEFAULT_GAIN = 1e-5
#: Most revisits one simulation may make: far beyond any real stack, far below what exhausts memory.
MAX_FRAMES = 256


def psf_sigma_from_mtf(mtf_nyquist: float, scale: int = 3) -> float:
    """Gaussian PSF sigma in **HR** pixels whose MTF at the LR Nyquist frequency is ``mtf_nyquist``."""
    if not 0.0 < mtf_nyquist < 1.0:
        raise ValueError(f"MTF at Nyquist must be in (0, 1), got {mtf_nyquist}")
    sigma_lr = math.sqrt(-math.log(mtf_nyquist) / (2.0 * math.pi**2 * 0.25))
    return scale * sigma_lr


def sigma_for_bands(bands: Sequence[str], scale: int = 3, mtf: Optional[Dict[str, float]] = None) -> List[float]:
    """PSF sigma (HR px) per band name; unknown bands get the NIR value (logged)."""
    table = {**MTF_NYQUIST, **{band_key(k) or k: v for k, v in (mtf or {}).items()}}
    out = []
    for b in bands:
        key = band_key(b) or str(b).upper()
        if key not in table:
            log.info("no MTF known for band %r; using the NIR value %.2f", b, S2_NIR_MTF)
        out.append(psf_sigma_from_mtf(table.get(key, S2_NIR_MTF), scale))
    return out


def _pixel_gaussian(offsets: Tensor, sigma: Tensor) -> Tensor:
    """Gaussian integrated over unit pixels centred at ``offsets``, normalised along the last axis."""
    s = sigma.clamp_min(1e-6) * math.sqrt(2.0)
    w = 0.5 * (torch.erf((offsets + 0.5) / s) - torch.erf((offsets - 0.5) / s))
    return w / w.sum(dim=-1, keepdim=True).clamp_min(1e-12)


class Degradation(nn.Module):
    """HR [B, C, H, W] -> LR [B, C, H/scale, W/scale]: shifted Gaussian PSF then area mean.

    ``sigma_hr`` is one value or one per channel (HR pixels); default from the
    NIR MTF. ``kernel_size`` fixes the support (odd); by default it grows with
    sigma and the largest shift so that the kernel never truncates the PSF.
    """

    def __init__(
        self,
        scale: int = 3,
        sigma_hr: Union[float, Sequence[float], None] = None,
        kernel_size: Optional[int] = None,
    ) -> None:
        super().__init__()
        if sigma_hr is None:
            sigma_hr = psf_sigma_from_mtf(S2_NIR_MTF, scale)
        sig = torch.as_tensor(sigma_hr, dtype=torch.float32).reshape(-1)
        if (sig < 0).any():
            raise ValueError(f"sigma_hr must be >= 0, got {sigma_hr}")
        if kernel_size is not None and (kernel_size < 1 or kernel_size % 2 == 0):
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        self.scale = int(scale)
        self.kernel_size = kernel_size
        self.register_buffer("sigma", sig, persistent=False)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, sigma_hr={[round(float(s), 3) for s in self.sigma]}"

    def _radius(self, shifts: Optional[Tensor]) -> int:
        if self.kernel_size is not None:
            return self.kernel_size // 2
        smax = float(shifts.detach().abs().max()) if shifts is not None and shifts.numel() else 0.0
        return int(math.ceil(3.5 * float(self.sigma.max()) + smax)) + 1

    def _prepare(self, hr: Tensor, shifts: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor, int]:
        """Checked shifts [B, 2] and per-channel sigma [C], plus the kernel radius."""
        if hr.ndim != 4:
            raise ValueError(f"expected hr [B, C, H, W], got shape {tuple(hr.shape)}")
        b, c = hr.shape[:2]
        if shifts is None:
            shifts = hr.new_zeros(b, 2)
        # kernels are always built in float32: offsets + shifts in bf16 would be off by ~0.03 px
        shifts = shifts.to(device=hr.device, dtype=torch.float32)
        if shifts.shape != (b, 2):
            raise ValueError(f"expected shifts [B, 2] = [{b}, 2] (dy, dx in HR px), got {tuple(shifts.shape)}")
        sigma = self.sigma.to(device=hr.device, dtype=torch.float32)
        if sigma.numel() not in (1, c):
            raise ValueError(f"{sigma.numel()} PSF sigmas for {c} channels")
        return shifts, sigma.expand(c), sigma, self._radius(shifts)

    def _axis_operator(self, n: int, shift: Tensor, sigma: Tensor, r: int, pool: int) -> Tensor:
        """Matrix [B, C, n / pool, n + 2r] that blurs (shifted PSF) and area-averages one axis of a padded image.

        Row i averages the ``pool`` blurred samples ``pool*i .. pool*i + pool - 1``; each blurred sample
        ``y`` weighs padded input ``y + r + o`` by the kernel at offset ``o`` (content moves by +shift,
        so the kernel peaks at ``o = -shift``).
        """
        offsets = torch.arange(-r, r + 1, device=shift.device, dtype=shift.dtype)
        k = _pixel_gaussian(offsets[None, None] + shift[:, None, None], sigma[None, :, None])  # [B, C, K]
        b, c, ksize = k.shape
        m = n // pool
        # the pooled row's weights: the kernel convolved with a box of `pool` taps, length K + pool - 1
        row = k.new_zeros(b, c, ksize + pool - 1)
        for t in range(pool):
            row = row + F.pad(k, (t, pool - 1 - t)) / pool
        cols = (torch.arange(m, device=k.device) * pool)[:, None] + torch.arange(ksize + pool - 1, device=k.device)
        op = k.new_zeros(b, c, m, n + 2 * r)
        return op.scatter(-1, cols.expand(b, c, m, -1), row[:, :, None, :].expand(b, c, m, -1))

    def _operate(self, hr: Tensor, shifts: Optional[Tensor], pool: int) -> Tensor:
        # Not `_apply`: that name is nn.Module's hook behind .to() / .cuda(), which it would break.
        shifts, sigma, _, r = self._prepare(hr, shifts)
        b, c, h, w = hr.shape
        mode = "reflect" if r < h and r < w else "replicate"
        work = torch.float64 if hr.dtype == torch.float64 else torch.float32
        x = F.pad(hr.to(work), (r, r, r, r), mode=mode)
        shifts, sigma = shifts.to(work), sigma.to(work)
        ay = self._axis_operator(h, shifts[:, 0], sigma, r, pool)  # [B, C, h/pool, H + 2r]
        ax = self._axis_operator(w, shifts[:, 1], sigma, r, pool)  # [B, C, w/pool, W + 2r]
        return (ay @ x @ ax.transpose(-1, -2)).to(hr.dtype)

    def blur(self, hr: Tensor, shifts: Optional[Tensor] = None) -> Tensor:
        """Shifted PSF convolution on the HR grid (same size as ``hr``)."""
        return self._operate(hr, shifts, pool=1)

    def forward(self, hr: Tensor, shifts: Optional[Tensor] = None) -> Tensor:
        """Blur, shift and 3x3 area-average in one separable linear map: ``A_y @ pad(hr) @ A_x^T``.

        Two small matrix products per image beat two depthwise convolutions plus pooling by
        an order of magnitude on CPU (BLAS vs the 1-channel convolution path) and are exact.
        """
        h, w = hr.shape[-2:]
        if h % self.scale or w % self.scale:
            raise ValueError(f"HR size {h}x{w} is not a multiple of the scale {self.scale}")
        return self._operate(hr, shifts, pool=self.scale)


def add_noise(
    lr: Tensor,
    sigma_read: float = DEFAULT_SIGMA_READ,
    gain: float = DEFAULT_GAIN,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    """Add Gaussian read noise plus signal-dependent (Poisson-like) noise; differentiable in ``lr``."""
    var = sigma_read**2 + gain * lr.detach().clamp_min(0.0)
    gen_device = generator.device if generator is not None else lr.device
    noise = torch.randn(lr.shape, generator=generator, dtype=lr.dtype, device=gen_device).to(lr.device)
    return lr + noise * var.sqrt()


def _torch_generator(seed_parts: Sequence[int]) -> Tuple[torch.Generator, np.random.Generator]:
    ss = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in seed_parts])
    gen = torch.Generator().manual_seed(int(ss.generate_state(1, dtype=np.uint64)[0]) >> 1)
    return gen, np.random.default_rng(ss)


def simulate_frames(
    hr: np.ndarray,
    hr_valid: Optional[np.ndarray],
    frames: int = 9,
    seed: Union[int, Sequence[int]] = 0,
    max_shift_lr: float = 1.0,
    scale: int = 3,
    sigma_hr: Union[float, Sequence[float], None] = None,
    sigma_read: float = DEFAULT_SIGMA_READ,
    gain: float = DEFAULT_GAIN,
    shifts_hr: Optional[np.ndarray] = None,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """T LR revisits from one HR image [C, H, W] (reflectance).

    Frame 0 is unshifted (the reference grid); the others get uniform random
    shifts within +-``max_shift_lr`` LR pixels unless ``shifts_hr`` [T, 2] is
    given. An LR pixel is invalid when invalid HR pixels carry more than 1 % of
    its PSF weight. Returns (lr [T, C, h, w] float32, lr_valid [T, h, w], shifts_hr [T, 2]).
    """
    if hr.ndim != 3:
        raise ValueError(f"expected hr [C, H, W], got shape {hr.shape}")
    check_frames(frames)
    if not (isinstance(max_shift_lr, (int, float)) and math.isfinite(max_shift_lr) and max_shift_lr >= 0):
        raise SceneError(f"the largest shift must be a number of LR pixels >= 0, got {max_shift_lr!r}")
    seeds = [seed] if isinstance(seed, (int, np.integer)) else list(seed)
    gen, rng = _torch_generator(seeds)
    if shifts_hr is None:
        shifts_hr = rng.uniform(-max_shift_lr * scale, max_shift_lr * scale, size=(frames, 2))
        shifts_hr[0] = 0.0
    shifts_hr = np.asarray(shifts_hr, dtype=np.float64)
    if shifts_hr.shape != (frames, 2):
        raise ValueError(f"shifts_hr must be [{frames}, 2], got {shifts_hr.shape}")
    op = Degradation(scale=scale, sigma_hr=sigma_hr)
    x = torch.from_numpy(np.ascontiguousarray(hr, dtype=np.float32))[None].expand(frames, -1, -1, -1)
    s = torch.from_numpy(shifts_hr.astype(np.float32))
    with torch.no_grad():
        lr = add_noise(op(x, s), sigma_read=sigma_read, gain=gain, generator=gen).clamp_min_(0.0)
        if hr_valid is None or hr_valid.all():
            valid = torch.ones(frames, lr.shape[-2], lr.shape[-1], dtype=torch.bool)
        else:
            v = torch.from_numpy(hr_valid.astype(np.float32))[None, None].expand(frames, 1, -1, -1)
            deg_v = Degradation(scale=scale, sigma_hr=float(op.sigma.max()))(v.contiguous(), s)
            valid = (1.0 - deg_v[:, 0]) < 0.01
    lr_np = lr.numpy().astype(np.float32)
    valid_np = valid.numpy()
    lr_np[np.broadcast_to(~valid_np[:, None], lr_np.shape)] = 0.0
    return lr_np, valid_np, shifts_hr


def check_frames(frames: object) -> int:
    """``frames`` when it is a usable number of revisits to simulate, else a :class:`SceneError`."""
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or not 1 <= frames <= MAX_FRAMES:
        raise SceneError(f"the number of revisits (frames) must be a whole number from 1 to {MAX_FRAMES}, "
                         f"got {frames!r}")
    return int(frames)


def simulate_scene(
    scene: Scene,
    frames: int = 9,
    seed: int = 0,
    max_shift_lr: float = 1.0,
    mtf: Optional[Dict[str, float]] = None,
    sigma_read: float = DEFAULT_SIGMA_READ,
    gain: float = DEFAULT_GAIN,
) -> Scene:
    """A simulated copy of ``scene``: new LR revisits from its HR image, same HR, masks and georeferencing."""
    if scene.hr is None or scene.hr_valid is None:
        raise SceneError(f"scene {scene.name!r}: has no HR image to simulate LR revisits from")
    sigmas = sigma_for_bands(scene.bands, scene.scale, mtf)
    lr, lr_valid, shifts = simulate_frames(
        scene.hr,
        scene.hr_valid,
        frames=frames,
        seed=(seed, zlib.crc32(scene.name.encode("utf-8"))),
        max_shift_lr=max_shift_lr,
        scale=scene.scale,
        sigma_hr=sigmas,
        sigma_read=sigma_read,
        gain=gain,
    )
    extra = {k: v for k, v in scene.extra.items() if not str(k).startswith("_")}
    extra.update(
        simulated=True,
        simulation={
            "seed": seed,
            "psf_sigma_hr": [round(s, 4) for s in sigmas],
            "shifts_hr": np.round(shifts, 4).tolist(),
            "sigma_read": sigma_read,
            "gain": gain,
            "max_shift_lr": max_shift_lr,
        },
    )
    return Scene(
        name=scene.name,
        lr=lr,
        lr_valid=lr_valid,
        hr=scene.hr,
        hr_valid=scene.hr_valid,
        masks=dict(scene.masks),
        crs=scene.crs,
        lr_transform=compose(scene.hr_transform, Affine.scale(scene.scale)),
        hr_transform=scene.hr_transform,
        bands=list(scene.bands),
        scale=scene.scale,
        dates=[],
        radiometric_scale=scene.radiometric_scale,
        split=scene.split,
        extra=extra,
    )


def _sources(src_root: Path, band: str) -> Tuple[int, Iterator[Tuple[Path, Scene]]]:
    """(folder, scene) of a scene-folder dataset, or else of a MuS2 tree (its split on ``scene.split``).

    The folder, not the name inside scene.json, names the simulated scene: it
    is a real entry of the source folder, and split.json lists folders.
    """
    try:
        paths = list_scenes(src_root)
    except SceneError as exc:
        try:
            dirs = find_mus2_scenes(src_root)
        except SceneError:
            raise exc from None
        mus2 = iter_mus2(src_root, band=band, with_masks=True)
        return len(dirs), ((Path(scene.extra.get("path", scene.name)), scene) for _, _, scene in mus2)

    def read_all() -> Iterator[Tuple[Path, Scene]]:
        for p in paths:
            scene = read_scene(p)
            scene.extra["source"] = str(p)
            yield p, scene

    return len(paths), read_all()


def simulate_dataset(
    src_root: Union[str, Path],
    out_root: Union[str, Path],
    frames: int = 9,
    seed: int = 0,
    max_shift_lr: float = 1.0,
    progress: Optional[Progress] = None,
    mtf: Optional[Dict[str, float]] = None,
    sigma_read: float = DEFAULT_SIGMA_READ,
    gain: float = DEFAULT_GAIN,
    band: str = "B8",
) -> List[Path]:
    """Write the *simulated* version of a dataset: same HR and masks, new LR revisits.

    ``src_root`` is a folder of scene folders (or one scene), or a MuS2 tree
    (then ``band`` picks the band). The source split is kept when it has one,
    otherwise a new one is made.
    """
    src_root, out_root = Path(src_root), Path(out_root)
    if src_root.resolve() == out_root.resolve():
        raise SceneError(f"{out_root}: output folder must differ from the source folder")
    if is_inside(src_root, out_root):
        raise OutputError(f"{out_root}: the output folder contains the source {src_root}; choose another one")
    check_frames(frames)
    count, scenes = _sources(src_root, band)
    out_root.mkdir(parents=True, exist_ok=True)
    written: List[Path] = []
    splits: Dict[str, List[str]] = {"train": [], "val": [], "test": []}
    for i, (folder, src) in enumerate(scenes):
        name = safe_name(folder.name, what=f"scene folder {folder}", error=OutputError)
        if progress:
            progress(i / count, f"simulating {name}")
        scene = simulate_scene(src, frames, seed, max_shift_lr, mtf=mtf, sigma_read=sigma_read, gain=gain)
        scene.extra["source"] = src.extra.get("source", src.extra.get("path", str(src_root)))
        written.append(write_scene(scene, out_root / name, root=out_root))
        if src.split in splits:
            splits[src.split].append(name)
    if (src_root / "split.json").exists() or any(splits.values()):
        if (src_root / "split.json").exists() and not any(splits.values()):
            names = {p.name for p in written}
            splits = {k: [n for n in v if n in names] for k, v in load_split(src_root).items()}
        write_json_atomic(out_root / "split.json", {**splits, "source": str(src_root)})
    else:
        make_split(out_root, seed=seed)
    if progress:
        progress(1.0, f"simulated {len(written)} scene(s)")
    return written
