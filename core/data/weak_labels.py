"""Real images with image-level labels ("this patch holds buildings", "this one holds none") for segmenters.

Why: the segmentation networks learn pixel masks from the project's synthetic
worlds only, so on real Sentinel-2 they learned the simulator's radiometry and
villages. Real imagery with pixel masks at 3.33 m does not exist in public, but
real patches labelled as a whole do (EuroSAT's *Residential* or *Forest*, a land-use
polygon). A whole-patch label says little about one pixel and a lot about the
patch's most object-like pixels: in a residential patch the most building-like
tenth of it is roofs; in a forest patch even its most building-like pixels are
not. :func:`weak_label_loss` turns that into a multiple-instance loss on the
top-k pixels, and :class:`WithWeakLabels` rides one such patch along with every
synthetic training patch, so the Dice on the worlds keeps the shapes right while
the real patches teach what real roofs and real forests look like.

Folder format (``data.weak.root``; the settings are ``core.training.config_schema.WeakLabelConfig``)::

    <root>/labels.json   {"format": "weak-labels-1", "radiometric_scale": 1e-4,
                          "images": [{"path": "Residential/x.tif", "buildings": "present",
                                      "roads": "unknown", "group": "Residential"}, ...]}
    <root>/<path>        uint16 GeoTIFF at the segmenter's (HR) pixel size, bands named in its
                         descriptions (B02, B03, B04, B08), nodata 0

Every ``path`` must stay inside ``<root>`` (a label file is input, not trusted to
point elsewhere). Labels per target: ``present``, ``absent`` or ``unknown``
(missing means unknown); an image unknown for the trained target is skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..io.paths import inside
from .geotiff import from_dn, read_raster
from .patches import rotate_flip  # the same quarter turns and flip as the synthetic patches
from .scene import SceneError

__all__ = ["WeakImages", "WithWeakLabels", "weak_label_loss", "LABELS_FILE", "FORMAT"]

LABELS_FILE = "labels.json"
FORMAT = "weak-labels-1"
#: label values a ``labels.json`` entry may give a target, and what the loss reads from them
LABEL_VALUES = {"present": 1.0, "absent": 0.0, "unknown": -1.0}


class WeakImages:
    """The images of one weak-label folder for one target, as reflectance, labels known.

    ``bands``: the band names to take, in order (each image must name them).
    ``patch``: the side of the crops drawn; smaller images are refused.
    """

    def __init__(self, root: Path, target: str, bands: Sequence[str], patch: int) -> None:
        root = Path(root)
        index = root / LABELS_FILE
        if not index.is_file():
            raise SceneError(f"{root}: no {LABELS_FILE} (a weak-label folder needs one, see core.data.weak_labels)")
        try:
            meta = json.loads(index.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SceneError(f"{index}: not readable as JSON ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("images"), list):
            raise SceneError(f"{index}: not a weak-label index (expected format {FORMAT!r} and a list of images)")
        scale = float(meta.get("radiometric_scale", 1e-4))
        self.images: List[np.ndarray] = []
        self.labels: List[float] = []
        for entry in meta["images"]:
            if not isinstance(entry, dict):
                raise SceneError(f"{index}: every image entry must be a mapping")
            label = entry.get(target, "unknown")
            if label not in LABEL_VALUES:
                raise SceneError(f"{index}: {entry.get('path')!r}: {target} label {label!r}; use one of "
                                 + ", ".join(LABEL_VALUES))
            if label == "unknown":
                continue
            path = inside(root, entry.get("path"), what=f"{LABELS_FILE} image path", error=SceneError)
            raster = read_raster(path)
            names = [d or "" for d in raster.descriptions]
            missing = [b for b in bands if b not in names]
            if missing:
                raise SceneError(f"{path}: has no band {missing[0]} (bands named: {', '.join(names) or 'none'})")
            if min(raster.data.shape[-2:]) < patch:
                raise SceneError(f"{path}: {raster.data.shape[-2]} x {raster.data.shape[-1]} px, smaller than the "
                                 f"{patch} px training patch")
            dn = raster.data[[names.index(b) for b in bands]]
            refl, valid = from_dn(dn, 0 if raster.nodata is None else raster.nodata, scale)
            self.images.append(np.concatenate([refl, valid[None].astype(np.float32)]))
            self.labels.append(LABEL_VALUES[label])
        if not self.images:
            raise SceneError(f"{index}: no image labelled present or absent for {target}")
        if all(v == self.labels[0] for v in self.labels):
            kind = "present" if self.labels[0] else "absent"
            raise SceneError(f"{index}: every image is labelled {kind} for {target}; the loss needs both kinds")
        self.patch = int(patch)

    def __len__(self) -> int:
        return len(self.images)

    def counts(self) -> Dict[str, int]:
        """How many images say present and absent (for the log and the card)."""
        present = sum(1 for v in self.labels if v > 0.5)
        return {"present": present, "absent": len(self.labels) - present}

    def draw(self, rng: np.random.Generator) -> Dict[str, torch.Tensor]:
        """One random crop (rotated and flipped at random) with its label; present and absent alike often."""
        want_present = rng.random() < 0.5
        pool = [i for i, v in enumerate(self.labels) if (v > 0.5) == want_present]
        i = pool[int(rng.integers(len(pool)))]
        stack = self.images[i]
        h, w = stack.shape[-2:]
        r, c = int(rng.integers(h - self.patch + 1)), int(rng.integers(w - self.patch + 1))
        flip = rng.random() < 0.5
        window = stack[:, r:r + self.patch, c:c + self.patch]
        crop = rotate_flip({"crop": window}, int(rng.integers(4)), flip)["crop"]
        return {"weak_image": torch.from_numpy(crop[:-1].copy()), "weak_valid": torch.from_numpy(crop[-1] > 0.5),
                "weak_label": torch.tensor(self.labels[i], dtype=torch.float32)}


class WithWeakLabels(Dataset):
    """A segmentation patch dataset whose every item also carries one weakly labelled real crop.

    Drawn from the same (seed, epoch, index) as the item, so resumed and
    distributed runs see the same real crops as one uninterrupted run.
    """

    def __init__(self, base: Any, images: WeakImages) -> None:
        self.base = base
        self.images = images

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.base)

    def __getattr__(self, name: str) -> Any:  # the base's seed, epoch, scenes... (only after __init__)
        if name in ("base", "images"):
            raise AttributeError(name)
        return getattr(self.base, name)

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        item = dict(self.base[index])
        rng = np.random.default_rng([self.base.seed, self.base.epoch, int(index), 0x3EA6])
        item.update(self.images.draw(rng))
        return item


def weak_label_loss(logits: torch.Tensor, labels: torch.Tensor, valid: Optional[torch.Tensor],
                    present_share: float, absent_share: float) -> torch.Tensor:
    """Multiple-instance BCE on each image's most object-like pixels, by its whole-image label.

    ``logits [B,1,H,W]``; ``labels [B]`` 1 (present) or 0 (absent); ``valid [B,H,W]``.
    Present: the top ``present_share`` of valid pixels by logit toward 1. Absent:
    the top ``absent_share`` toward 0. Images without valid pixels add nothing.
    """
    b = logits.shape[0]
    flat = logits.float().reshape(b, -1)
    ok = valid.reshape(b, -1) if valid is not None else torch.ones_like(flat, dtype=torch.bool)
    losses = []
    for i in range(b):
        values = flat[i][ok[i]]
        if values.numel() == 0:
            continue
        present = bool(labels[i] > 0.5)
        k = max(1, int(round(values.numel() * (present_share if present else absent_share))))
        top = torch.topk(values, k).values
        losses.append(F.binary_cross_entropy_with_logits(top, torch.full_like(top, 1.0 if present else 0.0)))
    if not losses:
        return flat.sum() * 0.0
    return torch.stack(losses).mean()
