"""Record in the shipped starter cards what they were trained on: processing level and input statistics.

Why: the checks of issue 20 (``core.io.input_signs``) warn when an input's
processing level or reflectances differ from a network's training data, but
the starter checkpoints were written before their cards could say it. This
script adds ``level`` (``L2A``: world v2 is drawn with surface-reflectance
spectra) and ``input_stats`` (per-band p2/p50/p98 of the training inputs: the
LR revisits for SR networks, the HR images for UNet++) to each card, through
the project's own save path (:func:`core.models.zoo.save_checkpoint`), and
verifies that every tensor is byte-identical to the file it replaces.

The statistics come from the training split of the starter's own dataset
(``core.training.starter.TRAIN_DATA``: world v2, seed 100), regenerated when
absent, with the same code as training (:mod:`core.training.card_facts`). The
generator may have changed since the weights were trained; the script says
which dataset it read.

Usage: ``python scripts/record_card_facts.py [--data runs/starter/data_train] [--models resources/models] [--dry-run]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _same_tensors(before: Path, after: Path) -> bool:
    """Every tensor of ``after`` has the name, dtype, shape and bytes it had in ``before``."""
    import torch
    from safetensors.torch import load_file

    def raw(t: torch.Tensor) -> bytes:
        return t.contiguous().view(-1).view(dtype=torch.uint8).numpy().tobytes()

    a, b = load_file(str(before)), load_file(str(after))
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and raw(a[k]) == raw(b[k]) for k in a)


def main(argv=None) -> int:
    import dataclasses
    import shutil
    import tempfile

    from core.data.scene import list_scenes, read_scene
    from core.models.zoo import load_checkpoint, save_checkpoint
    from core.training.card_facts import training_level, training_stats
    from core.training.starter import STARTER_MODELS, TRAIN_DATA, ensure_dataset

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / "runs/starter/data_train",
                    help="the starter's training dataset (written with its seed when absent)")
    ap.add_argument("--models", type=Path, default=ROOT / "resources/models")
    ap.add_argument("--dry-run", action="store_true", help="print the facts, write nothing")
    args = ap.parse_args(argv)

    root = ensure_dataset(args.data, TRAIN_DATA["scenes"], TRAIN_DATA["size"], TRAIN_DATA["frames"],
                          TRAIN_DATA["seed"])
    scenes = [read_scene(p, with_masks=False) for p in list_scenes(root, "train")]
    level = training_level(scenes)
    print(f"{len(scenes)} training scenes of {root} (world v2, seed {TRAIN_DATA['seed']}): level {level}")
    for model in STARTER_MODELS:
        path = args.models / model.file
        net, card = load_checkpoint(path)
        idx = [scenes[0].bands.index(b) for b in card.bands]
        stats = training_stats(scenes, idx, card.bands, hr=card.task == "segmentation")
        print(f"{model.file}: level {level}; " + "; ".join(
            f"{b} p2/p50/p98 {s['p2']:.3f}/{s['p50']:.3f}/{s['p98']:.3f}" for b, s in stats.items()))
        if args.dry_run:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            before = Path(tmp) / path.name
            shutil.copy2(path, before)
            save_checkpoint(path, net, dataclasses.replace(card, level=level, input_stats=stats))
            if not _same_tensors(before, path):
                shutil.copy2(before, path)
                raise SystemExit(f"{path}: the tensors changed on re-save; the original file was put back")
        print(f"  rewrote {path.name}: tensors byte-identical")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
