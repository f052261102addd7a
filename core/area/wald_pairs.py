"""Wald's protocol, the data half: each 10 m area tile becomes a 30 m -> 10 m training pair.

Why a module of its own: making the pairs is pure data work (degradation,
validity, masks, the folder format), tested and reused apart from the training
job of :mod:`core.area.wald`, whose docstring gives the choices made here and
why (the clearest revisit as target, every revisit degraded with its own
sub-pixel shift kept, noise added back, masks majority-pooled onto 10 m).
"""

from __future__ import annotations

import json
import shutil
import zlib
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from affine import Affine

from ..data.degrade import Degradation, add_noise, sigma_for_bands
from ..data.patches import choose_frames
from ..data.scene import SPLIT_JSON, Scene, read_scene, write_json_atomic, write_scene
from ..io.atomic import remove_orphans, replace_folder, temp_path_for
from ..io.geo import compose
from ..jobs import InputError, PathLike, Progress, check_cancel
from .tiles import read_area

__all__ = ["WALD_JSON", "SCALE", "MIN_WALD_TILE", "WaldPrepared", "wald_scene", "prepare_wald", "read_wald"]


WALD_JSON = "wald.json"
FORMAT_NAME = "s2sr-wald"
FORMAT_VERSION = 1
SCALE = 3
#: Smallest 30 m tile worth training on (LR pixels); the 10 m tile is 3x that.
MIN_WALD_TILE = 8
#: An LR pixel is valid when invalid 10 m pixels carry less than this share of its PSF weight
#: (the rule of :func:`core.data.degrade.simulate_frames`).
INVALID_WEIGHT = 0.01
#: The 10 m masks: a 10 m pixel is an object when most of its 3 x 3 block of 3.33 m mask pixels is.
MASK_MAJORITY = 0.5

def _rounded(sigma: Union[float, Sequence[float]]) -> Union[float, List[float]]:
    """A PSF width, or one per band, rounded for the record."""
    return round(float(sigma), 4) if isinstance(sigma, (int, float)) else [round(float(s), 4) for s in sigma]


def _tile_seed(seed: int, name: str) -> int:
    """A noise seed per tile that does not depend on the order tiles are written in."""
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode("utf-8"))) & 0x7FFFFFFF


def _majority(mask: np.ndarray, k: int) -> np.ndarray:
    h, w = mask.shape[0] // k, mask.shape[1] // k
    block = np.asarray(mask[: h * k, : w * k], dtype=np.float32).reshape(h, k, w, k)
    return block.mean(axis=(1, 3)) >= MASK_MAJORITY


