"""Distillation recovery on the shipped digits models: test accuracy and run time.

Same protocol as tools/bench_recovery_digits.py: one uniform per-group ratio (l1 criterion)
bisected to each MAC target, then each recovery on the same removal, evaluated on
digits_test.npz. Calibration: digits_calib.npz without its labels (256 training images;
distillation holds out 10 % of them for early stopping). Distillation: ``--steps`` Adam steps
at batch ``--batch``; the reported time covers building the gradient model, its session and
every step (the lsq part is timed separately).

    python tools/bench_distill_digits.py [--targets 0.5] [--steps 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from onnxprune.analysis import analyze
from onnxprune.importance import score_clusters
from onnxprune.passes.prepare import prepare
from onnxprune.recover import make_recovery
from onnxprune.recover.distill import make_distill_recovery
from onnxprune.rewrite import apply_removal, check_model
from onnxprune.stats import count_macs

ROOT = Path(__file__).resolve().parents[1] / "models" / "digits"
SHAPES = {"input": [1, 1, 32, 32]}


def main() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_gradients import accuracy, removal_for

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--targets", type=float, nargs="+", default=[0.5])
    parser.add_argument("--models", nargs="+", default=["digits_mbv2", "digits_vgg"])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lsq-lr", type=float, default=1e-4)
    parser.add_argument("--methods", nargs="+", default=["none", "lsq", "distill", "lsq+distill"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    calib = {"input": np.load(ROOT / "digits_calib.npz")["input"]}
    test = dict(np.load(ROOT / "digits_test.npz"))
    rows = []
    for name in args.models:
        original, prepared, _ = prepare(ROOT / f"{name}.onnx", SHAPES)
        analysis = analyze(prepared, SHAPES)
        macs_before = count_macs(original, SHAPES).total
        scores = score_clusters(analysis, "l1")
        for target in args.targets:
            removed, macs = removal_for(analysis, scores, macs_before, target, "uniform")
            pruned = apply_removal(analysis, removed)
            for method in args.methods:
                load = os.getloadavg()[0]
                start = time.perf_counter()
                report = None
                if method in ("none", "lsq"):
                    model = make_recovery(method, analysis, calib)(analysis, removed, pruned)
                else:
                    base = "lsq" if method.startswith("lsq") else "none"
                    lr = args.lsq_lr if base == "lsq" else args.lr
                    recover = make_distill_recovery(
                        analysis, calib, base=base, steps=args.steps, batch_size=args.batch, lr=lr
                    )
                    model = recover(analysis, removed, pruned)
                    report = recover.report
                seconds = time.perf_counter() - start
                check_model(model)
                row = {
                    "model": name,
                    "target": target,
                    "macs_kept": round(macs, 4),
                    "recovery": method,
                    "accuracy": accuracy(model, test),
                    "original_accuracy": accuracy(original, test),
                    "seconds": round(seconds, 1),
                    "load_before": round(load, 2),
                    "load_after": round(os.getloadavg()[0], 2),
                }
                if report is not None:
                    row.update(
                        steps=report.steps,
                        distill_seconds=round(report.seconds, 1),
                        steps_per_second=round(report.steps_per_second, 2),
                        best_step=report.best_step,
                        heldout_before=round(report.heldout_before, 5),
                        heldout_after=round(report.heldout_after, 5),
                    )
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
