"""Digits benchmark: `onnxprune optimize` on the shipped digits models, end to end.

Two tables in docs/benchmarks.md:

* ``digits-recovery`` — test accuracy at ``macs=0.7`` and ``macs=0.5`` for each configuration
  (criterion + recovery + allocation), guard off (max-drop 100) so every configuration reaches
  the same MAC target and only its accuracy differs;
* ``digits-optimize`` — the default pipeline (``--data`` calibration split, ``--eval`` test split,
  max-drop 1 point): metric, MACs and CPU latency before/after, latency at batch 1 and 64
  interleaved original/pruned (``compare_latency``), and wall time.

    python tools/bench_digits.py              # both models, both targets, writes the docs
    python tools/bench_digits.py --models digits_vgg --targets 0.5 --no-write
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, write_section  # noqa: E402

DIGITS = ROOT / "models" / "digits"
CALIB = DIGITS / "digits_calib.npz"
TEST = DIGITS / "digits_test.npz"
CONFIGS = [  # (label, criterion, recovery, allocation)
    ("l1, no recovery", "l1", "none", "global"),
    ("l1 + bias", "l1", "bias", "global"),
    ("l1 + lsq", "l1", "lsq", "global"),
    ("obs + lsq", "obs", "lsq", "global"),
    ("obs + lsq + sensitivity (default)", "obs", "lsq", "sensitivity"),
]


def run_config(model: str, target: float, criterion, recovery, allocation, max_drop):
    import onnxprune

    start = time.perf_counter()
    result = onnxprune.optimize(
        str(DIGITS / f"{model}.onnx"),
        target=f"macs={target}",
        data=str(CALIB),
        eval_data=str(TEST),
        criterion=criterion,
        recover=recovery,
        allocation=allocation,
        max_drop=max_drop,
        steps=4,
        measure_latency=False,
    )
    return result, time.perf_counter() - start


def latency_rows(original: str, pruned) -> dict[int, tuple[float, float, float]]:
    """p50 before, after and their ratio at batch 1 and 64 (interleaved, same inputs)."""
    from onnxprune.runtime.latency import compare_latency

    comparison = compare_latency(
        [original, pruned], batch_sizes=(1, 64), runs=200, threads=1, measure_memory=False
    )
    rows = {}
    for batch in (1, 64):
        before, after = _pick(comparison, 0, batch), _pick(comparison, 1, batch)
        rows[batch] = (before.p50_ms, after.p50_ms, after.p50_ms / before.p50_ms)
    return rows


def _pick(comparison, index: int, batch: int):
    name = comparison.models[index]
    return next(r for r in comparison.results if r.model == name and r.batch == batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["digits_vgg", "digits_mbv2"])
    parser.add_argument("--targets", nargs="+", type=float, default=[0.7, 0.5])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    accuracy_rows, optimize_rows = [], []
    for model in args.models:
        for target in args.targets:
            cells: list[object] = [model, target]
            for label, criterion, recovery, allocation in CONFIGS:
                default = allocation == "sensitivity"
                result, seconds = run_config(
                    model, target, criterion, recovery, allocation, 1.0 if default else 100.0
                )
                report = result.report
                kept = report.macs_after / report.macs_before
                cells.append(f"{report.metric_after:.2f} ({kept:.2f}, {seconds:.0f} s)")
                print(model, target, label, cells[-1], flush=True)
                if default:
                    latency = latency_rows(str(DIGITS / f"{model}.onnx"), result.model)
                    optimize_rows.append(
                        [
                            model,
                            f"macs={target}",
                            report.status,
                            f"{report.metric_before:.2f} → {report.metric_after:.2f}",
                            f"{kept:.3f}",
                            f"{report.params_after / report.params_before:.3f}",
                            *(
                                f"{b:.3f} → {a:.3f} ({r:.2f})"
                                for b, a, r in (latency[1], latency[64])
                            ),
                            f"{seconds:.0f}",
                        ]
                    )
            accuracy_rows.append(cells)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    header = ["model", "MAC target", *(label for label, *_ in CONFIGS)]
    accuracy_body = (
        "Test accuracy (%) on digits_test.npz (450 images; one image = 0.22 points); in brackets "
        "the share of MACs kept and the wall time of the run. Calibration: digits_calib.npz "
        "(256 training images). Guard off (max-drop 100) except the default column, which runs "
        "with the default guard (max-drop 1) and so may stop before the target. Both models "
        "score 99.33 before pruning.\n\n"
        + markdown_table(header, accuracy_rows)
        + f"\n\nCommand: `python tools/bench_digits.py` ({machine}; machine shared with other "
        "jobs, so wall times are indicative only)."
    )
    optimize_body = (
        "`onnxprune optimize MODEL --data digits_calib.npz --eval digits_test.npz --target "
        "macs=T` with every other option at its default (obs criterion, sensitivity "
        "allocation, least-squares recovery, max-drop 1). Latency: CPU provider, 1 thread, "
        "p50 of 200 interleaved runs of original and pruned model on identical inputs, "
        "`before → after (ratio)`.\n\n"
        + markdown_table(
            [
                "model",
                "target",
                "status",
                "top-1 %",
                "MACs kept",
                "params kept",
                "p50 ms batch 1",
                "p50 ms batch 64",
                "wall s",
            ],
            optimize_rows,
        )
        + f"\n\nCommand: `python tools/bench_digits.py` ({machine})."
    )
    print(accuracy_body)
    print(optimize_body)
    if not args.no_write:
        write_section("digits-recovery", accuracy_body)
        write_section("digits-optimize", optimize_body)


if __name__ == "__main__":
    main()
