"""Score the trust map on synthetic world-v2 scenes with a known truth; write docs/results/trust_eval.md.

Usage::

    python scripts/evaluate_trust.py                      # 3 world-v2 + 2 towns test scenes (seeds 900..)
    python scripts/evaluate_trust.py --calibrate          # 2 calibration scenes (seeds 800..): thresholds
    python scripts/evaluate_trust.py --models rams_taskdriven=path/to.safetensors --scenes 1

For every scene (288 px HR, 9 simulated revisits; world v2 judged on B08, and
the v1 towns the shipped networks were trained on) it judges the HR image,
the HR image with planted inventions (checkerboards, painted roads and roofs,
phantom roads) and each SR checkpoint's output through the plugin's own jobs
(``super_resolve``, ``trust_map``, ``segment``) and prints, per output: the
share the truth calls invented, the class shares, precision and recall of
"likely invented" (and of "not supported" = uncertain or likely invented)
against that truth, and what ``supported_only`` does to the building / road
polygons. ``--calibrate`` prints the thresholds the classes use
(``core/inference/trust_classes.py``) from the calibration scenes instead and
writes them to docs/results/trust_calibration.json. Re-runnable: the starter
checkpoints will be retrained, run it again then. Takes about 10 min per
scene on a 2-core CPU (the RAMS instability pass dominates).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from core.evaluation.trust_eval import TRUTH_TAU, calibrate, evaluate_scene  # noqa: E402
from core.inference.support import SUPPORT_MAX_TRUST, SUPPORT_SHARE  # noqa: E402
from core.inference.trust_classes import ClassRule  # noqa: E402

MODELS = ROOT / "resources" / "models"
SR_MODELS = ("rams_baseline", "rams_taskdriven", "hat_baseline", "hat_taskdriven")


def _fmt(v, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    return f"{100 * v:.1f} %" if pct else f"{v:.3f}"


def _pooled(results, case: str):
    rs = [r for r in results if r.case == case]
    tp2, fp2, fn2 = (sum(getattr(r, k) for r in rs) for k in ("tp2", "fp2", "fn2"))
    tp12, fp12, fn12 = (sum(getattr(r, k) for r in rs) for k in ("tp12", "fp12", "fn12"))
    px = sum(r.pixels for r in rs)
    shares = {k: sum(r.shares[k] * r.pixels for r in rs) / px for k in ("supported", "uncertain", "invented")}
    truth = sum(r.invented_truth * r.pixels for r in rs) / px
    planted = [r.planted_flagged for r in rs if r.planted_flagged is not None]
    clean = [r.clean_flagged for r in rs if r.clean_flagged is not None]
    objs = {}
    for r in rs:
        for o in r.objects:
            d = objs.setdefault(o.target, [0, 0, 0, 0, 0, 0])
            for i, v in enumerate((o.objects, o.false, o.false_removed, o.true_lost, o.invented,
                                   o.invented_removed)):
                d[i] += v
    return dict(
        truth=truth, shares=shares,
        p2=tp2 / (tp2 + fp2) if tp2 + fp2 else None, r2=tp2 / (tp2 + fn2) if tp2 + fn2 else None,
        p12=tp12 / (tp12 + fp12) if tp12 + fp12 else None, r12=tp12 / (tp12 + fn12) if tp12 + fn12 else None,
        planted=float(np.mean(planted)) if planted else None, clean=float(np.mean(clean)) if clean else None,
        objects=objs, seconds=sum(r.seconds for r in rs))


def save_samples(path, results) -> None:
    """The calibration's signal samples and case scores, so thresholds can be re-derived without rerunning."""
    arrays = {f"{i}/{k}": v for i, r in enumerate(results) for k, v in r.samples.items()}
    meta = [r.as_dict() for r in results]
    np.savez_compressed(path, meta=np.array(json.dumps(meta, default=float)), **arrays)


def load_samples(path):
    from core.evaluation.trust_eval import CaseResult, ObjectCounts

    data = np.load(path)
    out = []
    for i, d in enumerate(json.loads(str(data["meta"]))):
        for k in ("precision", "recall", "precision_not_supported", "recall_not_supported"):
            d.pop(k, None)
        d["objects"] = [ObjectCounts(**{**o, "details": [tuple(x) for x in o.get("details", [])]})
                        for o in d["objects"]]
        r = CaseResult(**d)
        r.samples = {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith(f"{i}/")}
        out.append(r)
    return out


WORLDS = {"v2": "synthetic world v2 (rural land, 4 bands; band B08 judged)",
          "towns": "synthetic towns v1 (the shipped networks' training world; band B8)"}


