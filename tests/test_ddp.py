"""Two CPU processes under torchrun (gloo): replicas stay identical and match one process with the same global batch.

Exact by design: both runs draw the same samples (the patch dataset depends only
on seed, epoch and index; DistributedSampler splits one seeded permutation), RAMS
has no batch norm or dropout, and cL1 is a mean over samples, so the averaged
DDP gradient equals the single-process gradient up to float summation order.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.training.config import load_config
from core.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "resources" / "configs" / "tiny_rams_baseline.yaml"

WORKER = """
import os, sys
sys.path.insert(0, {root!r})
import torch
from core.training.config import load_config
from core.training.trainer import Trainer

trainer = Trainer(load_config(sys.argv[1], sys.argv[2:]), progress=None)
trainer.fit()
state = {{k: v.detach().clone() for k, v in trainer.model.state_dict().items()}}
torch.save(state, os.path.join(trainer.config.out_dir, "rank%s.pt" % os.environ["RANK"]))
"""


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_matches_single_process(tmp_path):
    from core.data.synthetic.towns import make_dataset

    data = tmp_path / "data"
    make_dataset(data, n_scenes=4, size_hr=96, seed=5, frames=3)
    common = [f"data.root={data}", "epochs=2", "data.samples_per_epoch=8", "optimizer=adam", "lr=1.0e-3"]
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER.format(root=str(ROOT)))
    ddp_out = tmp_path / "ddp"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(worker), str(TINY),
           *common, "data.batch_size=2", f"out_dir={ddp_out}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    r0 = torch.load(ddp_out / "rank0.pt", weights_only=True)
    r1 = torch.load(ddp_out / "rank1.pt", weights_only=True)
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"replicas differ in {k}"
    from core.models.zoo import read_card

    card_recipe = read_card(ddp_out / "last.safetensors").recipe
    assert card_recipe["world_size"] == 2 and card_recipe["global_batch"] == 4

    single = Trainer(load_config(TINY, [*common, "data.batch_size=4", f"out_dir={tmp_path / 'single'}"]))
    single.fit()
    ref = single.model.state_dict()
    for k in ref:
        torch.testing.assert_close(r0[k], ref[k], atol=1e-5, rtol=1e-4, msg=lambda m, k=k: f"{k}: {m}")
    # meaningful only if training moved the weights far more than the tolerance: compare with the
    # initial weights (same seed, same construction as Trainer.setup)
    from core.models.zoo import build
    from core.training.trainer import seed_everything

    seed_everything(single.config.seed)
    init = build("rams", scale=3, frames=3, **single.config.model.hparams).state_dict()
    moved = max(float((ref[k].float() - init[k].float()).abs().max()) for k in ref)
    assert moved > 1e-3
