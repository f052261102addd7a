"""Evaluation metrics: cPSNR, cSSIM, LPIPS (when its weights are on disk), segmentation counts.

cPSNR and cSSIM follow the PROBA-V (Kelvins) convention also used by MuS2's
evaluator: the SR image loses a ``border`` and the HR image slides over it by
``(u, v)`` in ``0..2*border``; at each shift the mean brightness difference over
clear pixels is removed. cPSNR is the best ``-10 log10(cMSE)`` (images in
[0, 1], so the peak is 1); cSSIM is SSIM at that same shift. cMSE is computed
in float64 on the CPU; on whole scenes the 49 shifts are ranked by FFT
cross-correlations and the best few recomputed exactly (2-5x faster than the
direct search here), and SSIM runs in float32 row strips, so memory stays
bounded whatever the scene size.

Segmentation scores come from confusion counts accumulated over whole scenes
(``SegCounts``), never from averaging per-patch Dice: a patch with one building
pixel would otherwise weigh as much as a dense city block.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor
from torchmetrics.functional.classification import binary_stat_scores
from torchmetrics.functional.image import structural_similarity_index_measure as ssim
from torchmetrics.functional.image.lpips import Alexnet, NetLinLayer, ScalingLayer

from ..models.losses import shift_errors

__all__ = [
    "ImageScores",
    "cpsnr",
    "cssim",
    "cpsnr_cssim",
    "aligned_pair",
    "LPIPSMetric",
    "SegCounts",
    "ALEXNET_FILE",
]

ArrayLike = Union[np.ndarray, Tensor]

# File name torchvision gives the AlexNet ImageNet weights in the torch hub cache
# (basename of torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url).
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"


def _to_chw(x: ArrayLike, name: str) -> Tensor:
    t = torch.as_tensor(np.ascontiguousarray(x) if not isinstance(x, Tensor) else x.detach()).to("cpu", torch.float64)
    if t.dim() == 2:
        t = t[None]
    if t.dim() != 3:
        raise ValueError(f"{name} must be a 2-D [H, W] or 3-D [C, H, W] image, got shape {tuple(t.shape)}")
    return t


def _prepare(sr: ArrayLike, hr: ArrayLike, valid: Optional[ArrayLike]) -> Tuple[Tensor, Tensor, Tensor]:
    s, h = _to_chw(sr, "SR image"), _to_chw(hr, "HR image")
    if s.shape != h.shape:
        raise ValueError(f"SR image {tuple(s.shape)} and HR image {tuple(h.shape)} must have the same shape")
    clear = torch.isfinite(h).all(dim=0)
    if valid is not None:
        v = torch.as_tensor(np.ascontiguousarray(valid) if not isinstance(valid, Tensor) else valid.detach()).to("cpu")
        if v.dim() == 3 and v.shape[0] == 1:
            v = v[0]
        if tuple(v.shape) != tuple(h.shape[-2:]):
            raise ValueError(f"valid mask {tuple(v.shape)} does not match the image size {tuple(h.shape[-2:])}")
        clear = clear & (v > 0.5 if v.dtype != torch.bool else v)
    return s, h, clear


@dataclass
class ImageScores:
    """cPSNR [dB], cSSIM, the chosen shift ``(u, v)`` and the per-channel bias removed there."""

    cpsnr: float
    cssim: float
    shift: Tuple[int, int]
    bias: Tuple[float, ...]
    cmse: float

    def as_dict(self) -> Dict[str, object]:
        return asdict(self)


# Above this many pixels the shift search runs on FFT correlations (then exact at the best few).
_FFT_MIN_PIXELS = 128 * 128
_REFINE = 4


def _exact_cmse(s: Tensor, h: Tensor, clear: Tensor, border: int, u: int, v: int) -> float:
    """cMSE at one shift, two-pass (bias first, then squared residuals): the reference value."""
    b = border
    H, W = h.shape[-2:]
    m = clear[u : u + H - 2 * b, v : v + W - 2 * b]
    if not bool(m.any()):
        return math.inf
    d = h[:, u : u + H - 2 * b, v : v + W - 2 * b][:, m] - s[:, b : H - b, b : W - b][:, m]  # [C, n]
    return float((d - d.mean(dim=1, keepdim=True)).square().mean())


def _cmse_fft(s: Tensor, h: Tensor, clear: Tensor, border: int) -> Tensor:
    """cMSE at every shift ``[2b+1, 2b+1]`` from a handful of FFT cross-correlations.

    Why: on whole scenes the direct search touches every pixel 49 times (seconds per
    megapixel); here ``cMSE * n = sum(m d^2) - (sum(m d))^2 / n`` with ``d = HR - SR``,
    and every masked sum over all shifts is one correlation of a full image with the
    SR-sized crop. Values carry FFT round-off (~1e-12 relative to the image energy),
    so the caller re-computes the best candidates exactly.
    """
    b = border
    C, H, W = h.shape
    n = 2 * b + 1
    size = (H, W)
    zero = torch.zeros((), dtype=h.dtype)
    mask = clear.to(h.dtype)
    hr0 = torch.where(clear, h, zero)  # [C,H,W], NaN-free
    src = s[:, b : H - b, b : W - b]

    def fft(x: Tensor) -> Tensor:
        return torch.fft.rfft2(x, s=size)

    def corr(fx: Tensor, fk: Tensor) -> Tensor:  # c[u, v] = sum_ij x[u+i, v+j] k[i, j]
        return torch.fft.irfft2(fx * fk.conj(), s=size)[..., :n, :n]

    f_mask, f_ones = fft(mask), fft(torch.ones(src.shape[-2:], dtype=h.dtype))
    count = corr(f_mask, f_ones).round()
    f_hr = fft(hr0)
    f_src = fft(src)
    sum_d = corr(f_hr, f_ones) - corr(f_mask, f_src)  # [C,n,n]
    sum_d2 = corr(fft(hr0 * hr0), f_ones) - 2.0 * corr(f_hr, f_src) + corr(f_mask, fft(src * src))
    safe = count.clamp_min(1.0)
    sse = (sum_d2 - sum_d.square() / safe).clamp_min(0.0).sum(dim=0)
    err = sse / (C * safe)
    return torch.where(count > 0.5, err, torch.full_like(err, math.inf))


def _best_shift(s: Tensor, h: Tensor, clear: Tensor, border: int, method: str = "auto") -> Tuple[float, Tuple[int, int]]:
    """Smallest cMSE over shifts and its ``(u, v)``; ties go to the first in raster order.

    ``method``: "direct" evaluates every shift pixel by pixel (as the loss does);
    "fft" ranks the shifts by :func:`_cmse_fft` and evaluates the best few exactly;
    "auto" uses "fft" on large finite images.
    """
    _check_shift_border(h, border)
    n = 2 * border + 1
    finite_sr = bool(torch.isfinite(s[:, border : h.shape[-2] - border, border : h.shape[-1] - border]).all())
    if method == "auto":
        method = "fft" if h.shape[-2] * h.shape[-1] >= _FFT_MIN_PIXELS and finite_sr else "direct"
    if method == "direct":
        err = shift_errors(s[None], h[None], clear[None], border=border, power=2, vectorize=False)[0].flatten()
        idx = int(torch.argmin(err))
        return float(err[idx]), (idx // n, idx % n)
    ranked = torch.argsort(_cmse_fft(s, h, clear, border).flatten(), stable=True)[:_REFINE].tolist()
    scored = sorted((_exact_cmse(s, h, clear, border, i // n, i % n), i) for i in ranked)
    err, idx = scored[0]
    return err, (idx // n, idx % n)


def _check_shift_border(h: Tensor, border: int) -> None:
    if border < 0 or h.shape[-2] <= 2 * border or h.shape[-1] <= 2 * border:
        raise ValueError(f"an image of {h.shape[-2]}x{h.shape[-1]} px is too small for a border of {border} px")


def aligned_pair(
    sr: ArrayLike, hr: ArrayLike, valid: Optional[ArrayLike] = None, border: int = 3, shift: Optional[Tuple[int, int]] = None
) -> Tuple[Tensor, Tensor, Tensor, Tuple[int, int], Tuple[float, ...]]:
    """The bias-corrected SR crop and the HR crop at ``shift`` (default: the best cPSNR shift).

    Returns ``(sr_corrected [C,h,w], hr_crop [C,h,w], clear [h,w], shift, bias)``,
    float64. Pixels that are not clear hold the same value on both sides: the mean
    of the clear HR pixels of that band. So windowed metrics (SSIM, LPIPS) see no
    difference there, whatever the invalid pixels held (nodata 0, NaN, garbage),
    and no shared artificial edge (HR nodata zeros on both sides would add a
    strong structure that both images "agree" on and inflate SSIM).
    """
    s, h, clear = _prepare(sr, hr, valid)
    if shift is None:
        _, shift = _best_shift(s, h, clear, border)
    u, v = shift
    b = border
    H, W = h.shape[-2:]
    hc = h[:, u : u + H - 2 * b, v : v + W - 2 * b]
    sc = s[:, b : H - b, b : W - b]
    m = clear[u : u + H - 2 * b, v : v + W - 2 * b]
    if not bool(m.any()):
        raise ValueError("no clear pixel to compare: the valid mask is empty at this shift")
    bias = tuple(float(((hc[c] - sc[c])[m]).mean()) for c in range(hc.shape[0]))
    sc = sc + torch.tensor(bias, dtype=sc.dtype)[:, None, None]
    fill = torch.tensor([float(hc[c][m].mean()) for c in range(hc.shape[0])], dtype=hc.dtype)[:, None, None]
    hc = torch.where(m, hc, fill)
    sc = torch.where(m, sc, fill)
    return sc, hc, m, (int(u), int(v)), bias


def _ssim_clear(sc: Tensor, hc: Tensor, m: Tensor, strip_pixels: int = 1 << 21) -> float:
    """Mean of torchmetrics' SSIM map over the clear pixels, computed in row strips.

    float32 (SSIM's constants dwarf float32 round-off) and strips with a 5-row halo
    (the 11x11 window's reach), so the map equals the whole-image map while memory
    stays bounded: torchmetrics' float64 path unfolds the image 121-fold (43 GB for a
    3000 x 3000 scene).
    """
    halo = 5
    H, W = sc.shape[-2:]
    rows = max(32, strip_pixels // max(1, W))
    total, count = 0.0, 0
    for r0 in range(0, H, rows):
        r1 = min(H, r0 + rows)
        a0, a1 = max(0, r0 - halo), min(H, r1 + halo)
        x = sc[None, :, a0:a1].to(torch.float32)
        y = hc[None, :, a0:a1].to(torch.float32)
        _, full = ssim(x, y, data_range=1.0, return_full_image=True)
        if full.shape[-2:] != x.shape[-2:]:
            raise RuntimeError(f"unexpected SSIM map shape {tuple(full.shape)} for an image of {tuple(x.shape)}")
        keep = full[0][:, r0 - a0 : r1 - a0]
        mk = m[r0:r1]
        total += float(keep[:, mk].double().sum())
        count += int(mk.sum()) * keep.shape[0]
    return total / count


def cpsnr_cssim(sr: ArrayLike, hr: ArrayLike, valid: Optional[ArrayLike] = None, border: int = 3) -> ImageScores:
    """cPSNR and cSSIM of one image pair, with the shift that maximizes cPSNR.

    cPSNR is ``+inf`` for a perfect match (cMSE = 0). cSSIM is torchmetrics' SSIM
    (Gaussian 11x11, sigma 1.5, data range 1) averaged over the clear pixels of the
    bias-corrected crop; with every pixel clear it equals torchmetrics' value. Pixels
    that are not clear are filled (see :func:`aligned_pair`) and left out of the mean.
    Raises ``ValueError`` when no pixel is clear.
    """
    s, h, clear = _prepare(sr, hr, valid)
    err, shift = _best_shift(s, h, clear, border)
    if math.isinf(err):
        raise ValueError("no clear pixel to compare: the valid mask is empty")
    psnr = math.inf if err <= 0 else -10.0 * math.log10(err)
    sc, hc, m, shift, bias = aligned_pair(s, h, clear, border, shift)
    return ImageScores(cpsnr=psnr, cssim=_ssim_clear(sc, hc, m), shift=shift, bias=bias, cmse=err)


def cpsnr(sr: ArrayLike, hr: ArrayLike, valid: Optional[ArrayLike] = None, border: int = 3) -> float:
    """Max over shifts ``(u, v)`` in ``0..2*border`` of ``-10 log10(cMSE(u, v))`` (PROBA-V Kelvins)."""
    s, h, clear = _prepare(sr, hr, valid)
    err, _ = _best_shift(s, h, clear, border)
    if math.isinf(err):
        raise ValueError("no clear pixel to compare: the valid mask is empty")
    return math.inf if err <= 0 else -10.0 * math.log10(err)


def cssim(sr: ArrayLike, hr: ArrayLike, valid: Optional[ArrayLike] = None, border: int = 3) -> float:
    """SSIM of the bias-corrected crop at the shift that maximizes cPSNR (see :func:`cpsnr_cssim`)."""
    return cpsnr_cssim(sr, hr, valid, border).cssim


# --------------------------------------------------------------------------- LPIPS


def _default_alexnet_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE


def _default_lpips_path() -> Optional[Path]:
    try:
        import torchmetrics.functional.image.lpips as tm_lpips
    except Exception:  # torchmetrics without its image extras
        return None
    return Path(tm_lpips.__file__).resolve().parent / "lpips_models" / "alex.pth"


class _AlexLpips(torch.nn.Module):
    """LPIPS v0.1 with the AlexNet backbone, assembled from torchmetrics' public layers.

    Why not torchmetrics' own LPIPS module: its constructor fetches the AlexNet
    weights through torchvision (a download on a machine without the cache) and
    reads the linear heads with a plain ``torch.load``. Here the backbone starts
    random (``pretrained=False``) and both weight files are read by
    :class:`LPIPSMetric` with ``weights_only=True``. The computation is LPIPS's:
    scale the inputs, unit-normalise each layer's features over channels,
    square their difference, weigh it with the 1x1 linear heads, average over
    space and sum the five layers.
    """

    CHANNELS = (64, 192, 384, 256, 256)

    def __init__(self, heads_path: Path) -> None:
        super().__init__()
        self.scaling = ScalingLayer()
        self.net = Alexnet(requires_grad=False, pretrained=False)
        self.lins = torch.nn.ModuleList(NetLinLayer(c) for c in self.CHANNELS)
        heads = torch.load(heads_path, map_location="cpu", weights_only=True)
        mine = {f"lins.{i}.model.0.weight": heads[f"lin{i}.model.1.weight"] if f"lin{i}.model.1.weight" in heads
                else heads[f"lin{i}.model.0.weight"] for i in range(len(self.CHANNELS))}
        self.load_state_dict(mine, strict=False)
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        fa, fb = self.net(self.scaling(a)), self.net(self.scaling(b))
        total = 0.0
        for lin, x, y in zip(self.lins, fa, fb):
            x = x / (x.square().sum(1, keepdim=True).sqrt() + 1e-10)
            y = y / (y.square().sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((x - y).square()).mean(dim=(2, 3), keepdim=True)
        return total


class LPIPSMetric:
    """LPIPS (AlexNet, v0.1 linear heads) built only from weight files already on disk.

    Two files are needed: the AlexNet ImageNet backbone (``alexnet_weights``; default
    ``<torch hub dir>/checkpoints/alexnet-owt-7be5be79.pth``, i.e. where torchvision
    would have cached it) and the LPIPS linear heads (``lpips_weights``; default the
    ``alex.pth`` shipped inside torchmetrics). When either is missing, ``available`` is
    False and ``reason`` names the missing file: nothing is ever downloaded, because
    the network is built with a randomly initialised backbone and both files are
    loaded with ``torch.load(weights_only=True)``. The network is torchmetrics' LPIPS
    module (the same one ``LearnedPerceptualImagePatchSimilarity(net_type="alex")``
    builds), fed a single band replicated to 3 channels and scaled to [-1, 1].
    """

    def __init__(
        self,
        alexnet_weights: Optional[Union[str, os.PathLike]] = None,
        lpips_weights: Optional[Union[str, os.PathLike]] = None,
        device: Union[str, torch.device] = "cpu",
    ):
        self.device = torch.device(device)
        self.alexnet_path = Path(alexnet_weights) if alexnet_weights else _default_alexnet_path()
        lp = Path(lpips_weights) if lpips_weights else _default_lpips_path()
        self.lpips_path = lp
        self.available = False
        self.reason = ""
        self.net: Optional[torch.nn.Module] = None
        if lp is None:
            self.reason = "torchmetrics' LPIPS module is not installed (pip install torchmetrics[image])"
            return
        for label, path in (("AlexNet backbone weights", self.alexnet_path), ("LPIPS linear weights", lp)):
            if not path.is_file():
                self.reason = f"{label} not found: {path}"
                return
        try:
            self.net = self._build()
        except Exception as exc:  # a corrupt or foreign file: report, never crash an evaluation
            self.reason = f"could not load LPIPS weights ({self.alexnet_path}, {lp}): {exc}"
            return
        self.available = True

    def _build(self) -> torch.nn.Module:
        net = _AlexLpips(self.lpips_path)
        state = torch.load(self.alexnet_path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise ValueError(f"{self.alexnet_path} does not hold a state dict")
        feats = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")} or dict(state)
        loaded = set()
        for sl in net.net.children():
            for idx, layer in sl.named_children():
                for pname, param in layer.named_parameters(recurse=False):
                    key = f"{idx}.{pname}"
                    if key not in feats:
                        raise ValueError(f"{self.alexnet_path} lacks AlexNet tensor features.{key}")
                    if tuple(feats[key].shape) != tuple(param.shape):
                        raise ValueError(
                            f"{self.alexnet_path}: features.{key} has shape {tuple(feats[key].shape)}, "
                            f"expected {tuple(param.shape)}"
                        )
                    with torch.no_grad():
                        param.copy_(feats[key])
                    loaded.add(key)
        if not loaded:
            raise ValueError(f"{self.alexnet_path} holds no AlexNet feature weights")
        return net.to(self.device).eval()

    def _to_net(self, x: Tensor) -> Tensor:
        x = x.to(self.device, torch.float32)
        return (x * 2.0 - 1.0).clamp(-1.0, 1.0)[:, None].expand(-1, 3, -1, -1)

    @torch.inference_mode()
    def __call__(
        self, sr: ArrayLike, hr: ArrayLike, valid: Optional[ArrayLike] = None, border: int = 3, align: bool = True
    ) -> float:
        """LPIPS distance of one image pair (lower is better), mean over bands.

        With ``align`` the pair is first registered like cPSNR (best shift, bias
        removed, non-clear pixels equal on both sides); otherwise used as given.
        """
        if not self.available or self.net is None:
            raise RuntimeError(f"LPIPS is not available: {self.reason}")
        if align:
            sc, hc, *_ = aligned_pair(sr, hr, valid, border)
        else:
            sc, hc, _ = _prepare(sr, hr, None)
        return float(self.net(self._to_net(sc), self._to_net(hc)).mean())

    def compute_or_none(self, *args, **kwargs) -> Optional[float]:
        """Like calling the metric, but None when the weights are absent (for report rows: "n/a")."""
        return self(*args, **kwargs) if self.available else None


# --------------------------------------------------------------------------- segmentation


def _flat_bool(x: ArrayLike, threshold: Optional[float]) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if threshold is None:
        return a.astype(bool).ravel() if a.dtype == bool else (a > 0.5).ravel()
    return (a > threshold).ravel()


@dataclass
class SegCounts:
    """Confusion counts over valid pixels, summed over every ``update`` (whole scenes).

    The counting is torchmetrics' ``binary_stat_scores``; this class adds what it
    does not do: summing over scenes (and over DDP ranks) and the policy below.

    Prediction = ``prob > threshold`` (0.5), target = mask > 0.5. Scores that are
    0/0 are reported as NaN ("undefined") rather than a made-up 0 or 1: Dice when
    neither prediction nor target has a positive pixel, precision with no
    predicted positive, recall with no true positive pixel, accuracy with no
    valid pixel. Over whole test scenes this only happens for object-free data.
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def update(
        self, prob: ArrayLike, target: ArrayLike, valid: Optional[ArrayLike] = None, threshold: float = 0.5
    ) -> SegCounts:
        p = _flat_bool(prob, threshold)
        g = _flat_bool(target, None)
        if p.size != g.size:
            raise ValueError(f"prediction ({p.size} px) and target ({g.size} px) differ in size")
        if valid is not None:
            v = _flat_bool(valid, None)
            if v.size != p.size:
                raise ValueError(f"valid mask ({v.size} px) and prediction ({p.size} px) differ in size")
            p, g = p[v], g[v]
        if p.size:
            # torchmetrics' stat scores: [tp, fp, tn, fn, support]; the prediction is already thresholded.
            tp, fp, tn, fn, _ = (int(x) for x in binary_stat_scores(torch.from_numpy(p), torch.from_numpy(g),
                                                                    threshold=0.5, validate_args=False))
            self.tp += tp
            self.fp += fp
            self.fn += fn
            self.tn += tn
        return self

    def merge(self, other: SegCounts) -> SegCounts:
        """A new SegCounts holding both sets of counts."""
        return SegCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)

    __add__ = merge

    def all_reduce(self) -> SegCounts:
        """Sum the counts over all ranks when ``torch.distributed`` is initialised (in place)."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            device = torch.device("cpu")
            if torch.distributed.get_backend() == "nccl":
                device = torch.device("cuda", torch.cuda.current_device())
            t = torch.tensor([self.tp, self.fp, self.fn, self.tn], dtype=torch.int64, device=device)
            torch.distributed.all_reduce(t)
            self.tp, self.fp, self.fn, self.tn = (int(x) for x in t.tolist())
        return self

    @staticmethod
    def _ratio(num: int, den: int) -> float:
        return num / den if den > 0 else math.nan

    @property
    def total(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def dice(self) -> float:
        return self._ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def accuracy(self) -> float:
        return self._ratio(self.tp + self.tn, self.total)

    @property
    def precision(self) -> float:
        return self._ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return self._ratio(self.tp, self.tp + self.fn)

    def as_dict(self) -> Dict[str, float]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "dice": self.dice,
            "accuracy": self.accuracy,
            "precision": self.precision,
            "recall": self.recall,
        }

