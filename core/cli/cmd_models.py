"""Model commands: ``models info``, ``models list``, ``models import-hat``.

Examples::

    python -m core.cli models info resources/models/rams_nir.safetensors
    python -m core.cli models info model.safetensors --json
    python -m core.cli models list
    python -m core.cli models import-hat HAT-S_SRx3.pth hat_s_x3.safetensors --preset hat-s
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, List

from ..lazy import lazy_module

# The engine, imported when a command runs: parsing --help stays free of torch (tests/test_cli_light.py).
_official = lazy_module("..models.archs.hat.official", __package__)
_meta = lazy_module("..models.meta_device", __package__)
_registry = lazy_module("..models.registry", __package__)
_zoo = lazy_module("..models.zoo", __package__)

# torch and the networks are imported inside the handlers so that `--help` stays fast.

_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}


def _tensor_summary(path: Path) -> Dict[str, int]:
    """Counts read off the safetensors header: no tensor is loaded."""
    _, header = _zoo.read_header(path)
    weights = other = 0
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        n = 1
        for d in entry.get("shape", []):
            n *= int(d)
        if entry.get("dtype") in _FLOAT_DTYPES:
            weights += n
        else:
            other += n
    return {"tensors": len(header) - ("__metadata__" in header), "weights": weights, "other_values": other}


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt_value(x) for x in v) + "]"
    return str(v)


def _card_lines(path: Path) -> List[str]:
    card = _zoo.read_card(path)
    counts = _tensor_summary(path)
    what = "super-resolution" if card.task == "sr" else f"segmentation of {card.target or '?'}"
    rows = [("Checkpoint", str(path)), ("Name", card.name or "(unnamed)"), ("Task", what),
            ("Architecture", card.arch)]
    if card.task == "sr":
        rows += [("Scale", f"x{card.scale}"), ("Frames", str(card.frames))]
    norm = card.normalization or {}
    rows += [
        ("Bands", ", ".join(card.bands) if card.bands else "(not recorded)"),
        ("Normalization", "model units = (reflectance - {}) / {}".format(
            _fmt_value(norm.get("offset")), _fmt_value(norm.get("scale")))),
        ("Weights", f"{counts['weights']:,} in {counts['tensors']} tensors"),
        ("Created", f"{card.created or '(unknown)'}   (card version {card.version})"),
        ("File", f"{path.stat().st_size / 1e6:.2f} MB, sha256 {_zoo.file_sha256(path)}"),
    ]
    if card.description:
        rows.append(("Description", card.description))
    lines = [f"{label:<14} {value}" for label, value in rows]
    for title, section in (("Hyper-parameters", card.hparams), ("Training recipe", card.recipe),
                           ("Metrics", card.metrics), ("Other", card.extra)):
        if section:
            lines.append(f"{title}:")
            width = max(len(str(k)) for k in section)
            lines += [f"  {str(k):<{width}}  {_fmt_value(v)}" for k, v in sorted(section.items())]
    return lines


def _info(args: argparse.Namespace) -> int:
    path = Path(args.checkpoint)
    if args.json:
        print(json.dumps(_zoo.read_card(path).to_dict(), indent=2, sort_keys=True))
    else:
        print("\n".join(_card_lines(path)))
    return 0


def _list(args: argparse.Namespace) -> int:
    rows = []
    for arch in _registry.registered():
        for preset in _registry.presets_of(arch):
            with _meta.meta_device():  # count without allocating (HAT-L is 40M parameters); imports on CPU
                model = _registry.build(arch, preset=preset)
            n = sum(p.numel() for p in model.parameters())
            rows.append((arch, preset, f"{n:,}"))
    print(f"{'arch':<8} {'preset':<12} {'parameters':>12}")
    for arch, preset, n in rows:
        print(f"{arch:<8} {preset:<12} {n:>12}")
    return 0


def _import_hat(args: argparse.Namespace) -> int:
    card = _official.import_official_hat(
        args.pth, args.out, preset=args.preset, in_chans=args.in_chans, scale=args.scale,
        bands=args.bands, name=args.name,
    )
    print(f"wrote {args.out}: HAT x{card.scale}, {card.hparams['in_chans']} band(s), "
          f"embed {card.hparams['embed_dim']}, depths {card.hparams['depths']}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="inspect checkpoints, list networks, import official HAT weights",
                              description="Inspect model checkpoints and the networks of the model zoo.")
    sub = p.add_subparsers(dest="models_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    i = sub.add_parser("info", help="print the model card of a checkpoint",
                       description="Print the model card of a .safetensors checkpoint (what it is, "
                                   "how to feed it, how it was trained) without loading its weights.")
    i.add_argument("checkpoint", help="checkpoint file (.safetensors)")
    i.add_argument("--json", action="store_true", help="print the raw card as JSON")
    i.set_defaults(func=_info)

    ls = sub.add_parser("list", help="list architectures, presets and their parameter counts")
    ls.set_defaults(func=_list)

    h = sub.add_parser("import-hat", help="convert an official HAT .pth into a safetensors checkpoint",
                       description="Convert an official HAT checkpoint (.pth, 'params_ema') into this "
                                   "plugin's checkpoint format. The file is read with weights_only=True; "
                                   "the architecture is read off the weights and checked against "
                                   "--preset / --in-chans / --scale when given.")
    h.add_argument("pth", help="official HAT checkpoint (.pth)")
    h.add_argument("out", help="output checkpoint (.safetensors)")
    h.add_argument("--preset", choices=["hat-s", "hat", "hat-l", "hat-tiny"], help="expected preset")
    h.add_argument("--in-chans", type=int, help="expected number of bands")
    h.add_argument("--scale", type=int, help="expected scale factor")
    h.add_argument("--bands", nargs="+", help="band names to record in the card (e.g. B8)")
    h.add_argument("--name", help="name to record in the card")
    h.set_defaults(func=_import_hat)
