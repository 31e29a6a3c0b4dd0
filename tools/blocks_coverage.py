"""Block coverage: residual units found and their removable MAC share on the zoo.

For every model and exporter (full block counts, depth 1.0, small width and input size from
``models.SMALL_CONFIG``): removable units (by kind), stages of two or more consecutive units,
residual joins found but not removable, the share of Conv/Gemm/MatMul MACs inside removable
branches, and the time of preprocess + search.

    python tools/blocks_coverage.py             # writes the issue16-blocks-coverage section
    python tools/blocks_coverage.py --models resnet18 --exporters dynamo --no-write
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, write_section  # noqa: E402

SECTION = "issue16-blocks-coverage"
DEFAULT_MODELS = (
    "resnet18,resnet50,mobilenetv2,efficientnet_b0,convnext,vit_tiny,yolo,bert,bert_sdpa"
)


def reason_category(reason: str) -> str:
    """A short category for a rejection reason (the full reasons are in inspect --blocks)."""
    for key, label in (
        ("projection", "projection shortcut"),
        ("shape", "shape change"),
        ("graph output", "graph output inside"),
        ("also read by", "tensor used elsewhere"),
        ("subgraph", "subgraph"),
    ):
        if key in reason:
            return label
    return reason.split("'")[0].strip()


def measure(path: Path) -> list[object]:
    import onnx

    from onnxprune.blocks import find_units
    from onnxprune.passes import preprocess

    start = time.perf_counter()
    search = find_units(preprocess(onnx.load(path)).model)
    seconds = time.perf_counter() - start
    kinds = Counter(unit.kind for unit in search.units)
    long_stages = [len(stage) for stage in search.stages if len(stage) > 1]
    reasons = Counter(reason_category(r.reason) for r in search.rejected)
    return [
        len(search.units),
        ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "-",
        ", ".join(map(str, long_stages)) or "-",
        len(search.rejected),
        "; ".join(f"{k} ({v})" for k, v in reasons.items()) or "-",
        f"{search.removable_macs() / max(search.total_macs, 1):.1%}",
        f"{seconds:.2f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--exporters", default="torchscript,dynamo")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from models import SMALL_CONFIG, build_onnx

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models.split(","):
            small = SMALL_CONFIG[name]
            for exporter in args.exporters.split(","):
                path = build_onnx(
                    name,
                    Path(folder) / f"{name}-{exporter}.onnx",
                    exporter=exporter,
                    width=float(small["width"]),
                    size=int(small["size"]),
                    depth=1.0,
                )
                row = [name, exporter, *measure(path)]
                print(" | ".join(map(str, row)), flush=True)
                rows.append(row)
    load = os.getloadavg()
    header = [
        "model",
        "exporter",
        "units",
        "kinds",
        "stages ≥ 2",
        "not removable",
        "why not",
        "removable MAC share",
        "preprocess + search s",
    ]
    body = "\n".join(
        [
            "## Block (module) pruning: residual units found (issue 16)",
            "",
            "Units y = x + f(x) that `onnxprune inspect --blocks` lists, on the zoo at depth 1.0 "
            "(all blocks), small width and input size. *Removable MAC share*: Conv/Gemm/MatMul "
            "MACs inside removable branches over the model's total. *Not removable*: residual "
            "joins of equal-shape tensors whose branch cannot be cut out (projection shortcuts "
            "read a tensor other than the identity operand).",
            "",
            markdown_table(header, rows),
            "",
            f"Command: `python tools/blocks_coverage.py` (load average {load[0]:.1f}, "
            f"{load[1]:.1f}, {load[2]:.1f} at the end of the run, 2 CPU cores shared).",
        ]
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
