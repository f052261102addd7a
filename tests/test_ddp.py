"""Two CPU processes under torchrun (gloo): replicas stay identical and match one process with the same global batch.

Exact by design: both runs draw the same samples (the patch dataset depends only
on seed, epoch and index; DistributedSampler splits one seeded permutation), RAMS
has no batch norm or dropout, and cL1 is a mean over samples, so the averaged
DDP gradient equals the single-process gradient up to float summation order.

Also without libuv (Debian's ``python3-torch``; newer torch asks for libuv's
TCPStore by default and such a build refuses): a ``sitecustomize`` put on the
children's path makes this torch refuse exactly as that build does, and the
launch of :func:`core.training.distributed.torchrun_command` must still train.
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
from core.training.distributed import torchrun_command
from core.training.trainer import trainer_for

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "resources" / "configs" / "tiny_rams_baseline.yaml"

WORKER = """
import os, sys
sys.path.insert(0, {root!r})
import torch
from core.training.config import load_config
from core.training.distributed import torchrun_command
from core.training.trainer import trainer_for

trainer = trainer_for(load_config(sys.argv[1], sys.argv[2:]), progress=None)
trainer.fit()
state = {{k: v.detach().clone() for k, v in trainer.model.state_dict().items()}}
torch.save(state, os.path.join(trainer.config.out_dir, "rank%s.pt" % os.environ["RANK"]))
"""


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# What Debian's torch does when asked for a libuv TCPStore; every other store is the real one.
NO_LIBUV = """
import sys
import torch._C._distributed_c10d as _c10d

_Real = _c10d.TCPStore


class TCPStore(_Real):
    def __init__(self, *args, **kwargs):
        if kwargs.get("use_libuv", args[8] if len(args) > 8 else True):
            from torch.distributed import DistStoreError

            raise DistStoreError("use_libuv was requested but PyTorch was built without libuv support, "
                                 "run with USE_LIBUV=0 to disable it.")
        super().__init__(*args, **kwargs)


for _name, _mod in list(sys.modules.items()):
    if _name.startswith("torch") and getattr(_mod, "TCPStore", None) is _Real:
        _mod.TCPStore = TCPStore
"""


def _train_two_ranks(tmp_path: Path, data: Path, common: list, without_libuv: bool = False) -> Path:
    """Two ranks of the worker under torchrun; returns their run folder (rank0.pt, rank1.pt, checkpoints).

    ``without_libuv`` makes the children's torch refuse libuv stores; otherwise the launch is
    whatever this build supports (the static rendezvous here, the file one on Debian's torch).
    """
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER.format(root=str(ROOT)))
    out = tmp_path / ("ddp_no_libuv" if without_libuv else "ddp")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    launch, extra = torchrun_command(2, tmp_path / f"rdzv-{out.name}", port=_free_port(),
                                     libuv=False if without_libuv else None)
    if without_libuv:
        shim = tmp_path / "no_libuv"
        shim.mkdir()
        (shim / "sitecustomize.py").write_text(NO_LIBUV)
        env["PYTHONPATH"] = os.pathsep.join([str(shim), env.get("PYTHONPATH", "")])
    cmd = [*launch, str(worker), str(TINY), *common, "data.batch_size=2", f"out_dir={out}"]
    proc = subprocess.run(cmd, cwd=ROOT, env={**env, **extra}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def _replicas_agree(out: Path) -> dict:
    r0 = torch.load(out / "rank0.pt", weights_only=True)
    r1 = torch.load(out / "rank1.pt", weights_only=True)
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"replicas differ in {k}"
    from core.models.zoo import read_card

    card_recipe = read_card(out / "last.safetensors").recipe
    assert card_recipe["world_size"] == 2 and card_recipe["global_batch"] == 4
    return r0


@pytest.fixture(scope="module")
def towns(tmp_path_factory) -> Path:
    from core.data.synthetic.towns import make_dataset

    data = tmp_path_factory.mktemp("towns") / "data"
    make_dataset(data, n_scenes=4, size_hr=96, seed=5, frames=3)
    return data


def test_the_simulated_build_without_libuv_refuses_a_libuv_store(tmp_path):
    shim = tmp_path / "no_libuv"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(NO_LIBUV)
    code = "from core.training.distributed import libuv_available; print(libuv_available())"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.strip() == "False", done.stderr[-2000:]


def test_two_process_ddp_without_libuv(tmp_path, towns):
    common = [f"data.root={towns}", "epochs=1", "data.samples_per_epoch=8", "optimizer=adam", "lr=1.0e-3"]
    _replicas_agree(_train_two_ranks(tmp_path, towns, common, without_libuv=True))


def test_two_process_ddp_matches_single_process(tmp_path, towns):
    data = towns
    # The paper's pixel-shuffle network: with resize_conv, biases that only add a constant to the output get
    # no true gradient from cL1 (blind to constant offsets), and Adam's first steps (g / (|g| + eps)) turn the
    # float rounding of that zero, which differs between one batch of 4 and two of 2, into 1e-5..1e-4 steps.
    common = [f"data.root={data}", "epochs=2", "data.samples_per_epoch=8", "optimizer=adam", "lr=1.0e-3",
              "model.hparams.upsampler=pixelshuffle"]
    r0 = _replicas_agree(_train_two_ranks(tmp_path, data, common))

    single = trainer_for(load_config(TINY, [*common, "data.batch_size=4", f"out_dir={tmp_path / 'single'}"]))
    single.fit()
    ref = single.model.state_dict()
    for k in ref:
        torch.testing.assert_close(r0[k], ref[k], atol=1e-5, rtol=1e-4, msg=lambda m, k=k: f"{k}: {m}")
    # meaningful only if training moved the weights far more than the tolerance: compare with the
    # initial weights (same seed, same construction as TrainingLoop.setup)
    from core.models.zoo import build
    from core.training.trainer import seed_everything

    seed_everything(single.config.seed)
    init = build("rams", scale=3, frames=3, **single.config.model.hparams).state_dict()
    moved = max(float((ref[k].float() - init[k].float()).abs().max()) for k in ref)
    assert moved > 1e-3
