"""CLI: ``train``, ``evaluate``, ``experiments run`` and ``report``.

``train CONFIG --progress jsonl`` prints one JSON object per line on stdout
(flushed), which is what the QGIS training dialog reads; ``--progress tqdm``
draws progress bars for a person at a terminal.

Scale-out: ``torchrun --nproc_per_node=N -m core.cli train CONFIG`` trains with
DistributedDataParallel; ``data.batch_size`` is per process, so the global batch
is ``batch_size x N``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict

from tqdm import tqdm

from ..lazy import lazy_module
from ..options import EvaluateOptions
from .progress import event_printer

__all__ = ["register"]

# The engine, imported when a command runs: parsing --help stays free of torch (tests/test_cli_light.py).
_atomic = lazy_module("..io.atomic", __package__)
_config = lazy_module("..training.config", __package__)
_distributed = lazy_module("..training.distributed", __package__)
_evaluate = lazy_module("..evaluation.evaluate", __package__)
_experiments = lazy_module("..training.experiments", __package__)
_report = lazy_module("..evaluation.report", __package__)
_trainer = lazy_module("..training.trainer", __package__)
_writer = lazy_module("..io.writer", __package__)


def _cmd_train(args: argparse.Namespace) -> int:
    overrides = list(args.set or [])
    if args.device:
        overrides.append(f"device={args.device}")
    if args.out:
        overrides.append(f"out_dir={args.out}")
    config = _config.load_config(args.config, overrides)
    run_config = Path(config.out_dir) / "config.yaml"
    if run_config.exists() and run_config.resolve() == Path(args.config).resolve():
        raise _config.ConfigError(f"{args.config}: is the run folder's own config.yaml, which training rewrites "
                                  "with the resolved recipe; copy it elsewhere and train from the copy")
    progress = event_printer(args.progress)  # train() reports from rank 0 only under torchrun
    best = _trainer.train(config, progress=progress, resume=not args.no_resume)
    if args.progress != "jsonl":
        print(best)
    return 0


def _print_metrics(result: Dict[str, Any]) -> None:
    rows = [(k, v) for k, v in result.items() if k != "per_scene"]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        if isinstance(v, float):
            v = f"{v:.4f}"
        elif v is None:
            v = "n/a"
        print(f"{k:<{width}}  {v}")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    if args.json:  # before the evaluation: a wrong path must not cost the whole run and its metrics
        inputs = [p for p in (args.checkpoint, args.seg_buildings, args.seg_roads) if p]
        _writer.check_output_path(args.json, inputs)
    bar = tqdm(total=100, desc="evaluating", unit="%", file=sys.stderr, leave=False)

    def progress(pct: float, msg: str) -> None:
        bar.n = int(pct)
        bar.set_postfix_str(msg, refresh=True)

    try:
        options = EvaluateOptions(split=args.split, max_scenes=args.max_scenes,
                                  device=_distributed.resolve_device(args.device).type, tile=args.tile,
                                  overlap=args.overlap, hr_reference=args.hr_reference)
        result = _evaluate.evaluate_checkpoint(args.checkpoint, args.data, seg_buildings=args.seg_buildings,
                                               seg_roads=args.seg_roads, options=options, progress=progress)
    finally:
        bar.close()
    if args.json:
        _atomic.write_json_atomic(args.json, result)
    _print_metrics(result)
    return 0


def _cmd_experiments_run(args: argparse.Namespace) -> int:
    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    roots = {}
    if args.data_simulated:
        roots["simulated"] = args.data_simulated
    if args.data_real:
        roots["real"] = args.data_real
    printer = event_printer(args.progress)
    rows = _experiments.run_grid(args.grid, only=only, data_roots=roots, epochs=args.epochs, out_dir=args.out,
                                 device=args.device, overrides=args.set or [], progress=printer,
                                 resume=not args.no_resume, max_test_scenes=args.max_test_scenes,
                                 profile=_experiments.load_profile(args.profile) if args.profile else None)
    if args.progress != "jsonl":
        for r in rows:
            cells = ", ".join(f"{k} {v:.4g}" for k, v in r.items()
                              if k in ("cpsnr", "cssim", "lpips", "dice_buildings", "dice_roads")
                              and isinstance(v, float))
            print(f"{r['id']:>5}  {r['data_version']}: {cells}")
        print(f"report: {Path(args.out) / 'report.html'}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    if (run_dir / "rows.json").is_file():
        rows = json.loads((run_dir / "rows.json").read_text(encoding="utf-8"))
        paths = _experiments.write_grid_report(run_dir, rows, args.title)
        print(paths["html"])
        return 0
    if (run_dir / "history.json").is_file():
        history = json.loads((run_dir / "history.json").read_text(encoding="utf-8"))
        print(_report.plot_training_curves(_trainer.curves_history(history), run_dir / "training_curves.png",
                                           title=args.title))
        return 0
    raise FileNotFoundError(f"{run_dir}: neither rows.json (an experiment grid) nor history.json (a training run)")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train a segmentation or super-resolution network from a YAML config",
        description="Train one recipe (resources/configs/*.yaml). Resumes from OUT_DIR/last.pt when present. "
                    "Under `torchrun --nproc_per_node=N` trains with DDP; the global batch is "
                    "data.batch_size x N.",
    )
    p.add_argument("config", help="YAML training config")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a setting, e.g. --set epochs=5 --set data.root=demo/data "
                        "--set loss.terms[1].proportion=0.5 (repeatable)")
    p.add_argument("--progress", choices=("tqdm", "jsonl", "none"), default="tqdm",
                   help="tqdm bars (default) or one JSON event per line on stdout (for the QGIS dialog)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (overrides the config)")
    p.add_argument("--out", help="run folder (overrides out_dir)")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if OUT_DIR/last.pt exists")
    p.set_defaults(func=_cmd_train)

    p = subparsers.add_parser(
        "evaluate", help="evaluate an SR or segmentation checkpoint on whole scenes of a split",
        description="cPSNR, cSSIM, LPIPS (when its weights are on disk) and building/road Dice, accuracy, "
                    "precision, recall through frozen segmentation networks, over whole scenes.",
    )
    p.add_argument("--checkpoint", required=True, help=".safetensors checkpoint to evaluate")
    p.add_argument("--data", required=True, help="dataset folder (scenes + split.json)")
    p.add_argument("--split", default="test", choices=("train", "val", "test", "all"))
    p.add_argument("--seg-buildings", help="building segmentation checkpoint (Dice of the SR output)")
    p.add_argument("--seg-roads", help="road segmentation checkpoint")
    p.add_argument("--hr-reference", action="store_true", help="also segment the HR images (upper bound)")
    p.add_argument("--device", default="auto")
    p.add_argument("--tile", type=int, default=48, help="LR tile size (default 48)")
    p.add_argument("--overlap", type=int, default=8, help="LR tile overlap (default 8)")
    p.add_argument("--max-scenes", type=int, help="evaluate only the first N scenes")
    p.add_argument("--json", help="also write the metrics to this JSON file")
    p.set_defaults(func=_cmd_evaluate)

    p = subparsers.add_parser("experiments", help="run the study's experiment grid",
                              description="Run the grid of experiment configs and render the report.")
    sub = p.add_subparsers(dest="experiments_command", metavar="ACTION")
    r = sub.add_parser(
        "run", help="train and evaluate grid rows, then write the report",
        description="Each row names its data version (simulated / real); point the versions at datasets "
                    "with --data-simulated / --data-real. Rows already trained in --out are resumed.",
    )
    r.add_argument("grid", help="folder of experiment configs (e.g. resources/configs/experiments) or a YAML list")
    r.add_argument("--only", help="comma-separated experiment ids, e.g. 1,7 or 1-S")
    r.add_argument("--data-simulated", help="dataset for rows with data.version: simulated")
    r.add_argument("--data-real", help="dataset for rows with data.version: real")
    r.add_argument("--epochs", type=int, help="override every row's number of epochs (quick runs)")
    r.add_argument("--out", default="runs/experiments", help="output folder (default runs/experiments)")
    r.add_argument("--device", help="cpu, cuda or auto for every row")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting in every row")
    r.add_argument("--profile", metavar="YAML",
                   help="compute profile: per-architecture overrides that shrink every row alike, e.g. "
                        "resources/configs/experiments/profiles/synthetic_cpu.yaml")
    r.add_argument("--max-test-scenes", type=int, help="evaluate each row on the first N test scenes only")
    r.add_argument("--progress", choices=("tqdm", "jsonl", "none"), default="tqdm")
    r.add_argument("--no-resume", action="store_true", help="retrain rows even if their runs exist")
    r.set_defaults(func=_cmd_experiments_run)
    p.set_defaults(func=lambda a, parser=p: (parser.print_help(), 2)[1])

    p = subparsers.add_parser("report", help="render the report of an experiment grid or a training run",
                              description="RUN_DIR with rows.json: colour-coded tables (report.md/html). "
                                          "RUN_DIR with history.json: training curves PNG.")
    p.add_argument("run_dir")
    p.add_argument("--title", default="Task-driven SR experiments")
    p.set_defaults(func=_cmd_report)
