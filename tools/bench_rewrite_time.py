"""Time of one channel rewrite (``apply_removal``) with shape inference on the whole model vs
on its weight-free skeleton (``graph.shapes.attach_inferred_shapes``, the current code).

The zoo ResNet-50 at full width and 224×224 (about 100 MB of weights; random weights, the
time does not depend on them) is analysed once; one third of its first prunable group is
removed, and the rewrite is timed ``--repeats`` times each way, interleaved, in the same
process. The outputs of both rewrites are compared (same value_info, same weights).

    python tools/bench_rewrite_time.py [--repeats 5] [--model resnet50] [--size 224]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))


def main(argv: list[str] | None = None) -> None:
    import onnx

    import onnxprune.rewrite.apply as rewrite
    from models import build_onnx
    from onnxprune.analysis import analyze
    from onnxprune.graph import shapes
    from onnxprune.passes import preprocess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as folder:
        path = build_onnx(args.model, Path(folder) / "m.onnx", "torchscript", width=1.0,
                          size=args.size)  # fmt: skip
        model = preprocess(onnx.load(str(path))).model
    analysis = analyze(model, {model.graph.input[0].name: [1, 3, args.size, args.size]})
    group = next(g for g in analysis.groups if g.prunable)
    removed = {int(c) for c in group.clusters[: len(group.clusters) // 3]}

    def whole(pruned, *, data_prop):  # the code before: inference on the whole model
        return shapes.infer_shapes(pruned, data_prop=data_prop)

    skeleton = rewrite.attach_inferred_shapes
    times: dict[str, list[float]] = {"whole model": [], "skeleton": []}
    results = {}
    for _ in range(args.repeats):
        for label, infer in (("whole model", whole), ("skeleton", skeleton)):
            rewrite.attach_inferred_shapes = infer
            started = time.perf_counter()
            results[label] = rewrite.apply_removal(analysis, removed)
            times[label].append(time.perf_counter() - started)
    rewrite.attach_inferred_shapes = skeleton
    first, second = results["whole model"], results["skeleton"]
    same_infos = sorted(v.SerializeToString() for v in first.graph.value_info) == sorted(
        v.SerializeToString() for v in second.graph.value_info
    )
    same_weights = [i.SerializeToString() for i in first.graph.initializer] == [
        i.SerializeToString() for i in second.graph.initializer
    ]
    megabytes = first.ByteSize() / 2**20
    print(f"{args.model} {args.size}x{args.size}, {megabytes:.0f} MiB, removal of "
          f"{len(removed)} clusters of group '{group.name}', {args.repeats} repeats, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("| shape inference on | median s | min s | max s |")
    print("|---|---|---|---|")
    for label, values in times.items():
        print(f"| {label} | {statistics.median(values):.3f} | {min(values):.3f} | "
              f"{max(values):.3f} |")  # fmt: skip
    ratio = statistics.median(times["whole model"]) / statistics.median(times["skeleton"])
    print(f"ratio of medians {ratio:.1f}x; same value_info: {same_infos}; "
          f"same weights: {same_weights}")  # fmt: skip


if __name__ == "__main__":
    main()