def report(sections, args, seconds: float) -> str:
    rule = ClassRule()
    lines = [
        "# Trust map evaluation on synthetic scenes with a known truth",
        "",
        f"Written by `python scripts/evaluate_trust.py` ({args.size} px HR, 9 simulated revisits; "
        f"{seconds / 60:.0f} min on this 2-core CPU). Truth: a pixel is *invented* where the output lies outside "
        f"the range between the bicubic upsampling of its input and the HR image by more than {TRUTH_TAU:g} "
        "reflectance (3x3 mean; `core.evaluation.trust_eval.invented_truth`): it shows something that is neither "
        "on the ground nor in the 10 m data (blurry or partly sharpened pixels are not invented). Precision and recall are those of the class *likely "
        "invented* against that truth, then of *uncertain or likely invented*. Class thresholds "
        f"(`core/inference/trust_classes.py`): `{json.dumps(rule.as_dict())}`.",
        "",
        "`hr` is the HR image itself (nothing invented), `hr_checkerboard` with stamped 3-px checkerboards (RMS "
        "0.01, 0.02, 0.04 reflectance), `hr_fake_objects` with painted roads and roofs that are not in the scene, "
        "`hr_phantom_roads` with roads that keep every 10 m pixel's mean (detail above the 10 m Nyquist limit "
        "only); these have no checkpoint, hence no instability band. The others are the checkpoints' outputs, "
        "judged with the instability band. *Planted flagged*: share of the planted pixels classed likely "
        "invented; *far*: the same share more than 24 px away from anything planted.",
    ]
    for world, (results, scenes) in sections.items():
        lines += ["", f"## {WORLDS[world]}", "",
                  f"{len(scenes)} scene(s): {', '.join(s.name for s in scenes)}.", ""]
        lines += _tables(results)
    lines += ["", "Per scene and output (JSON): `docs/results/trust_eval.json`.", ""]
    return "\n".join(lines)


