"""Which bands an area workflow reads, and how the revisits' bands are arranged for the network.

Why a module of its own: the shipped networks take Sentinel-2's four 10 m
bands jointly (B02, B03, B04, B08), the study's networks one band. Both area
workflows (task-driven fine-tune and Wald adaptation) must cut tiles holding
exactly the bands the starting network takes, in the order its card lists
them, read by *name* from the revisits' band descriptions: a raster exported
as B08, B04, B03, B02 must give the network B02 first, never "band 1". One
copy of that rule keeps the fine-tune, the Wald pairs and their measurements
in step (before, both workflows took a single ``--band`` and refused 4-band
networks).

Channels come from the card's ``in_chans`` and the revisits a network takes at
once from its ``frames`` (``card.input_frames``); the two are never mixed up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..evaluation.scene_predict import predict_seg_image
from ..inference.bands import canonical_band, frames_by_date
from ..jobs import InputError, PathLike
from ..models.zoo import read_card

__all__ = ["AreaBands", "area_sr_card", "network_bands", "arrange_frames", "band_positions", "seg_channels",
           "check_seg_networks", "seg_probs"]



def area_sr_card(path: PathLike) -> Any:
    """The model card of the SR checkpoint an area workflow starts from; refused unless usable.

    Refused, before anything is cut or trained: a checkpoint that is not
    super-resolution, and a multi-band network whose card does not name its
    bands (``in_chans`` > 1 but fewer band names): the tiles are read by name,
    so an unnamed band could only be guessed.
    """
    card = read_card(path)
    if card.task != "sr":
        raise InputError(f"{path}: a {card.task} checkpoint; choose a super-resolution checkpoint")
    if card.in_chans > 1 and len(card.bands or []) != card.in_chans:
        raise InputError(f"{path}: the network takes {card.in_chans} bands but its card names "
                         f"{len(card.bands or [])} ({', '.join(card.bands or []) or 'none'}); the area tiles are "
                         "read by band name, so the card must name each input band")
    return card


def network_bands(card: Any) -> Optional[List[str]]:
    """The band names a multi-band network takes, in its input order; None for a one-band network."""
    if card.in_chans <= 1:
        return None
    return [canonical_band(b) or b for b in card.bands]


@dataclass
class AreaBands:
    """Revisit frames arranged as ``dates[t][c]`` (band ``c`` of revisit ``t``), with the band names."""

    names: List[str]
    dates: List[List[Any]]

    @property
    def frames(self) -> List[Any]:
        """Every frame used, date by date (for radiometry checks and the record)."""
        return [f for group in self.dates for f in group]

    def labels(self) -> List[str]:
        """One label per revisit: its frames' labels, joined when a date comes from several bands."""
        return [" + ".join(f.label for f in group) if len(group) > 1 else group[0].label for group in self.dates]


def arrange_frames(frames: Sequence[Any], wanted: Sequence[str]) -> AreaBands:
    """Group ``frames`` by revisit and pick, for each, the ``wanted`` bands by name in that order.

    Bands other than the wanted ones (e.g. B05 or SCL in a multi-band export)
    are left aside; a revisit missing a wanted band, or frames without any
    band name, are refused with one sentence naming the file.
    """
    wanted = [canonical_band(b) or b for b in wanted]
    by_date, unnamed = frames_by_date(frames)
    if not by_date:
        raise InputError(
            f"the network takes {', '.join(wanted)} jointly, but no band of the revisits is named (band "
            "descriptions such as B02, B08): name them, or build the revisits with `python -m core.cli export` "
            "/ `stack`" + (f" (unnamed: {', '.join(unnamed[:4])})" if unnamed else ""))
    dates: List[List[Any]] = []
    for key, bands in by_date.items():
        missing = [b for b in wanted if b not in bands]
        if missing:
            where = Path(key).name if ("/" in key or "\\" in key) else key
            raise InputError(f"{where}: band(s) {', '.join(missing)} missing; the network takes "
                             f"{', '.join(wanted)} of every revisit (found {', '.join(sorted(bands))})")
        dates.append([bands[b] for b in wanted])
    return AreaBands(list(wanted), dates)


