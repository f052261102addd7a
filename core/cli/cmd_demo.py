"""CLI: ``demo`` (the one-command tour on a synthetic scene) and ``weights`` (rebuild the starter models)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import RESOURCES
from ..lazy import lazy_module

__all__ = ["register"]

# The engine, imported when a command runs: parsing --help stays free of torch (tests/test_cli_light.py).
_showcase = lazy_module("..evaluation.showcase", __package__)
_starter = lazy_module("..training.starter", __package__)


def _demo(args: argparse.Namespace) -> int:
    try:
        result = _showcase.run_demo(Path(args.out), Path(args.models), seed=args.seed, size_hr=args.size,
                                    real_world=not args.simulated)
    except _showcase.DemoNotReady as exc:
        print(f"error: {exc}")
        return 1
    print(f"\nDemo finished in {result.seconds:.0f} s. Everything is in {result.out_dir}/:")
    print(f"  scene (LR revisits, HR, masks) {result.scene_dir}")
    for role, path in result.outputs.items():
        print(f"  {role:<30} {path}")
    print(f"  metrics table                  {result.table_md}")
    print(f"  side-by-side figure            {result.figure}")
    print("\n" + result.table_md.read_text(encoding="utf-8"))
    return 0


def _weights(args: argparse.Namespace) -> int:
    known = {m.key for m in _starter.STARTER_MODELS}
    only = [k.strip() for k in args.only.split(",")] if args.only else None
    unknown = sorted(set(only or ()) - known)
    if unknown:
        raise ValueError(f"unknown starter model(s) {', '.join(unknown)}; choose among {', '.join(sorted(known))}")
    _starter.build_starter_weights(out_dir=Path(args.out) if args.out else _starter.MODELS_DIR,
                                   work_dir=Path(args.work), only=only)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="super-resolve and segment a synthetic scene with the shipped models",
        description="Generate a synthetic town, super-resolve its revisits with the RAMS and HAT starter models "
                    "(baseline and task-driven), segment buildings and roads on every output, and write "
                    "GeoTIFFs, a metrics table and a side-by-side figure.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default="demo_output", help="output folder")
    p.add_argument("--models", default=str(RESOURCES / "models"),
                   help="folder with the starter checkpoints")
    p.add_argument("--seed", type=int, default=11, help="seed of the synthetic scene")
    p.add_argument("--size", type=int, default=384, help="HR size of the scene in pixels (multiple of 3)")
    p.add_argument("--simulated", action="store_true",
                   help="revisits that differ only by noise and shift (default: real-world-like dates with "
                        "phenology, haze, clouds)")
    p.set_defaults(func=_demo)

    w = sub.add_parser(
        "weights",
        help="retrain the starter checkpoints of resources/models",
        description="Make the synthetic training and test towns, train the six starter networks "
                    "(resources/configs/starter/*.yaml; segmentation first), evaluate each on unseen scenes "
                    "and publish it with its model card. Resumes interrupted runs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    w.add_argument("--out", default=None, help="where to publish the checkpoints (default: resources/models)")
    w.add_argument("--work", default="runs/starter", help="folder for data and training runs")
    w.add_argument("--only", default=None,
                   help="comma-separated subset, e.g. seg_buildings,rams_baseline (others must exist in --work)")
    w.set_defaults(func=_weights)
