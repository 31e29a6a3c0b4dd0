"""Estimated vs counted MACs of a removal on EfficientNet-Lite2 (why the loop counts).

The TorchScript export of EfficientNet-Lite2 is analysed; a removal order is built from
seeded random cluster scores (``removal_order``, ``round_to`` 16); for each share S of the
analysis' MACs, the shortest prefix whose summed per-cluster estimates reach S is removed
(``apply_removal``, no repair) and the MACs of the written model are counted. Prints the
estimated and the counted share removed.

    python tools/bench_mac_estimate.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from effnet.measure import INPUT, SHAPE  # noqa: E402
from effnet.model import export, load_pretrained  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shares", default="0.1,0.2,0.3")
    parser.add_argument("--round-to", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import onnx

    from onnxprune.allocate.schedule import Schedule, removal_order
    from onnxprune.analysis import analyze
    from onnxprune.passes.prepare import prepare
    from onnxprune.rewrite import apply_removal
    from onnxprune.stats import count_macs

    with tempfile.TemporaryDirectory(prefix="onnxprune-macs-") as name:
        original = onnx.load(str(export(load_pretrained(), Path(name) / "lite2.onnx")))
    shapes = {INPUT: SHAPE}
    _, prepared, _ = prepare(original, shapes)
    analysis = analyze(prepared, shapes)
    before = count_macs(original, shapes).total
    scores = np.random.default_rng(args.seed).random(analysis.n_clusters)
    schedule = Schedule(analysis, removal_order(analysis, scores, round_to=args.round_to))
    print("| share asked | estimated share removed | counted share removed |")
    print("|---|---|---|")
    for share in (float(s) for s in args.shares.split(",")):
        units = schedule.take(set(), share * analysis.total_macs, "macs", set())
        removed = frozenset(c for unit in units for c in unit.items)
        estimated = sum(unit.macs for unit in units) / analysis.total_macs
        counted = 1 - count_macs(apply_removal(analysis, removed), shapes).total / before
        print(f"| {share:.0%} | {estimated:.1%} | {counted:.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