def band_positions(scene_bands: Sequence[str], card: Any, path: PathLike) -> List[int]:
    """Indices, in a prepared tile's band list, of the bands ``card``'s network takes (in its order).

    A one-band network takes the tile's band with its name (or the only band
    when the card names none); a multi-band one every band its card names.
    The refusal says how to prepare the area again.
    """
    have = [canonical_band(b) or b for b in scene_bands]
    names = list(card.bands or [])
    if card.in_chans <= 1:
        if not names:
            return [0]
        for b in names:
            if (canonical_band(b) or b) in have:
                return [have.index(canonical_band(b) or b)]
        raise InputError(
            f"{Path(path).name} was trained on band {', '.join(names)} but the area was prepared as "
            f"{', '.join(scene_bands)}; prepare it again with that band (and --band-name {names[0]})")
    missing = [b for b in names if (canonical_band(b) or b) not in have]
    if missing:
        raise InputError(
            f"{Path(path).name} takes {', '.join(names)} jointly but the area was prepared with "
            f"{', '.join(scene_bands)}; prepare it again from revisits holding those bands")
    return [have.index(canonical_band(b) or b) for b in names]


def seg_channels(sr_bands: Sequence[str], seg_card: Any, path: PathLike) -> List[int]:
    """Which channels of the SR output a frozen segmentation network reads, in its card's band order.

    Why: the SR output holds the SR network's bands in its card's order; a
    segmentation network may list the same bands in another order, or need
    bands the SR network does not make (the shipped 4-band UNet++ behind a
    one-band B8 network), which is refused here in one sentence instead of
    failing inside torch after the area was cut.
    """
    have = [canonical_band(b) or b for b in sr_bands]
    wanted = [canonical_band(b) or b for b in (seg_card.bands or [])]
    channels = int((seg_card.hparams or {}).get("in_channels", len(wanted) or 1))
    if channels == len(have) and (not wanted or wanted == have):
        return list(range(len(have)))
    if channels == 1 and len(have) == 1:
        return [0]
    missing = [b for b in wanted if b not in have]
    if missing or len(wanted) != channels:
        raise InputError(f"{Path(path).name} segments {', '.join(seg_card.bands or []) or f'{channels} unnamed bands'}"
                         f" but the SR network gives {', '.join(sr_bands) or 'one unnamed band'}; choose "
                         "segmentation networks trained on the SR network's bands")
    return [have.index(b) for b in wanted]


def check_seg_networks(sr_card: Any, seg_paths: Sequence[Optional[PathLike]]) -> None:
    """Refuse, before anything is cut or trained, segmentation networks that cannot read the SR output."""
    for path in seg_paths:
        if path is None or not Path(path).is_file():
            continue  # a missing file is named by the job's own check
        card = read_card(path)
        if card.task == "segmentation":
            seg_channels(list(sr_card.bands or []) or [""] * sr_card.in_chans, card, path)


def seg_probs(nets: Sequence[Tuple[Any, Sequence[int]]], image: np.ndarray, valid: np.ndarray,
              plan: Any) -> np.ndarray:
    """Probabilities ``[targets, H, W]`` of segmentation networks, each fed its channels of ``image``.

    Networks reading the same channels in the same order (the usual case) share one tiled pass.
    """
    groups: Dict[Tuple[int, ...], List[int]] = {}
    for k, (_net, channels) in enumerate(nets):
        groups.setdefault(tuple(int(c) for c in channels), []).append(k)
    out: List[Optional[np.ndarray]] = [None] * len(nets)
    for channels, members in groups.items():
        probs = predict_seg_image([nets[k][0] for k in members], np.asarray(image)[list(channels)], valid, plan)
        for j, k in enumerate(members):
            out[k] = probs[j]
    return np.stack(out)
