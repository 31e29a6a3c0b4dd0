"""ONNX ``Attention`` (opset 23) vs the MatMul/Softmax/MatMul form ``lower_attention`` writes:
CPU latency in ONNX Runtime, same run, interleaved (``onnxprune bench``'s comparison).

The model is the zoo's ViT-Tiny with ``nn.MultiheadAttention`` (``vit_tiny_mha``) at full size
(224², width 1, 12 layers), exported by PyTorch's dynamo exporter at opset 23, which writes
each attention as one ``Attention`` node; the lowered copy is ``preprocess(model)``. The
written table gives p50 latency per model and the ratio lowered / original. A text encoder
with a padding mask is not timed: ONNX Runtime 1.31 refuses its original (the mask
[B, 1, 1, T] is not broadcast over the queries), which the lowered form runs.

    python tools/bench_attention_lowering.py [--no-write] [--runs 50]
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

from _markdown import markdown_table, publish  # noqa: E402

SECTION = "attention-lowering"
HEADER = ["batch", "Attention p50 ms", "lowered p50 ms", "lowered / Attention"]


def main(argv: list[str] | None = None) -> None:
    import onnx

    from models import build_onnx
    from onnxprune.passes import preprocess
    from onnxprune.runtime.latency import compare_latency
    from onnxprune.stats.macs import count_macs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        original = Path(folder) / "vit_tiny_mha-op23.onnx"
        build_onnx("vit_tiny_mha", original, "dynamo", opset=23)
        model = onnx.load(str(original))
        lowered_model = preprocess(model).model
        lowered = Path(folder) / "vit_tiny_mha-op23-lowered.onnx"
        onnx.save(lowered_model, str(lowered))
        attention = sum(node.op_type == "Attention" for node in model.graph.node)
        macs = (count_macs(model).total, count_macs(lowered_model).total)
        for batch in (int(b) for b in args.batches.split(",")):
            comparison = compare_latency(
                [str(original), str(lowered)], provider="cpu", batch_sizes=[batch],
                runs=args.runs, measure_memory=False,
            )  # fmt: skip
            first, second = comparison.results[:2]
            rows.append([
                str(batch), f"{first.p50_ms:.2f}", f"{second.p50_ms:.2f}",
                f"{second.p50_ms / first.p50_ms:.3f}",
            ])  # fmt: skip
            print(rows[-1], flush=True)
    body = "\n".join(
        [
            "## ONNX `Attention` (opset 23) vs its lowered form: CPU latency",
            "",
            f"ViT-Tiny (`vit_tiny_mha`, 224², 12 layers) exported by dynamo at opset 23: "
            f"{attention} `Attention` nodes; MACs counted {macs[0]:,} before and {macs[1]:,} "
            "after `lower_attention`. ONNX Runtime CPU provider, runs interleaved "
            f"({args.runs} per model), {os.cpu_count()} CPU cores (shared machine).",
            "",
            markdown_table(HEADER, rows),
            "",
            f"Command: `python tools/bench_attention_lowering.py --runs {args.runs} --batches "
            f"{args.batches}` — {(time.perf_counter() - started) / 60:.1f} min.",
        ]
    )
    publish(SECTION, body, not args.no_write)


if __name__ == "__main__":
    main()
