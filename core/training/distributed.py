"""DistributedDataParallel helpers for ``torchrun`` scale-out.

``python -m core.cli train CONFIG`` and ``torchrun --nproc_per_node=N -m
core.cli train CONFIG`` run the same code: when torchrun's environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) is
present the process group is joined (gloo on CPU, NCCL on CUDA), otherwise
everything here is a no-op for a single process. The state lives in a
:class:`DistContext` value passed around, not in module globals.

Batch semantics: ``data.batch_size`` is per process, so the global batch is
``batch_size * world_size``; each rank gets a disjoint slice of the same
seeded permutation of sample indices (``DistributedSampler``), so a run on N
processes sees the same samples per step as a single process with an N times
bigger batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "DistContext",
    "env_world_size",
    "resolve_device",
    "init_distributed",
    "shutdown",
    "barrier",
    "all_reduce_mean",
    "broadcast_object",
    "wrap_model",
    "unwrap_model",
]


@dataclass(frozen=True)
class DistContext:
    """Who this process is in the job; ``owns_group`` if we created the process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: Optional[str] = None
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    """World size announced by torchrun (1 when not launched by it)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def resolve_device(requested: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present; under torchrun each rank takes ``cuda:LOCAL_RANK``."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {requested!r} was asked for but no CUDA device is available")
        if requested == "cuda":
            local = int(os.environ.get("LOCAL_RANK", "0")) if env_world_size() > 1 else torch.cuda.current_device()
            return torch.device("cuda", local)
    return torch.device(requested)


def init_distributed(device: torch.device) -> DistContext:
    """Join torchrun's process group when launched by it; a single-process context otherwise."""
    world = env_world_size()
    if world <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if dist.is_initialized():
        return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                           backend=dist.get_backend(), owns_group=False)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, device_id=device)
    else:
        dist.init_process_group(backend=backend)
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, backend=backend, owns_group=True)


def shutdown(ctx: DistContext) -> None:
    """Leave the process group if this context created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def all_reduce_mean(ctx: DistContext, tensor: torch.Tensor) -> torch.Tensor:
    """Average ``tensor`` over ranks (in place; returned for chaining)."""
    if ctx.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= ctx.world_size
    return tensor


def broadcast_object(ctx: DistContext, obj: Any, src: int = 0) -> Any:
    """Send a picklable object from ``src`` to every rank (e.g. validation metrics)."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def wrap_model(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """DDP-wrap the trained network (only it: frozen segmentation nets stay plain)."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap_model(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model
