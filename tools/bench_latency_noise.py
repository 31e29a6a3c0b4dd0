"""How stable a latency ratio is: the same two models timed again and again.

For each setting (``runs`` timed rounds, ``min_seconds`` floor), ``compare_latency`` times
the pair ``repeats`` times (interleaved A B A B, CPU provider, batch 1) and the tool prints
the spread of the p50 ratio (pruned / original), the rounds each repeat ran, and how many of
the repeats' 95 % intervals (paired bootstrap over rounds) contain the median ratio of the
long setting's repeats, the best estimate of the true ratio this run has.

Default pair: ``models/digits/digits_mbv2.onnx`` and a copy pruned by ``onnxprune.prune``
(l1, ratio 0.2) — a sub-millisecond model, the hardest case; any two models with the same
inputs can be given instead (``--models A B``, with ``--input-shape`` for dynamic axes).

    python tools/bench_latency_noise.py
    python tools/bench_latency_noise.py --models a.onnx a.pruned.onnx --input-shape x:1,3,224,224
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: (label, timed rounds, seconds floor): the previous default of optimize, and today's
SETTINGS = (("50 runs", 50, 0.0), ("50 runs, at least 2 s", 50, 2.0))


def measure(models: list[str], repeats: int, input_shapes) -> list[dict]:
    from onnxprune.runtime import compare_latency

    rows = []
    for label, runs, floor in SETTINGS:
        for repeat in range(repeats):
            comparison = compare_latency(
                models,
                runs=runs,
                min_seconds=floor,
                measure_memory=False,
                input_shapes=input_shapes,
                seed=repeat,
            )
            base, pruned = comparison.results[:2]
            rows.append(
                {
                    "setting": label,
                    "ratio": pruned.p50_ms / base.p50_ms,
                    "low": pruned.ratio_p50_low,
                    "high": pruned.ratio_p50_high,
                    "rounds": pruned.runs,
                    "p50_ms": base.p50_ms,
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs=2, metavar=("ORIGINAL", "PRUNED"))
    parser.add_argument("--input-shape", action="append", default=[])
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args(argv)
    from onnxprune import prune
    from onnxprune.option_text import parse_input_shapes

    shapes = parse_input_shapes(args.input_shape) or None
    with tempfile.TemporaryDirectory(prefix="onnxprune-latency-noise-") as folder:
        if args.models:
            models = list(args.models)
        else:
            original = str(ROOT / "models" / "digits" / "digits_mbv2.onnx")
            pruned = str(Path(folder) / "digits_mbv2.pruned.onnx")
            prune(original, ratio=0.2, criterion="l1").save(pruned)
            models = [original, pruned]
        rows = measure(models, args.repeats, shapes)
    reference = float(np.median([r["ratio"] for r in rows if r["setting"] == SETTINGS[-1][0]]))
    print(f"models: {models[0]} vs {models[1]}; load average {os.getloadavg()[0]:.1f}")
    print(f"reference ratio (median of the last setting's repeats): {reference:.3f}\n")
    print(
        "| setting | repeats | p50 ms (original) | p50 ratio: min – max | rounds | 95 % intervals holding the reference |"
    )
    print("|---|---|---|---|---|---|")
    for label, _, _ in SETTINGS:
        mine = [r for r in rows if r["setting"] == label]
        ratios = [r["ratio"] for r in mine]
        rounds = sorted(r["rounds"] for r in mine)
        held = sum(r["low"] <= reference <= r["high"] for r in mine)
        p50 = np.median([r["p50_ms"] for r in mine])
        print(
            f"| {label} | {len(mine)} | {p50:.3f} | {min(ratios):.3f} – {max(ratios):.3f} | "
            f"{rounds[0]}–{rounds[-1]} | {held} of {len(mine)} |"
        )
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
