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

Torch built without libuv (Debian's ``python3-torch``): torch >= 2.4 asks for
libuv's TCPStore by default, and such a build refuses. The processes then join
through a TCPStore made with ``use_libuv=False`` (what ``USE_LIBUV=0`` also
forces), and torchrun itself must not start one either: on one machine
:func:`torchrun_command` gives the launch that works on both kinds of build::

    USE_LIBUV=0 TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 torchrun --nproc_per_node=N --nnodes=1 \
        --rdzv-backend=c10d --rdzv-endpoint=/tmp/rdzv-FILE --rdzv-conf store_type=file -m core.cli train CONFIG
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)

#: Where the ranks meet when the announced host name does not resolve and they all run on this machine.
LOOPBACK = "127.0.0.1"

__all__ = [
    "DistContext",
    "env_world_size",
    "libuv_available",
    "rendezvous_address",
    "torchrun_command",
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
    _resolve_master_addr()
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs: Dict[str, Any] = {"backend": backend}
    if device.type == "cuda":
        torch.cuda.set_device(device)
        kwargs["device_id"] = device
    if not _use_libuv():  # build the store ourselves: torch's env:// path would ask for libuv here and there
        kwargs.update(store=_store_without_libuv(rank, world), rank=rank, world_size=world)
    dist.init_process_group(**kwargs)
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, backend=backend, owns_group=True)


def rendezvous_address(addr: str, single_node: bool) -> str:
    """``addr`` when it resolves; the loopback address when it does not and every rank runs on this machine.

    Why: torchrun's c10d rendezvous announces the machine's own host name as
    ``MASTER_ADDR``, and a container or a minimal chroot often cannot resolve
    that name (no ``/etc/hosts`` entry, no DNS), so the ranks could not find
    each other although they share the machine. On one node the loopback
    address reaches the same store. Across nodes it would not: a name that
    does not resolve there is refused with a sentence saying so.
    """
    try:
        socket.getaddrinfo(addr, None)
        return addr
    except (OSError, UnicodeError):  # socket.gaierror is an OSError; an over-long label a UnicodeError
        pass
    if single_node or addr == socket.gethostname():
        return LOOPBACK
    raise RuntimeError(
        f"MASTER_ADDR {addr!r} does not resolve to an address on this machine, so rank "
        f"{os.environ.get('RANK', '?')} cannot reach the rendezvous; add it to /etc/hosts or give an IP address")


def _single_node() -> bool:
    """Whether torchrun started every rank on this machine (its LOCAL_WORLD_SIZE equals the WORLD_SIZE)."""
    return os.environ.get("LOCAL_WORLD_SIZE") == os.environ.get("WORLD_SIZE")


def _resolve_master_addr() -> None:
    """Point ``MASTER_ADDR`` at an address that works (see :func:`rendezvous_address`) before the group is joined."""
    addr = os.environ.get("MASTER_ADDR")
    if not addr:
        return
    resolved = rendezvous_address(addr, _single_node())
    if resolved != addr:
        log.info("MASTER_ADDR %r does not resolve and every rank runs on this machine: using %s", addr, resolved)
        os.environ["MASTER_ADDR"] = resolved


#: How long ranks wait for each other while joining (a rank may still be reading its scenes).
_JOIN_TIMEOUT = timedelta(minutes=10)


def libuv_available() -> bool:
    """Whether this torch's TCPStore has its libuv backend (Debian's ``python3-torch`` has not).

    Asked by starting a throw-away store on a free local port: torch has no
    public flag for it, and a build without libuv refuses exactly that.
    """
    try:
        probe = dist.TCPStore("127.0.0.1", 0, 1, True, timeout=timedelta(seconds=10), wait_for_workers=False,
                              use_libuv=True)
    except (RuntimeError, ValueError):  # DistStoreError: "built without libuv support"
        return False
    del probe
    return True


def _use_libuv() -> bool:
    return os.environ.get("USE_LIBUV", "1") != "0" and libuv_available()


def _store_without_libuv(rank: int, world: int):
    """The rendezvous store of torch's ``env://``, made with ``use_libuv=False``.

    Under torchrun the launcher may already serve a store at MASTER_ADDR:MASTER_PORT
    (``TORCHELASTIC_USE_AGENT_STORE``); every rank is then its client. Otherwise
    rank 0 serves it. The prefix is the one torch adds to a store it makes itself.
    """
    addr = os.environ.get("MASTER_ADDR", LOOPBACK)
    port = int(os.environ.get("MASTER_PORT", "29500"))
    agent_serves = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == str(True)
    store = dist.TCPStore(addr, port, world, is_master=rank == 0 and not agent_serves, timeout=_JOIN_TIMEOUT,
                          multi_tenant=True, use_libuv=False)
    return dist.PrefixStore("default_pg", store)


def torchrun_command(nproc: int, rendezvous_file: Path, port: Optional[int] = None,
                     libuv: Optional[bool] = None) -> Tuple[List[str], Dict[str, str]]:
    """(argv up to the script, extra environment) launching ``nproc`` processes on this machine.

    With libuv, torchrun's usual static rendezvous on ``port``. Without (or
    ``libuv=False``), a rendezvous through ``rendezvous_file`` (which must not
    exist yet) and no store shared by the launcher, so that no process asks
    torch for a libuv store. ``libuv`` defaults to what this build has.
    """
    launch = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={int(nproc)}", "--nnodes=1"]
    if libuv if libuv is not None else libuv_available():
        if port is None:
            raise ValueError("torchrun_command: a free port is needed for the static rendezvous")
        return launch + ["--master_addr=127.0.0.1", f"--master_port={int(port)}"], {}
    return (launch + ["--rdzv-backend=c10d", f"--rdzv-endpoint={rendezvous_file}", "--rdzv-conf=store_type=file"],
            {"USE_LIBUV": "0", "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"})


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
