"""Raster geometry for world v2: curves, distance fields, stamping, convolution, sun and shadow.

Why a module of its own: land, settlements and the renderer all draw with
the same few vectorised primitives (no per-pixel Python loops). Conventions:
arrays are [row, col] = [y, x], pixel centres at +0.5, north up (row grows to
the south); distances in HR pixels unless a name says metres. Sun azimuth is
clockwise from north, elevation above the horizon, both in degrees.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np

__all__ = [
    "smooth_curve",
    "polyline_field",
    "rect_sdf",
    "splat",
    "convolve_small",
    "fft_convolve",
    "dome_kernel",
    "dilate_disk",
    "boundary_distance",
    "blur3",
    "gaussian_fft",
    "sun_vector",
    "direct_ratio",
    "cast_shadow",
    "noise_1d",
    "resample",
    "tangents",
]


def smooth_curve(waypoints: np.ndarray, step: float = 2.0) -> np.ndarray:
    """Points [K, 2] (y, x) about ``step`` apart on a Catmull-Rom spline through ``waypoints`` [M, 2].

    Why a spline: roads, rivers and railways curve smoothly through the places
    they connect; straight segments between waypoints would leave kinks that no
    real road has.
    """
    p = np.asarray(waypoints, np.float64)
    if len(p) < 2:
        return p.copy()
    ext = np.concatenate([2 * p[:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])
    out = []
    for i in range(1, len(ext) - 2):
        p0, p1, p2, p3 = ext[i - 1], ext[i], ext[i + 1], ext[i + 2]
        seg = float(np.hypot(*(p2 - p1)))
        m = max(int(math.ceil(seg / step)), 1)
        t = (np.arange(m) / m)[:, None]
        t2, t3 = t * t, t * t * t
        out.append(
            0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2 + (-p0 + 3 * p1 - 3 * p2 + p3) * t3)
        )
    out.append(p[-1:])
    return np.concatenate(out)


def _bbox(y0: float, x0: float, y1: float, x1: float, pad: float, shape: Tuple[int, int]) -> Optional[Tuple[slice, slice]]:
    r0 = max(int(math.floor(min(y0, y1) - pad)), 0)
    r1 = min(int(math.ceil(max(y0, y1) + pad)) + 1, shape[0])
    c0 = max(int(math.floor(min(x0, x1) - pad)), 0)
    c1 = min(int(math.ceil(max(x0, x1) + pad)) + 1, shape[1])
    if r0 >= r1 or c0 >= c1:
        return None
    return slice(r0, r1), slice(c0, c1)


def polyline_field(
    points: np.ndarray, radius: float, shape: Tuple[int, int]
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distance to a polyline, arclength of the nearest point, and signed side, within ``radius``.

    Returns (dist, along, side) [H, W] float32: ``dist`` is +inf farther than
    ``radius``; ``along`` is the arclength (px) of the nearest point on the
    curve; ``side`` is +1 left / -1 right of the direction of travel. Computed
    segment by segment inside each segment's bounding box.
    """
    h, w = shape
    dist = np.full(shape, np.inf, np.float32)
    along = np.zeros(shape, np.float32)
    side = np.zeros(shape, np.float32)
    pts = np.asarray(points, np.float64)
    if len(pts) < 2:
        return dist, along, side
    seglen = np.hypot(*(pts[1:] - pts[:-1]).T)
    cum = np.concatenate([[0.0], np.cumsum(seglen)])
    for i in range(len(pts) - 1):
        (y0, x0), (y1, x1) = pts[i], pts[i + 1]
        box = _bbox(y0, x0, y1, x1, radius + 1.0, shape)
        if box is None or seglen[i] == 0:
            continue
        yy = np.arange(box[0].start, box[0].stop, dtype=np.float64)[:, None] + 0.5
        xx = np.arange(box[1].start, box[1].stop, dtype=np.float64)[None, :] + 0.5
        dy, dx = y1 - y0, x1 - x0
        t = np.clip(((yy - y0) * dy + (xx - x0) * dx) / (seglen[i] ** 2), 0.0, 1.0)
        d = np.hypot(yy - (y0 + t * dy), xx - (x0 + t * dx))
        cur = dist[box]
        better = (d < cur) & (d <= radius)
        if not better.any():
            continue
        cur[better] = d[better]
        along[box][better] = (cum[i] + t * seglen[i])[better]
        cross = dx * (yy - y0) - dy * (xx - x0)
        side[box][better] = np.where(cross >= 0, 1.0, -1.0)[better]
    return dist, along, side


