"""How a raster is cut for a model, and whether the machine can afford it, decided before any work.

Tile sizes follow each architecture's cost and the memory free on the device;
the estimate of a whole job's peak memory (one strip of tiles, the blending
buffer, the writer's pending rows) and of its output's size lets a job that
cannot fit be refused in seconds with a suggestion, instead of failing after
an hour or taking the machine down.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from ..jobs import InputError, OutputError
from ..models.card import ModelCard
from ..models.registry import spec

__all__ = ["TilePlan", "plan_tiles", "available_memory", "JobFootprint", "estimate_footprint",
           "check_footprint", "size_text"]


def available_memory(device: torch.device) -> int:
    """Bytes the job may use: free device memory on CUDA; on the CPU, MemAvailable capped by a cgroup limit."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    free = 4 << 30
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            free = min(free, int(text))
    return free


@dataclass
class TilePlan:
    """How a raster is cut for a model: tile and overlap (input pixels) and tiles per model call."""

    tile: int
    overlap: int
    batch: int
    per_px: int = 0  # rough activation bytes per input pixel of a tile (memory estimates)


def plan_tiles(card: ModelCard, device: torch.device, tile: Optional[int] = None,
               overlap: Optional[int] = None, batch: Optional[int] = None) -> TilePlan:
    """Tile size, overlap and batch for a model: its family's defaults, shrunk to fit memory.

    Each family states its defaults (``tile_defaults`` in :mod:`core.models.archs`):
    RAMS works on 128-px LR tiles on the CPU (256 on CUDA) with 8 px of
    overlap; HAT's attention is heavier, 64 px for HAT/HAT-L and 96 for the
    small presets (multiples of its window) with 1/16 of the tile as overlap
    (about 14 %); segmentation runs on 256-px HR tiles with 16 px of overlap.
    Batch: 4 tiles per call on CUDA, one on the CPU (bigger batches only add
    cache misses there). The memory estimate is a rough per-pixel activation
    count so a small GPU or a busy machine gets smaller tiles. Explicit values win.
    """
    facts = spec(card.arch)
    cuda = device.type == "cuda"
    defaults = facts.tile_defaults(dict(card.hparams), card.input_frames, cuda)
    d_tile, per_px = defaults.tile, defaults.per_px
    t = int(tile or d_tile)
    if batch is None:
        batch = 4 if cuda else 1
    batch = max(1, int(batch))
    if tile is None:
        budget = available_memory(device) // 4
        while t > 32 and per_px * t * t * batch > budget:
            t = (t * 3) // 4
            t = max(facts.tile_multiple, t - t % facts.tile_multiple)
    if overlap is None:
        overlap = max(4, t // defaults.overlap_divisor)
    _check_tiling(t, int(overlap))
    return TilePlan(t, int(overlap), batch, per_px)


def _check_tiling(tile: int, overlap: int) -> None:
    if tile < 4:
        raise InputError(f"tile size {tile} is too small (use at least 16 pixels)")
    if overlap < 0 or 2 * overlap >= tile:
        raise InputError(f"overlap {overlap} must be at least 0 and less than half the tile size {tile}")


@dataclass(frozen=True)
class JobFootprint:
    """Peak memory of a tiled job and the size of its output, both in bytes (upper estimates)."""

    memory: int
    output: int


def estimate_footprint(plan: TilePlan, width: int, height: int, frames: int, channels: int, scale: int,
                       out_channels: int, out_itemsize: int) -> JobFootprint:
    """Upper estimate of a tiled job's peak memory and its uncompressed output size.

    ``width``/``height``: the area in input pixels; memory follows the width only
    (one strip of tiles is held), the output follows the area. Counted: the
    strip of every frame (float32 data + valid mask, read, stacked and filled:
    three copies), the blending buffer and its released copy (float32 at the
    output resolution, one tile row high), the writer's pending block rows, and
    the model's activations for one batch (the plan's ``per_px`` bytes per input pixel).
    """
    strip_w = width + 2 * plan.overlap
    strip = plan.tile * strip_w * frames * (channels * 4 + 1) * 3
    blend = 2 * out_channels * plan.tile * scale * strip_w * scale * 4
    pending = out_channels * (512 + plan.tile * scale) * width * scale * (out_itemsize + 4)
    model = plan.per_px * plan.tile * plan.tile * plan.batch
    output = out_channels * width * scale * height * scale * out_itemsize
    return JobFootprint(int(strip + blend + pending + model + (512 << 20)), int(output))


def size_text(n_bytes: float) -> str:
    """A size for a message in the unit that shows it: ``3.2 GB``, ``5.1 MB``, ``640 KB``, ``12 bytes``.

    Sizes in GB alone read "up to 0.0 GB but only 0.0 GB free" on a small disk,
    which tells the analyst nothing.
    """
    for unit, factor in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n_bytes >= factor:
            return f"{n_bytes / factor:.1f} {unit}"
    return f"{int(n_bytes)} bytes"


def check_footprint(footprint: JobFootprint, device: torch.device, out_path: Path, what: str) -> None:
    """Refuse a job that cannot fit in memory or on disk, suggesting a smaller extent.

    The disk check uses the uncompressed size: GeoTIFF compression of SR output
    is unpredictable (noise-like detail compresses poorly), so a job is only
    refused when even the raw pixels could not fit.
    """
    free_mem = available_memory(device)
    if footprint.memory > 0.8 * free_mem:
        raise InputError(
            f"{what} would need about {size_text(footprint.memory)} of memory, more than this machine has free "
            f"({size_text(free_mem)}): process a smaller area with the extent option (--extent), or use "
            "smaller tiles (--tile)")
    try:
        free_disk = shutil.disk_usage(out_path.parent if str(out_path.parent) else Path(".")).free
    except OSError:
        return
    if footprint.output > free_disk:
        raise OutputError(
            f"{out_path}: the output could take up to {size_text(footprint.output)} but only "
            f"{size_text(free_disk)} are free on its disk: process a smaller area with the extent option "
            "(--extent) or write to another disk")

