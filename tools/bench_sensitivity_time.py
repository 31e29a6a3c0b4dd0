"""Time of a sensitivity table: which boundary tensors are cached decides how many points run
as suffixes, and the rewrite's shape inference what each point costs.

The zoo ResNet-50 at full width and ``--size`` (random weights; times do not depend on them)
is analysed once; ``measure_sensitivity`` (criterion l1, default ratios, no repair) runs on
``--samples`` standard-normal inputs with each variant, in one process:

* ``group order`` — the boundary selection before 2026-12-01 (tensors one by one, in group
  order, while they fit; reproduced here),
* ``skipped MACs per byte`` — ``suffix.select_boundaries`` (whole groups, most upstream MACs
  skipped per byte first).

Both use the current rewrite (shape inference on the skeleton; its own gain is
``tools/bench_rewrite_time.py``). Cells: seconds, points run as suffixes / all points.

    python tools/bench_sensitivity_time.py [--size 224] [--samples 32] [--cache-mb 512]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))


def group_order(analysis, group_indices, budget_bytes, samples):
    """The selection before 2026-12-01: boundary tensors one by one in group order."""
    import onnx

    from onnxprune.sensitivity import suffix

    model = analysis.model
    infos = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    skip = {i.name for i in model.graph.input} | {o.name for o in model.graph.output}
    nodes = suffix.group_nodes(analysis)
    chosen: list[str] = []
    used = 0.0
    for index in group_indices:
        for name in suffix.boundary(model, suffix.downstream(model, nodes.get(index, ()))):
            if name in skip or name in chosen or name not in infos:
                continue
            size = suffix._per_sample_bytes(infos[name])
            if size is not None and used + size * samples <= budget_bytes:
                chosen.append(name)
                used += size * samples
    return chosen


def main(argv: list[str] | None = None) -> None:
    import numpy as np
    import onnx

    import onnxprune.sensitivity.measure as measure
    from models import build_onnx
    from onnxprune.analysis import analyze
    from onnxprune.passes import preprocess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--cache-mb", type=float, default=512)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as folder:
        path = build_onnx("resnet50", Path(folder) / "m.onnx", "torchscript", width=1.0,
                          size=args.size)  # fmt: skip
        model = preprocess(onnx.load(str(path))).model
    name = model.graph.input[0].name
    analysis = analyze(model, {name: [1, 3, args.size, args.size]})
    rng = np.random.default_rng(0)
    data = {name: rng.standard_normal((args.samples, 3, args.size, args.size)).astype(np.float32)}
    current = measure.select_boundaries
    rows = []
    for label, select in (("group order", group_order), ("skipped MACs per byte", current)):
        measure.select_boundaries = select
        load = os.getloadavg()[0]
        started = time.perf_counter()
        table = measure.measure_sensitivity(
            analysis, data, criterion="l1", max_samples=args.samples, cache_mb=args.cache_mb
        )
        seconds = time.perf_counter() - started
        rows.append((label, seconds, table.suffix_runs, table.runs, load))
    measure.select_boundaries = current
    print(f"zoo resnet50 at {args.size}x{args.size}, {args.samples} samples, cache "
          f"{args.cache_mb:g} MiB, {sum(g.prunable for g in analysis.groups)} prunable groups")  # fmt: skip
    print("| boundary selection | table s | suffix points / points | load average at start |")
    print("|---|---|---|---|")
    for label, seconds, suffix_runs, runs, load in rows:
        print(f"| {label} | {seconds:.0f} | {suffix_runs} / {runs} | {load:.1f} |")


if __name__ == "__main__":
    main()