def wald_scene(scene, sigma_hr: Union[float, Sequence[float]], noise: bool = True, seed: int = 0):
    """The 30 m -> 10 m training pair made from one 10 m area tile (see the module docstring).

    ``scene``: a :class:`core.data.scene.Scene` whose LR frames are the 10 m
    revisits (one band or several: ``sigma_hr`` is then one PSF width per
    band, each band degraded with its own). Returns a new Scene: ``hr`` = the clearest revisit
    (ties: the first), ``lr`` = every revisit degraded to 30 m, the reference
    first, the others in their order; masks majority-pooled onto the 10 m grid.
    Tiles whose sides are not multiples of 3 lose their last rows/columns.
    """
    k = SCALE
    t, c, h0, w0 = scene.lr.shape
    h, w = (h0 // k) * k, (w0 // k) * k
    if h < MIN_WALD_TILE * k or w < MIN_WALD_TILE * k:
        raise InputError(f"tile {scene.name}: {w0} x {h0} px at 10 m is too small for a 30 m -> 10 m pair "
                         f"(at least {MIN_WALD_TILE * k} px a side)")
    lr10 = np.asarray(scene.lr[:, :, :h, :w], dtype=np.float32)
    valid10 = np.asarray(scene.lr_valid[:, :h, :w], dtype=bool)
    ref = choose_frames(valid10.reshape(t, -1).mean(axis=1), 1)[0]
    order = [ref] + [i for i in range(t) if i != ref]
    filled = lr10[order].copy()
    for j, i in enumerate(order):  # invalid pixels take the frame's mean: no dark halo around clouds
        v = valid10[i]
        filled[j][:, ~v] = filled[j][:, v].mean(axis=-1, keepdims=True) if v.any() else 0.0
    op = Degradation(scale=k, sigma_hr=sigma_hr)
    with torch.no_grad():
        low = op(torch.from_numpy(filled))  # [T, C, h/3, w/3]; zero extra shift: the revisits keep theirs
        if noise:
            gen = torch.Generator().manual_seed(_tile_seed(seed, scene.name))
            low = add_noise(low, generator=gen).clamp_min_(0.0)
        bad = torch.from_numpy((~valid10[order]).astype(np.float32))[:, None].expand(-1, c, -1, -1)
        lr_valid = (op(bad.contiguous()).amax(dim=1) < INVALID_WEIGHT).numpy()  # the widest band's PSF decides
    lr = low.numpy().astype(np.float32)
    lr[np.broadcast_to(~lr_valid[:, None], lr.shape)] = 0.0
    masks = {name: _majority(m[: h * k, : w * k], k) for name, m in scene.masks.items()}
    extra = {key: v for key, v in (scene.extra or {}).items() if not str(key).startswith("_")}
    extra["wald"] = {"reference_frame": int(ref), "frame_order": [int(i) for i in order],
                     "psf_sigma_10m_px": _rounded(sigma_hr), "noise": bool(noise), "seed": int(seed),
                     "cropped_to": [int(w), int(h)]}
    return Scene(
        name=scene.name, lr=lr, lr_valid=lr_valid, hr=lr10[ref].copy(), hr_valid=valid10[ref].copy(),
        masks=masks, crs=scene.crs, lr_transform=compose(scene.lr_transform, Affine.scale(k)),
        hr_transform=scene.lr_transform, bands=list(scene.bands), scale=k,
        dates=[scene.dates[i] for i in order] if scene.dates else [],
        radiometric_scale=scene.radiometric_scale, split=scene.split, extra=extra,
    )


@dataclass
class WaldPrepared:
    """What :func:`prepare_wald` wrote: the pairs' folder, tile names per part, the operator used."""

    root: Path
    area_root: Path
    train: List[str]
    held_out: List[str]
    band_name: str
    psf_sigma: Union[float, List[float]]  # one per band for a multi-band area
    noise: bool
    seed: int
    messages: List[str] = field(default_factory=list)

    def as_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["root"], d["area_root"] = str(self.root), str(self.area_root)
        return d


def prepare_wald(area_root: PathLike, out: PathLike, noise: bool = True, seed: int = 0,
                 psf_sigma: Optional[float] = None, progress: Optional[Progress] = None,
                 cancel: Any = None) -> WaldPrepared:
    """Write the 30 m -> 10 m pair of every tile of a prepared area into ``out`` (replaced as a whole).

    ``psf_sigma``: the PSF in 10 m pixels (default: from each band's MTF,
    :func:`core.data.degrade.sigma_for_bands`; one value for a one-band area,
    one per band, in the tiles' order, for a multi-band one). Written into a hidden sibling
    folder and renamed into place at the end, like the area itself.
    """
    report = progress or (lambda _f, _m: None)
    area_root, out = Path(area_root), Path(out)
    area = read_area(area_root)
    names = [str(b) for b in (area.get("bands") or [area.get("band_name") or ""])]
    band = "+".join(names)
    sigmas = sigma_for_bands(names, SCALE)
    sigma: Union[float, List[float]] = (float(psf_sigma) if psf_sigma is not None
                                        else sigmas[0] if len(names) == 1 else sigmas)
    tiles = [(n, "train") for n in area["train"]] + [(n, "held_out") for n in area["held_out"]]
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is a file; choose a folder for the 30 m -> 10 m tiles")
    if out.is_dir() and any(out.iterdir()) and not (out / WALD_JSON).is_file():
        raise InputError(f"{out}: not empty and not made by the Wald preparation (no {WALD_JSON}); "
                         "choose a new or empty folder")
    messages: List[str] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(out)
    tmp = temp_path_for(out)
    tmp.mkdir()
    try:
        refs: Dict[str, int] = {}
        for i, (name, _part) in enumerate(tiles):
            check_cancel(cancel)
            report(i / max(1, len(tiles)), f"degrading {name} to 30 m")
            scene = wald_scene(read_scene(area_root / name), sigma, noise=noise, seed=seed)
            write_scene(scene, tmp / name, overwrite=False, root=tmp)
            refs[name] = int(scene.extra["wald"]["reference_frame"])
        tile = int(area["tile_lr"])
        if tile % SCALE:
            messages.append(f"the area's {tile}-px tiles are not a multiple of 3: their last "
                            f"{tile % SCALE} row(s) and column(s) are left out of the 30 m -> 10 m pairs")
        widths = ", ".join(f"{s:.2f}" for s in ([sigma] if isinstance(sigma, float) else sigma))
        messages.append(f"{len(tiles)} tile(s) degraded to 30 m with the {band or 'band'} PSF (sigma "
                        f"{widths} px at 10 m){', instrument noise added' if noise else ''}; HR = each tile's "
                        "clearest revisit")
        write_json_atomic(tmp / SPLIT_JSON, {"train": list(area["train"]), "val": list(area["held_out"]),
                                             "test": list(area["held_out"]), "held_out_side": area.get("side")})
        record = {
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "root": str(out),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "area": str(area_root), "area_created": area.get("created"), "band_name": band, "bands": names, "scale": SCALE,
            "psf_sigma_10m_px": sigma, "noise": bool(noise), "seed": int(seed),
            "tile_30m": tile // SCALE, "train": list(area["train"]), "held_out": list(area["held_out"]),
            "reference_frame": refs, "frames": area.get("frames"), "messages": messages,
        }
        write_json_atomic(tmp / WALD_JSON, record)
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report(1.0, f"{len(area['train'])} training and {len(area['held_out'])} held-out 30 m -> 10 m pair(s) in {out}")
    return WaldPrepared(out, area_root, list(area["train"]), list(area["held_out"]), band, sigma, bool(noise),
                        int(seed), messages)


def read_wald(root: PathLike) -> Dict[str, Any]:
    """The record of prepared 30 m -> 10 m pairs (``wald.json``), or :class:`InputError`."""
    path = Path(root) / WALD_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not readable as the record of Wald pairs ({exc}); prepare them again") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise InputError(f"{path}: not the record of Wald pairs; prepare them again")
    return data
