"""Training patches: SR patches (LR revisits + HR + masks) and segmentation patches.

Both datasets draw ``samples_per_epoch`` random patches per epoch. Item ``i`` of
epoch ``e`` depends only on ``(seed, e, i)`` (its own random generator), so a run
is reproducible with any number of DataLoader workers, and a resumed run sees
the same patches.

Task-aware selection (:class:`PatchSelection`): with probability ``share`` an
item is drawn among the *candidate* positions, those where the union of the
selected masks covers at least ``min_coverage`` of the patch; otherwise it is
drawn uniformly. The study names the rule, not its numbers: both are knobs.
Coverage for every position comes from one summed-area table per scene, so
candidates are exact, not sampled. When no position of any scene qualifies, the
rule falls back to uniform draws and says so once in the log.

Frames: an SR patch gets exactly ``frames`` revisits, the clearest within the
patch first (:func:`choose_frames`), repeated when the scene has fewer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from .degrade import sigma_for_bands
from .radiometric import RadiometricJitter, band_wavelengths
from .scene import Scene, SceneError
from .seasons import SeasonJitter
from .sharpness import SharpnessJitter

__all__ = ["PatchSelection", "SRPatchDataset", "SegPatchDataset", "choose_frames", "coverage_map", "rotate_flip"]

log = logging.getLogger(__name__)


@dataclass
class PatchSelection:
    """Share of patches drawn where ``classes`` cover at least ``min_coverage`` of the patch."""

    share: float = 0.0
    min_coverage: float = 0.02
    classes: Sequence[str] = ("buildings", "roads")

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"selection share must be in [0, 1], got {self.share}")
        if not 0.0 <= self.min_coverage <= 1.0:
            raise ValueError(f"selection min_coverage must be in [0, 1], got {self.min_coverage}")
        self.classes = tuple(self.classes)


def choose_frames(valid_fraction_per_frame: Sequence[float], T: int) -> List[int]:
    """Indices of ``T`` frames, clearest first; when there are fewer, cycle through them again."""
    v = np.asarray(valid_fraction_per_frame, dtype=np.float64)
    if v.size == 0:
        raise ValueError("no frames to choose from")
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    order = np.argsort(-v, kind="stable")  # ties keep acquisition order
    return [int(order[k % order.size]) for k in range(T)]


def coverage_map(mask: np.ndarray, size: int, step: int = 1) -> np.ndarray:
    """Fraction of True pixels of ``mask`` in every ``size`` x ``size`` window whose corner is on ``step``.

    Returns [(H - size) // step + 1, (W - size) // step + 1] float32, from a summed-area table.
    """
    h, w = mask.shape
    if h < size or w < size:
        return np.zeros((0, 0), np.float32)
    sat = np.zeros((h + 1, w + 1), np.int64)
    np.cumsum(np.cumsum(mask, axis=0, dtype=np.int64), axis=1, out=sat[1:, 1:])
    r = np.arange(0, h - size + 1, step)
    c = np.arange(0, w - size + 1, step)
    total = sat[np.ix_(r + size, c + size)] - sat[np.ix_(r, c + size)] - sat[np.ix_(r + size, c)] + sat[np.ix_(r, c)]
    return (total / float(size * size)).astype(np.float32)


def rotate_flip(arrays: Dict[str, np.ndarray], k: int, flip: bool) -> Dict[str, np.ndarray]:
    """Same rot90 (k quarter turns) and horizontal flip on the last two axes of every array."""
    out = {}
    for key, a in arrays.items():
        if flip:
            a = a[..., ::-1]
        if k:
            a = np.rot90(a, k, axes=(-2, -1))
        out[key] = np.ascontiguousarray(a)
    return out


def _pad_to(a: np.ndarray, h: int, w: int) -> np.ndarray:
    ph, pw = max(h - a.shape[-2], 0), max(w - a.shape[-1], 0)
    if not ph and not pw:
        return a
    pad = [(0, 0)] * (a.ndim - 2) + [(0, ph), (0, pw)]
    return np.pad(a, pad)


class _PatchSampler:
    """Positions on a grid of cells (LR pixels for SR, HR pixels for segmentation) per scene."""

    def __init__(
        self,
        unions: List[Optional[np.ndarray]],
        cell: int,
        patch_cells: int,
        grid_shapes: List[Tuple[int, int]],
        selection: PatchSelection,
    ) -> None:
        self.selection = selection
        self.n_pos = [(h - patch_cells + 1) * (w - patch_cells + 1) for h, w in grid_shapes]
        self.grid_w = [w - patch_cells + 1 for _, w in grid_shapes]
        self.weights = np.asarray(self.n_pos, np.float64) / max(sum(self.n_pos), 1)
        self.candidates: List[np.ndarray] = []
        for union in unions:
            if union is None or selection.share <= 0:
                self.candidates.append(np.zeros(0, np.int64))
                continue
            cov = coverage_map(union, patch_cells * cell, step=cell)
            self.candidates.append(np.flatnonzero(cov.ravel() >= selection.min_coverage))
        counts = np.asarray([c.size for c in self.candidates], np.float64)
        self.cand_weights = counts / counts.sum() if counts.sum() > 0 else None
        self._warned = False

    def draw(self, rng: np.random.Generator) -> Tuple[int, int, int, bool]:
        """(scene index, row, col, selected) in grid cells."""
        want = self.selection.share > 0 and rng.random() < self.selection.share
        if want and self.cand_weights is None:
            if not self._warned:
                log.warning(
                    "patch selection: no position has %s covering >= %.1f%% of a patch; drawing uniformly instead",
                    "/".join(self.selection.classes),
                    100 * self.selection.min_coverage,
                )
                self._warned = True
            want = False
        if want:
            s = int(rng.choice(len(self.candidates), p=self.cand_weights))
            flat = int(self.candidates[s][rng.integers(self.candidates[s].size)])
        else:
            s = int(rng.choice(len(self.n_pos), p=self.weights))
            flat = int(rng.integers(self.n_pos[s]))
        return s, flat // self.grid_w[s], flat % self.grid_w[s], want


def _union(scene: Scene, classes: Sequence[str]) -> Optional[np.ndarray]:
    present = [scene.masks[c] for c in classes if c in scene.masks]
    if not present:
        return None
    out = present[0].copy()
    for m in present[1:]:
        out |= m
    return out


def _band_list(band: int, bands: Optional[Sequence[int]]) -> List[int]:
    """The band indices a dataset takes: ``bands`` when given, else the single ``band``."""
    out = [int(b) for b in bands] if bands is not None else [int(band)]
    if not out:
        raise ValueError("no band to take")
    return out


class _EpochDataset(Dataset):
    def __init__(self, samples_per_epoch: int, seed: int) -> None:
        if samples_per_epoch < 1:
            raise ValueError(f"samples_per_epoch must be >= 1, got {samples_per_epoch}")
        self.samples_per_epoch = int(samples_per_epoch)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the patches of ``epoch`` (call before each epoch, as with DistributedSampler)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def _rng(self, index: int) -> np.random.Generator:
        if not 0 <= index < self.samples_per_epoch:
            raise IndexError(index)
        return np.random.default_rng([self.seed, self.epoch, int(index)])


class SRPatchDataset(_EpochDataset):
    """Random SR training patches from scenes (see docs/interfaces.md for the item layout).

    Item: ``lr [T,C,p,p]``, ``lr_valid [T,p,p]``, ``hr [C,3p,3p]``, ``hr_valid [3p,3p]`` (C = the
    bands taken, one by default; four for networks that take B02, B03, B04 and B08 jointly),
    ``buildings``/``roads [1,3p,3p]`` float, ``selected`` bool, plus ``has_buildings``/
    ``has_roads`` (False where a scene has no such mask: its zeros are not labels),
    ``scene`` (index) and ``frames`` (indices of the revisits used).
    A scene without HR gives zeros with ``hr_valid`` False (consistency-only training).
    ``mask_valid [3p,3p]`` says where the masks are labels for the task losses: ``hr_valid``
    with an HR image, else where any chosen revisit is valid (upsampled to the HR grid), so
    the task Dice still trains on scenes without HR.
    """

    def __init__(
        self,
        scenes: List[Scene],
        lr_patch: int = 32,
        frames: int = 9,
        samples_per_epoch: Optional[int] = None,
        selection: Optional[PatchSelection] = None,
        augment: bool = True,
        seed: int = 0,
        band: int = 0,
        bands: Optional[Sequence[int]] = None,
        radiometry: Optional[RadiometricJitter] = None,
    ) -> None:
        if not scenes:
            raise SceneError("SR patches: no scenes given")
        if lr_patch < 1 or frames < 1:
            raise ValueError(f"lr_patch and frames must be >= 1, got {lr_patch}, {frames}")
        self.scenes = scenes
        self.p = int(lr_patch)
        self.frames = int(frames)
        self.selection = selection or PatchSelection()
        self.augment = augment
        self.bands = _band_list(band, bands)
        for sc in scenes:
            for b in self.bands:
                if not 0 <= b < sc.lr.shape[1]:
                    raise SceneError(f"scene {sc.name!r}: has {sc.lr.shape[1]} band(s); band index {b} does not exist")
            if sc.scale != scenes[0].scale:
                raise SceneError(f"scene {sc.name!r}: scale {sc.scale} differs from {scenes[0].name!r} ({scenes[0].scale})")
        self.scale = scenes[0].scale
        # L1C-like radiometry (path radiance, light, haze, transmittance), one draw per patch for its revisits
        # and its HR target alike: a per-pixel affine change per band commutes with the PSF and the decimation,
        # so the pair stays consistent and the network learns to carry the delivered radiometry to 3.33 m.
        self.radiometry = radiometry or RadiometricJitter()
        names = list(scenes[0].bands or [])
        self.wavelengths = band_wavelengths([names[b] if b < len(names) else None for b in self.bands])
        grid = [(max(sc.lr_shape[0], self.p), max(sc.lr_shape[1], self.p)) for sc in scenes]
        unions = [_union(sc, self.selection.classes) for sc in scenes]
        unions = [None if u is None else _pad_to(u, g[0] * self.scale, g[1] * self.scale) for u, g in zip(unions, grid)]
        self.sampler = _PatchSampler(unions, self.scale, self.p, grid, self.selection)
        if samples_per_epoch is None:
            samples_per_epoch = max(1, sum((h // self.p) * (w // self.p) for h, w in grid))
        super().__init__(samples_per_epoch, seed)

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        rng = self._rng(index)
        s, r, c, selected = self.sampler.draw(rng)
        sc = self.scenes[s]
        p, hp, k = self.p, self.p * self.scale, self.scale
        gh, gw = max(sc.lr_shape[0], p), max(sc.lr_shape[1], p)
        lr = _pad_to(sc.lr, gh, gw)[:, self.bands, r : r + p, c : c + p]  # copies the window only
        lr_valid = _pad_to(sc.lr_valid, gh, gw)[:, r : r + p, c : c + p]
        order = choose_frames(lr_valid.reshape(lr_valid.shape[0], -1).mean(axis=1), self.frames)
        hs = (slice(r * k, r * k + hp), slice(c * k, c * k + hp))
        if sc.hr is not None and sc.hr_valid is not None:
            hr = _pad_to(sc.hr, gh * k, gw * k)[(self.bands, *hs)]
            hr_valid = _pad_to(sc.hr_valid, gh * k, gw * k)[hs]
            mask_valid = hr_valid
        else:
            hr = np.zeros((len(self.bands), hp, hp), np.float32)
            hr_valid = np.zeros((hp, hp), bool)
            # No HR image (e.g. an analyst's own area): the masks are labels wherever a revisit saw the ground.
            seen = lr_valid[order].any(axis=0)
            mask_valid = np.repeat(np.repeat(seen, k, axis=0), k, axis=1)
        arrays = {
            "lr": lr[order],
            "lr_valid": lr_valid[order],
            "hr": hr,
            "hr_valid": hr_valid,
            "mask_valid": mask_valid,
        }
        for key in ("buildings", "roads"):
            m = sc.masks.get(key)
            arrays[key] = (np.zeros((hp, hp), np.float32) if m is None else _pad_to(m, gh * k, gw * k)[hs].astype(np.float32))[None]
        if self.radiometry.active:
            arrays.update(self._delivered(arrays["lr"], hr if sc.hr is not None else None, rng))
        if self.augment:
            arrays = rotate_flip(arrays, int(rng.integers(4)), bool(rng.random() < 0.5))
        item = {key: torch.from_numpy(np.ascontiguousarray(a)) for key, a in arrays.items()}
        item["selected"] = torch.tensor(selected)
        item["has_buildings"] = torch.tensor("buildings" in sc.masks)
        item["has_roads"] = torch.tensor("roads" in sc.masks)
        item["scene"] = torch.tensor(s)
        item["frames"] = torch.tensor(order)
        return item

    def _delivered(self, lr: np.ndarray, hr: Optional[np.ndarray], rng: np.random.Generator) -> Dict[str, np.ndarray]:
        """The patch's revisits and HR image under one radiometry draw (the same one for each of them)."""
        draw = int(rng.integers(2**32))
        out = {"lr": np.stack([self.radiometry.apply(f, self.wavelengths, np.random.default_rng(draw)) for f in lr])}
        if hr is not None:
            out["hr"] = self.radiometry.apply(hr, self.wavelengths, np.random.default_rng(draw))
        return out


class SegPatchDataset(_EpochDataset):
    """Random HR patches with one target mask for training the segmentation networks.

    Item: ``image [C,P,P]`` (reflectance of the bands taken), ``mask [1,P,P]`` float, ``valid [P,P]`` bool,
    ``selected`` bool, ``scene`` index. Selection looks at the *target* class only
    (a buildings network gains nothing from road-rich patches). Scenes without HR
    or without the target mask are refused.
    """

    def __init__(
        self,
        scenes: List[Scene],
        target: str = "buildings",
        patch: int = 96,
        samples_per_epoch: Optional[int] = None,
        selection: Optional[PatchSelection] = None,
        augment: bool = True,
        seed: int = 0,
        band: int = 0,
        bands: Optional[Sequence[int]] = None,
        radiometry: Optional[RadiometricJitter] = None,
        sharpness: Optional[SharpnessJitter] = None,
        season: Optional[SeasonJitter] = None,
    ) -> None:
        if not scenes:
            raise SceneError("segmentation patches: no scenes given")
        band_list = _band_list(band, bands)
        for sc in scenes:
            if sc.hr is None or sc.hr_valid is None:
                raise SceneError(f"scene {sc.name!r}: has no HR image; segmentation trains on HR images")
            if target not in sc.masks:
                raise SceneError(f"scene {sc.name!r}: has no {target!r} mask (masks/{target}.tif)")
            for b in band_list:
                if not 0 <= b < sc.hr.shape[0]:
                    raise SceneError(f"scene {sc.name!r}: has {sc.hr.shape[0]} band(s); band index {b} does not exist")
        self.scenes = scenes
        self.target = target
        self.P = int(patch)
        self.bands = band_list
        self.augment = augment
        self.radiometry = radiometry or RadiometricJitter()
        self.sharpness = sharpness or SharpnessJitter()
        self.season = season or SeasonJitter()
        names = list(scenes[0].bands or [])
        taken = [names[b] if b < len(names) else None for b in band_list]
        self.wavelengths = band_wavelengths(taken)
        self.psf_sigmas = sigma_for_bands([n or "B08" for n in taken], scale=self.sharpness.scale)
        base = selection or PatchSelection()
        self.selection = PatchSelection(base.share, base.min_coverage, (target,))
        grid = [(max(sc.hr.shape[-2], self.P), max(sc.hr.shape[-1], self.P)) for sc in scenes]
        unions = [_pad_to(sc.masks[target], *g) for sc, g in zip(scenes, grid)]
        self.sampler = _PatchSampler(unions, 1, self.P, grid, self.selection)
        if samples_per_epoch is None:
            samples_per_epoch = max(1, sum((h // self.P) * (w // self.P) for h, w in grid))
        super().__init__(samples_per_epoch, seed)

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        rng = self._rng(index)
        s, r, c, selected = self.sampler.draw(rng)
        sc = self.scenes[s]
        P = self.P
        gh, gw = max(sc.hr.shape[-2], P), max(sc.hr.shape[-1], P)
        win = (slice(r, r + P), slice(c, c + P))
        arrays = {
            "image": _pad_to(sc.hr, gh, gw)[(self.bands, *win)],
            "mask": _pad_to(sc.masks[self.target], gh, gw)[win].astype(np.float32)[None],
            "valid": _pad_to(sc.hr_valid, gh, gw)[win],
        }
        if self.season.active:  # the land changes with the season, the objects (and masks) do not
            for key in ("buildings", "roads"):
                arrays[key] = (_pad_to(sc.masks[key], gh, gw)[win] if key in sc.masks
                               else np.zeros((P, P), bool))
        if self.augment:
            arrays = rotate_flip(arrays, int(rng.integers(4)), bool(rng.random() < 0.5))
        # in the order light meets them: the land's season, the sensor's blur, the atmosphere
        if self.season.active:
            arrays["image"] = self.season.apply(arrays["image"], self.wavelengths, arrays.pop("buildings"),
                                                arrays.pop("roads"), rng)
        arrays["image"] = self.sharpness.apply(arrays["image"], self.psf_sigmas, rng)
        arrays["image"] = self.radiometry.apply(arrays["image"], self.wavelengths, rng)
        item = {key: torch.from_numpy(np.ascontiguousarray(a)) for key, a in arrays.items()}
        item["selected"] = torch.tensor(selected)
        item["scene"] = torch.tensor(s)
        return item
