"""Post-training recovery on the shipped digits models: test accuracy at fixed MAC cuts.

For each model and MAC target (kept fraction), one uniform per-group pruning ratio is found by
bisection on the counted MACs of the rewritten model, for each criterion; the same removal is
then repaired with each recovery method and evaluated on digits_test.npz (calibration:
digits_calib.npz, drawn from the training split). Prints a Markdown table.

    python tools/bench_recovery_digits.py [--targets 0.7 0.5] [--runs l1:none obs:lsq] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from onnxprune.allocate import AllocationPolicy, select_removal
from onnxprune.analysis import analyze
from onnxprune.importance import score_clusters
from onnxprune.passes.prepare import prepare
from onnxprune.recover import make_recovery
from onnxprune.rewrite import apply_removal, check_model
from onnxprune.stats import count_macs

ROOT = Path(__file__).resolve().parents[1] / "models" / "digits"
SHAPES = {"input": [1, 1, 32, 32]}
RUNS = [("l1", "none"), ("l1", "bias"), ("l1", "lsq"), ("obs", "lsq")]


def accuracy(model, data) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": data["input"]})[0]
    return float((logits.argmax(axis=1) == data["labels"]).mean())


def removal_for(analysis, scores, macs_before, target: float):
    """Bisection on the uniform ratio so that counted MACs ≈ target × original."""
    low, high = 0.0, 0.95
    best = None
    for _ in range(14):
        ratio = (low + high) / 2
        removed = select_removal(analysis, scores, AllocationPolicy(ratio=ratio, max_ratio=0.95))
        macs = count_macs(apply_removal(analysis, removed), SHAPES).total / macs_before
        if best is None or abs(macs - target) < abs(best[2] - target):
            best = (removed, ratio, macs)
        if macs > target:
            low = ratio
        else:
            high = ratio
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--targets", type=float, nargs="+", default=[0.7, 0.5])
    parser.add_argument("--models", nargs="+", default=["digits_vgg", "digits_mbv2"])
    parser.add_argument(
        "--runs", nargs="+", default=[f"{c}:{m}" for c, m in RUNS], help="criterion:recovery"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    runs = [tuple(run.split(":", 1)) for run in args.runs]
    calib = dict(np.load(ROOT / "digits_calib.npz"))
    test = dict(np.load(ROOT / "digits_test.npz"))
    rows = []
    for name in args.models:
        original, prepared, _ = prepare(ROOT / f"{name}.onnx", SHAPES)
        analysis = analyze(prepared, SHAPES)
        macs_before = count_macs(original, SHAPES).total
        base = accuracy(original, test)
        print(f"{name}: accuracy {base:.4f}, MACs {macs_before}")
        scores = {
            criterion: score_clusters(analysis, criterion, original=original, calibration=calib)
            for criterion in {c for c, _ in runs}
        }
        for target in args.targets:
            removals = {c: removal_for(analysis, scores[c], macs_before, target) for c in scores}
            for criterion, method in runs:
                removed, ratio, macs = removals[criterion]
                pruned = apply_removal(analysis, removed)
                start = time.perf_counter()
                model = make_recovery(method, analysis, calib)(analysis, removed, pruned)
                seconds = time.perf_counter() - start
                check_model(model)
                row = {
                    "model": name,
                    "target": target,
                    "criterion": criterion,
                    "recovery": method,
                    "ratio": round(ratio, 4),
                    "macs_kept": round(macs, 4),
                    "accuracy": accuracy(model, test),
                    "original_accuracy": base,
                    "recovery_seconds": round(seconds, 2),
                }
                rows.append(row)
                print(json.dumps(row))
    print()
    print("| model | MACs kept (target) | criterion | recovery | test accuracy | recovery s |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['model']} | {row['macs_kept']:.3f} ({row['target']}) | {row['criterion']} | "
            f"{row['recovery']} | {row['accuracy']:.4f} (orig {row['original_accuracy']:.4f}) | "
            f"{row['recovery_seconds']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
