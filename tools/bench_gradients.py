"""Gradient criteria vs L1 and OBS on the shipped digits models, without recovery.

For each model, MAC target (kept fraction) and criterion, the allocation (uniform per-group
ratio, or one global ranking capped at 0.8 per group) is bisected on the counted MACs of the
rewritten model so that every criterion is compared at the same MAC cut; the pruned model is
evaluated on digits_test.npz with no recovery. Calibration: digits_calib.npz (training split,
256 images with labels; ``--no-labels`` drops them, so gradient criteria use the model's own
predictions). Writes a Markdown table (and --json rows).

    python tools/bench_gradients.py [--targets 0.7 0.5] [--allocations uniform global]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from onnxprune.allocate import AllocationPolicy, select_removal
from onnxprune.analysis import analyze
from onnxprune.importance import score_clusters
from onnxprune.passes.prepare import prepare
from onnxprune.rewrite import apply_removal
from onnxprune.stats import count_macs

ROOT = Path(__file__).resolve().parents[1] / "models" / "digits"
SHAPES = {"input": [1, 1, 32, 32]}
CRITERIA = ["l1", "obs", "taylor", "fisher"]


def accuracy(model, data) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": data["input"]})[0]
    return float((logits.argmax(axis=1) == data["labels"]).mean())


def removal_for(analysis, scores, macs_before: float, target: float, allocation: str):
    """Bisection on the ratio so that counted MACs ≈ target × original."""
    low, high = 0.0, 0.95
    best = None
    for _ in range(14):
        ratio = (low + high) / 2
        policy = (
            AllocationPolicy(ratio=ratio, max_ratio=0.95)
            if allocation == "uniform"
            else AllocationPolicy(ratio=ratio, global_ranking=True, max_ratio=0.8)
        )
        removed = select_removal(analysis, scores, policy)
        macs = count_macs(apply_removal(analysis, removed), SHAPES).total / macs_before
        if best is None or abs(macs - target) < abs(best[1] - target):
            best = (removed, macs)
        if macs > target:
            low = ratio
        else:
            high = ratio
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--targets", type=float, nargs="+", default=[0.7, 0.5])
    parser.add_argument("--models", nargs="+", default=["digits_vgg", "digits_mbv2"])
    parser.add_argument("--criteria", nargs="+", default=CRITERIA)
    parser.add_argument("--allocations", nargs="+", default=["uniform", "global"])
    parser.add_argument("--no-labels", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    calib = dict(np.load(ROOT / "digits_calib.npz"))
    if args.no_labels:
        calib.pop("labels")
    test = dict(np.load(ROOT / "digits_test.npz"))
    rows = []
    load_start = os.getloadavg()[0]
    for name in args.models:
        original, prepared, _ = prepare(ROOT / f"{name}.onnx", SHAPES)
        analysis = analyze(prepared, SHAPES)
        macs_before = count_macs(original, SHAPES).total
        base = accuracy(original, test)
        scores, seconds = {}, {}
        for criterion in args.criteria:
            start = time.perf_counter()
            scores[criterion] = score_clusters(
                analysis, criterion, original=original, calibration=calib
            )
            seconds[criterion] = time.perf_counter() - start
        for allocation in args.allocations:
            for target in args.targets:
                for criterion in args.criteria:
                    removed, macs = removal_for(
                        analysis, scores[criterion], macs_before, target, allocation
                    )
                    row = {
                        "model": name,
                        "allocation": allocation,
                        "target": target,
                        "criterion": criterion,
                        "macs_kept": round(macs, 4),
                        "accuracy": accuracy(apply_removal(analysis, removed), test),
                        "original_accuracy": base,
                        "score_seconds": round(seconds[criterion], 2),
                    }
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    lines = [
        "| model | allocation | MACs kept (target) | criterion | test accuracy, no recovery |"
        " scoring s |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['allocation']} | {row['macs_kept']:.3f} ({row['target']}) |"
            f" {row['criterion']} | {row['accuracy']:.4f} (orig {row['original_accuracy']:.4f})"
            f" | {row['score_seconds']} |"
        )
    print("\n".join(lines))
    print(f"load average: {os.getloadavg()}")
    for row in rows:
        row["load_start"], row["load_end"] = round(load_start, 2), round(os.getloadavg()[0], 2)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
