"""Start a larger segmentation network from a smaller one: the encoder stages they share are copied.

Why: the earlier buildings network was a ``unet-tiny`` (encoder depth 3) trained
long on world v2's villages; the buildings network for villages and cities shipped
since 2026-12-08 is a ``unet-small`` (depth 4, wider decoder: docs/results/segmenters.md)
grown from it this way. Starting one from the small network's stem and first stages
keeps what those learned about Sentinel-2's bands and radiometry; the new stage and
the decoder start fresh.
The result is a checkpoint ``core.cli train`` takes as ``model.init_from``.

Usage::

    python scripts/grow_segmenter.py runs/my_unet_tiny/best.safetensors runs/warm_small.safetensors \\
        --preset unet-small
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def grow(source: Path, target: Path, preset: str) -> Tuple[int, int]:
    """Write ``target``: a ``preset`` network with every encoder tensor of ``source`` whose name and shape match.

    Returns (tensors copied, encoder tensors of the new network). The card keeps the source's bands,
    normalization and target; its hyper-parameters become the preset's.
    """
    from core.models.archs.segmentation import UNETPP_PRESETS
    from core.models.zoo import load_checkpoint, save_checkpoint

    old, card = load_checkpoint(source)
    if card.arch != "unetpp" or preset not in UNETPP_PRESETS:
        raise ValueError(f"{source}: a segmentation network ({card.arch}) and a segmentation preset "
                         f"({', '.join(UNETPP_PRESETS)}) are needed")
    hparams = {**card.hparams, **UNETPP_PRESETS[preset]}
    new = type(old)(**hparams)
    state = new.state_dict()
    copied = 0
    for name, tensor in old.state_dict().items():
        if name.startswith("net.encoder.") and name in state and state[name].shape == tensor.shape:
            state[name] = tensor
            copied += 1
    new.load_state_dict(state)
    encoder = sum(1 for k in state if k.startswith("net.encoder."))
    grown = dataclasses.replace(card, hparams=dict(new.hparams),
                                description=f"{preset} started from {Path(source).name}: {copied} of its encoder "
                                            f"tensors copied, the rest untrained")
    target.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(target, new, grown)
    return copied, encoder


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="the smaller segmentation checkpoint")
    ap.add_argument("target", type=Path, help="where to write the larger one (refused if it exists)")
    ap.add_argument("--preset", default="unet-small", help="the larger network's preset (default unet-small)")
    args = ap.parse_args(argv)
    if args.target.exists():
        ap.error(f"{args.target} exists: choose a new file")
    try:
        copied, encoder = grow(args.source, args.target, args.preset)
    except Exception as exc:  # one line for the user, as every script of the project
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.target}: {copied} of {encoder} encoder tensors copied from {args.source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