def _tables(results):
    cases = list(dict.fromkeys(r.case for r in results))
    lines = [
        "| output | invented (truth) | supported | uncertain | likely invented | precision | recall | "
        "precision (≥ uncertain) | recall (≥ uncertain) | planted flagged | far from planted flagged |",
        "|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    pooled = {c: _pooled(results, c) for c in cases}
    for c in cases:
        p = pooled[c]
        lines.append(
            f"| {c} | {_fmt(p['truth'], True)} | {_fmt(p['shares']['supported'], True)} | "
            f"{_fmt(p['shares']['uncertain'], True)} | {_fmt(p['shares']['invented'], True)} | {_fmt(p['p2'])} | "
            f"{_fmt(p['r2'])} | {_fmt(p['p12'])} | {_fmt(p['r12'])} | {_fmt(p['planted'], True)} | "
            f"{_fmt(p['clean'], True)} |")
    lines += [
        "",
        "**Objects: what `supported_only` removes.**",
        "",
        f"Supported = at least {SUPPORT_SHARE:g} of the object's pixels also found on the bicubic upsampling of "
        f"the input, or a mean trust class below {SUPPORT_MAX_TRUST:g}. An object is *true* when at least half of "
        "it lies on the scene's mask of its class (dilated by one pixel); a false one is *invented* when the same "
        "networks do not find it on the HR image, else a *segmentation error* (the networks' own mistake on real "
        "land: no check of the SR output can or should remove it).",
        "",
        "| output | layer | objects | true | true lost | invented | invented removed | segmentation errors | "
        "their removal |",
        "|:--|:--|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for c in cases:
        for target, counts in pooled[c]["objects"].items():
            n, false, removed, lost, inv, inv_removed = counts
            seg, seg_removed = false - inv, removed - inv_removed
            lines.append(f"| {c} | {target} | {n} | {n - false} | {lost} | {inv} | {inv_removed} | {seg} | "
                         f"{seg_removed} |")
    rules = {
        f"on_bicubic (share >= {SUPPORT_SHARE:g})": lambda b, t: b is not None and b >= SUPPORT_SHARE,
        f"trust_class < {SUPPORT_MAX_TRUST:g}": lambda b, t: t is not None and t < SUPPORT_MAX_TRUST,
        "either (the plugin's rule)": lambda b, t: (b is not None and b >= SUPPORT_SHARE) or (
            t is not None and t < SUPPORT_MAX_TRUST),
        "on_bicubic or trust_class < 0.5": lambda b, t: (b is not None and b >= SUPPORT_SHARE) or (
            t is not None and t < 0.5),
        "on_bicubic or trust_class < 1.5": lambda b, t: (b is not None and b >= SUPPORT_SHARE) or (
            t is not None and t < 1.5),
    }
    objs = [o for r in results for o in r.objects if not r.case == "hr"]
    if objs:
        targets = sorted({o.target for o in objs})
        lines += ["", "Other rules for *supported*, over every output above but `hr` (invented objects removed / "
                  "true objects lost, of all invented / true objects):", "", "| rule | " + " | ".join(targets)
                  + " |", "|:--|" + "--:|" * len(targets)]
        for name, rule in rules.items():
            cells = []
            for target in targets:
                sel = [o for o in objs if o.target == target]
                removed = sum(o.under(rule)[0] for o in sel)
                lost = sum(o.under(rule)[1] for o in sel)
                cells.append(f"{removed} / {lost} (of {sum(o.count('invented') for o in sel)} / "
                             f"{sum(o.count('true') for o in sel)})")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=None, help="number of scenes (default 3, or 2 to calibrate)")
    parser.add_argument("--seed", type=int, default=None, help="first scene seed (default 900, or 800 to calibrate)")
    parser.add_argument("--size", type=int, default=288)
    parser.add_argument("--world", choices=("v2", "towns", "both"), default="both",
                        help="scenes: world v2, the v1 towns, or both (default; --scenes counts per world, the towns "
                             "get one less)")
    parser.add_argument("--models", nargs="*", default=None, metavar="NAME=PATH",
                        help="SR checkpoints (default: the shipped four)")
    parser.add_argument("--calibrate", action="store_true", help="calibration scenes: print the thresholds")
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "trust_eval.md"))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--samples", default=None, help="with --calibrate: signal samples file (.npz); read it "
                                                        "when it exists (no scene is run), else write it")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    n = args.scenes or (2 if args.calibrate else 3)
    first = args.seed if args.seed is not None else (800 if args.calibrate else 900)
    if args.models is None:
        models = {m: MODELS / f"{m}.safetensors" for m in SR_MODELS}
    else:
        models = dict(m.split("=", 1) for m in args.models)
    seg = [MODELS / "unetpp_buildings.safetensors", MODELS / "unetpp_roads.safetensors"]
    from core.models.zoo import read_card

    four = [str(p) for p in [*models.values(), *seg] if len(read_card(p).bands) > 1]
    if four and not (args.calibrate and args.samples and Path(args.samples).is_file()):
        # the planted outputs are written in the judged band only, so every network must take one band
        print(f"error: these networks take several bands: {', '.join(four)}; this evaluation judges one band "
              "(B08 / B8): give one-band checkpoints with --models (and one-band UNet++ in resources/models)",
              file=sys.stderr)
        return 2
    from core.data.synthetic.towns import make_scene
    from core.data.synthetic.world_v2 import make_world_scene

    worlds = ["v2", "towns"] if args.world == "both" else [args.world]
    if args.calibrate:
        worlds = ["v2"]
    t0 = time.perf_counter()
    sections = {}
    if args.calibrate and args.samples and Path(args.samples).is_file():
        sections["v2"] = (load_samples(args.samples), [])
        worlds = []
    for world in worlds:
        count = n if world == "v2" or args.world != "both" else max(1, n - 1)
        results, scenes = [], []
        for i in range(count):
            if world == "v2":
                scene = make_world_scene(size_hr=args.size, frames=9, seed=[first + i, 1], object_free=False)
            else:
                scene = make_scene(size_hr=args.size, frames=9, seed=first + i)
            band = "B08" if world == "v2" else "B8"
            scenes.append(scene)
            with tempfile.TemporaryDirectory(prefix="trust_eval_") as tmp:
                def progress(f, m, k=i, c=count, w=world):
                    print(f"\r[{w} {k + 1}/{c}] {100 * f:3.0f}% {m[:90]:<90}", end="", file=sys.stderr, flush=True)

                got = evaluate_scene(scene, Path(tmp), models, seg, band=band, progress=progress)
                print(file=sys.stderr)
            results.extend(got)
            for r in got:
                print(f"{r.scene} {r.case:18s} truth {100 * r.invented_truth:5.1f}%  classes "
                      f"{' '.join(f'{k} {100 * v:5.1f}%' for k, v in r.shares.items())}  P {_fmt(r.precision())} "
                      f"R {_fmt(r.recall())}  P>=1 {_fmt(r.precision(True))} R>=1 {_fmt(r.recall(True))}  "
                      f"planted {_fmt(r.planted_flagged, True)} far {_fmt(r.clean_flagged, True)}  objects "
                      f"{[(o.target, o.objects, o.true_lost, o.invented, o.invented_removed) for o in r.objects]}  "
                      f"{r.seconds:.0f}s", flush=True)
        sections[world] = (results, scenes)
    seconds = time.perf_counter() - t0
    out_dir = Path(args.out).parent
    if args.calibrate:
        results = sections["v2"][0]
        if args.samples and not Path(args.samples).is_file():
            save_samples(args.samples, results)
        cal = calibrate(results)
        for sig, d in cal.items():
            print(f"{sig:15s} likely invented >= {d['invented']:.4f} (recall alone {_fmt(d['recall_at_invented'])}), "
                  f"uncertain >= {d['uncertain']:.4f} (recall alone {_fmt(d['recall_at_uncertain'])}); "
                  f"{d['supported_pixels']} supported / {d['invented_pixels']} invented pixels sampled")
        (out_dir / "trust_calibration.json").write_text(json.dumps(
            {"scenes": sorted({r.scene for r in results}), "truth_tau": TRUTH_TAU, "thresholds": cal,
             "cases": [r.as_dict() for r in results]}, indent=1, default=float) + "\n")
        print(f"wrote {out_dir / 'trust_calibration.json'}")
        return 0
    Path(args.out).write_text(report(sections, args, seconds))
    (out_dir / "trust_eval.json").write_text(json.dumps(
        {w: [r.as_dict() for r in res] for w, (res, _s) in sections.items()}, indent=1, default=float) + "\n")
    print(f"wrote {args.out} ({seconds / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
