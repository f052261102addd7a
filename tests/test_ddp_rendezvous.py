"""The DDP rendezvous falls back to 127.0.0.1 when the announced host name does not resolve (issue 24, item 8).

Reported from Debian 13 and sid chroots: neither minimal system resolves the
machine's own name, torchrun's c10d rendezvous announces that name as
``MASTER_ADDR``, and the two-rank training tests could not meet. Containers
often behave the same. ``.invalid`` names never resolve (RFC 2606), so they
stand for such a host name here; the ranks below are real processes joining a
real gloo group.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from core.training.distributed import LOOPBACK, rendezvous_address

ROOT = Path(__file__).resolve().parents[1]
UNRESOLVABLE = "s2sr-rendezvous-test.invalid"

RANK = """
import json, sys
sys.path.insert(0, {root!r})
import torch
import torch.distributed as dist
from core.training.distributed import init_distributed, shutdown

torch.set_num_threads(1)
ctx = init_distributed(torch.device("cpu"))
value = torch.tensor([float(ctx.rank + 1)])
dist.all_reduce(value)
print(json.dumps({{"rank": ctx.rank, "sum": value.item(), "addr": __import__("os").environ["MASTER_ADDR"]}}))
shutdown(ctx)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def test_an_address_that_resolves_is_kept() -> None:
    assert rendezvous_address("127.0.0.1", single_node=False) == "127.0.0.1"
    assert rendezvous_address("127.0.0.1", single_node=True) == "127.0.0.1"


def test_a_name_that_does_not_resolve_on_one_node_becomes_the_loopback_address() -> None:
    assert rendezvous_address(UNRESOLVABLE, single_node=True) == LOOPBACK


def test_a_name_that_does_not_resolve_across_nodes_is_refused_with_a_sentence() -> None:
    with pytest.raises(RuntimeError, match=f"MASTER_ADDR '{UNRESOLVABLE}' does not resolve.*/etc/hosts"):
        rendezvous_address(UNRESOLVABLE, single_node=False)


def test_two_ranks_meet_although_master_addr_does_not_resolve(tmp_path: Path) -> None:
    script = tmp_path / "rank.py"
    script.write_text(RANK.format(root=str(ROOT)), encoding="utf-8")
    base = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "TORCHELASTIC_USE_AGENT_STORE")}
    base.update(WORLD_SIZE="2", LOCAL_WORLD_SIZE="2", MASTER_ADDR=UNRESOLVABLE, MASTER_PORT=str(_free_port()),
                OMP_NUM_THREADS="1")
    ranks = [subprocess.Popen([sys.executable, str(script)], cwd=str(ROOT), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**base, "RANK": str(r), "LOCAL_RANK": str(r)})
             for r in (0, 1)]
    results = []
    try:
        for proc in ranks:
            out, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, f"rank exited {proc.returncode}\n{out[-2000:]}\n{err[-3000:]}"
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in ranks:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert sorted(r["rank"] for r in results) == [0, 1]
    assert all(r["sum"] == 3.0 and r["addr"] == LOOPBACK for r in results), results