def rect_sdf(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, half_l: float, half_w: float, angle: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Signed distance (px, negative inside) to a rotated rectangle, plus the local (u, v) coordinates.

    ``u`` runs along the long side (direction ``angle``, radians from the x axis
    towards +y), ``v`` across it.
    """
    c, s = math.cos(angle), math.sin(angle)
    dy, dx = yy - cy, xx - cx
    u = dx * c + dy * s
    v = -dx * s + dy * c
    qu, qv = np.abs(u) - half_l, np.abs(v) - half_w
    outside = np.hypot(np.maximum(qu, 0.0), np.maximum(qv, 0.0))
    inside = np.minimum(np.maximum(qu, qv), 0.0)
    return outside + inside, u, v


def splat(shape: Tuple[int, int], ys: np.ndarray, xs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Add ``weights`` [..., K] at K sub-pixel points (bilinear), so small stamps keep their exact centre.

    ``weights`` may carry leading channels ([C, K]); the result is then [C, H, W].
    """
    h, w = shape
    weights = np.asarray(weights, np.float64)
    chans = weights.reshape(-1, weights.shape[-1])
    fy, fx = np.asarray(ys, np.float64) - 0.5, np.asarray(xs, np.float64) - 0.5
    iy, ix = np.floor(fy).astype(np.int64), np.floor(fx).astype(np.int64)
    ty, tx = fy - iy, fx - ix
    idx, wts = [], []
    for oy, ox, wt in ((0, 0, (1 - ty) * (1 - tx)), (0, 1, (1 - ty) * tx), (1, 0, ty * (1 - tx)), (1, 1, ty * tx)):
        r, c = iy + oy, ix + ox
        ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        idx.append(np.where(ok, r * w + c, h * w))
        wts.append(wt)
    idx_all = np.concatenate(idx)
    wt_all = np.concatenate(wts)
    out = np.stack([np.bincount(idx_all, np.tile(ch, 4) * wt_all, minlength=h * w + 1)[:-1] for ch in chans])
    return out.reshape(weights.shape[:-1] + (h, w)).astype(np.float32)


def convolve_small(images: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Zero-padded convolution of [..., H, W] with a small centred odd kernel (torch, float32).

    Faster than an FFT for kernels of a few pixels, and exact.
    """
    import torch
    import torch.nn.functional as F

    lead = images.shape[:-2]
    h, w = images.shape[-2:]
    x = torch.from_numpy(np.ascontiguousarray(images, np.float32)).reshape(-1, 1, h, w)
    k = torch.from_numpy(np.ascontiguousarray(kernel[::-1, ::-1], np.float32))[None, None]
    with torch.no_grad():
        out = F.conv2d(x, k, padding=(kernel.shape[0] // 2, kernel.shape[1] // 2))
    return out.reshape(lead + (h, w)).numpy()


def fft_convolve(images: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Linear (zero-padded, not circular) convolution of [..., H, W] with a centred odd kernel."""
    kh, kw = kernel.shape
    h, w = images.shape[-2:]
    ph, pw = h + kh - 1, w + kw - 1
    fi = np.fft.rfft2(images, s=(ph, pw))
    fk = np.fft.rfft2(kernel, s=(ph, pw))
    out = np.fft.irfft2(fi * fk, s=(ph, pw))
    r0, c0 = kh // 2, kw // 2
    return out[..., r0:r0 + h, c0:c0 + w].astype(np.float32)


def dome_kernel(radius: float) -> np.ndarray:
    """A hemispherical crown profile of ``radius`` px, peak 1, integrated over each pixel (4x4 subsamples)."""
    r = int(math.ceil(radius + 0.5))
    sub = (np.arange(4) + 0.5) / 4 - 0.5
    off = np.arange(-r, r + 1, dtype=np.float64)
    yy = (off[:, None, None, None] + sub[None, None, :, None])
    xx = (off[None, :, None, None] + sub[None, None, None, :])
    d2 = (yy * yy + xx * xx) / (radius * radius)
    return np.sqrt(np.clip(1.0 - d2, 0.0, None)).mean(axis=(2, 3)).astype(np.float32)


def dilate_disk(mask: np.ndarray, radius: float) -> np.ndarray:
    """Pixels within Euclidean distance ``radius`` (centre to centre) of any True pixel."""
    if radius <= 0 or not mask.any():
        return mask.copy()
    r = int(math.floor(radius))
    off = np.arange(-r, r + 1)
    disk = ((off[:, None] ** 2 + off[None, :] ** 2) <= radius * radius + 1e-9).astype(np.float32)
    conv = convolve_small if r <= 12 else fft_convolve
    return conv(mask.astype(np.float32), disk) > 0.5


def boundary_distance(labels: np.ndarray, rmax: int) -> np.ndarray:
    """Chamfer-like distance (px, capped at ``rmax``) of every pixel to the nearest pixel of another label."""
    h, w = labels.shape
    edge = np.zeros((h, w), bool)
    dy = labels[1:] != labels[:-1]
    dx = labels[:, 1:] != labels[:, :-1]
    edge[1:] |= dy
    edge[:-1] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    dist = np.where(edge, 0.5, float(rmax)).astype(np.float32)
    front = edge
    for k in range(1, rmax):
        grown = front.copy()
        grown[1:] |= front[:-1]
        grown[:-1] |= front[1:]
        grown[:, 1:] |= front[:, :-1]
        grown[:, :-1] |= front[:, 1:]
        new = grown & (dist >= rmax)
        dist[new] = k + 0.5
        front = grown
    return dist


def blur3(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with a 5-tap kernel over the last two axes (edges replicated).

    Meant for the small optical blur of the HR image (sigma below one pixel).
    """
    if sigma <= 0:
        return img
    k = np.exp(-0.5 * (np.arange(-2, 3) / sigma) ** 2)
    k = (k / k.sum()).astype(np.float32)
    pad = [(0, 0)] * (img.ndim - 2)
    x = np.pad(img, pad + [(2, 2), (0, 0)], mode="edge")
    x = sum(k[i] * x[..., i:i + img.shape[-2], :] for i in range(5))
    x = np.pad(x, pad + [(0, 0), (2, 2)], mode="edge")
    return sum(k[i] * x[..., :, i:i + img.shape[-1]] for i in range(5)).astype(np.float32)


def gaussian_fft(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of [..., H, W] with reflected borders (FFT), for wide kernels (sigma of pixels to tens)."""
    if sigma <= 0:
        return img.astype(np.float32)
    h, w = img.shape[-2:]
    p = int(min(math.ceil(3 * sigma), h - 1, w - 1))
    pad = [(0, 0)] * (img.ndim - 2) + [(p, p), (p, p)]
    x = np.pad(img.astype(np.float32), pad, mode="reflect")
    fy = np.fft.fftfreq(x.shape[-2])[:, None]
    fx = np.fft.rfftfreq(x.shape[-1])[None, :]
    g = np.exp(-2 * (math.pi * sigma) ** 2 * (fy * fy + fx * fx))
    out = np.fft.irfft2(np.fft.rfft2(x) * g, s=x.shape[-2:])
    return out[..., p:p + h, p:p + w].astype(np.float32)


def sun_vector(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Unit vector towards the sun in (east, north, up)."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return np.array([math.cos(el) * math.sin(az), math.cos(el) * math.cos(az), math.sin(el)])


def direct_ratio(height_m: np.ndarray, pixel_m: float, azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Direct irradiance of a tilted surface relative to flat ground: cos(incidence) / sin(elevation), >= 0.

    ``height_m`` is a surface (terrain, crown relief, roof) in metres on the HR grid.
    """
    gy, gx = np.gradient(height_m.astype(np.float32), pixel_m)
    # gradient along rows points south; the normal is (-dz/de, -dz/dn, 1) with dz/dn = -gy
    se, sn, su = (float(v) for v in sun_vector(azimuth_deg, elevation_deg))
    cos_i = (-gx * se + gy * sn + su) / np.sqrt(gx * gx + gy * gy + 1.0)
    return (np.maximum(cos_i, 0.0) / su).astype(np.float32)


def cast_shadow(
    height_m: np.ndarray, pixel_m: float, azimuth_deg: float, elevation_deg: float, softness_m: float = 1.5
) -> np.ndarray:
    """Share of direct sun blocked by taller objects towards the sun (0 lit .. 1 shadow).

    Marches pixel by pixel towards the sun: a pixel is shadowed when an object
    ``k`` steps away is taller than the sun ray through it,
    ``h(p + k s) - k |s| pixel_m tan(elevation) > h(p)``; ``softness_m`` turns the
    excess height into a soft edge (penumbra, sub-pixel objects).
    """
    h, w = height_m.shape
    top = float(height_m.max()) if height_m.size else 0.0
    if top <= 0:
        return np.zeros_like(height_m, dtype=np.float32)
    s = sun_vector(azimuth_deg, elevation_deg)
    sy, sx = -s[1], s[0]  # towards the sun in (row, col): north is -row
    norm = math.hypot(sy, sx)
    sy, sx = sy / norm, sx / norm
    drop = pixel_m * math.tan(math.radians(elevation_deg))
    steps = int(math.ceil(top / drop)) + 1
    excess = np.full((h, w), -np.inf, np.float32)
    pad = steps + 1
    padded = np.pad(height_m.astype(np.float32), pad, mode="constant")
    seen = set()
    for k in range(1, steps + 1):
        oy, ox = int(round(k * sy)), int(round(k * sx))
        if (oy, ox) in seen:
            continue
        seen.add((oy, ox))
        dist = math.hypot(oy, ox)
        view = padded[pad + oy:pad + oy + h, pad + ox:pad + ox + w]
        np.maximum(excess, view - np.float32(dist * drop), out=excess)
    return np.clip((excess - height_m) / softness_m, 0.0, 1.0).astype(np.float32)


def noise_1d(n: int, corr: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean unit-std 1-D noise with Gaussian correlation length ``corr`` samples (FFT)."""
    f = np.fft.rfftfreq(n)
    spec = np.fft.rfft(rng.standard_normal(n)) * np.exp(-0.5 * (f * corr * 2 * math.pi) ** 2)
    spec[0] = 0.0
    out = np.fft.irfft(spec, n)
    return (out / (out.std() + 1e-12)).astype(np.float32)


def resample(pts: np.ndarray, step: float) -> np.ndarray:
    """Points about ``step`` px apart along a polyline (first and last kept)."""
    pts = np.asarray(pts, np.float64)
    seg = np.hypot(*(pts[1:] - pts[:-1]).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    if cum[-1] <= step:
        return pts[[0, -1]]
    t = np.linspace(0.0, cum[-1], int(math.ceil(cum[-1] / step)) + 1)
    return np.stack([np.interp(t, cum, pts[:, 0]), np.interp(t, cum, pts[:, 1])], 1)


def tangents(pts: np.ndarray) -> np.ndarray:
    """Unit tangent [K, 2] (dy, dx) at every point of a polyline."""
    t = np.gradient(pts, axis=0)
    return t / np.maximum(np.hypot(t[:, 0], t[:, 1])[:, None], 1e-9)
