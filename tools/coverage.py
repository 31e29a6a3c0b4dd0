"""Coverage benchmark: how much of each zoo model onnxprune can prune, and how fast.

For every zoo model and exporter: the share of Conv/Gemm/MatMul MACs in prunable groups, the
MAC and parameter cut at ratio 0.3 and 0.5 (measured on the written models), and the time of
preprocess + analysis + rewrite. Also times full-size ResNet-50 (224², width 1.0).

    python tools/coverage.py            # small zoo settings, both exporters, writes docs/benchmarks.md
    python tools/coverage.py --models resnet50,vit_tiny --exporters dynamo --no-write
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, write_section  # noqa: E402


def measure(path: Path) -> list[object]:
    from onnxprune.prune import prune

    cells: list[object] = []
    coverage = None
    timings = []
    for ratio in (0.3, 0.5):
        start = time.perf_counter()
        result = prune(str(path), ratio=ratio, round_to=1, allow_norm_stats=True)
        timings.append(time.perf_counter() - start)
        plan = result.plan
        if coverage is None:
            prunable = sum(1 for g in plan.groups if g.clusters > 1 and not g.blocked)
            coverage = [
                len(plan.groups),
                prunable,
                f"{plan.prunable_macs / max(plan.macs_before, 1):.1%}",
            ]
        cells += [
            f"{1 - plan.macs_after / plan.macs_before:.1%}",
            f"{1 - plan.params_after / plan.params_before:.1%}",
        ]
    return [*coverage, *cells, f"{min(timings):.2f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="", help="comma list (default: all)")
    parser.add_argument("--exporters", default="torchscript,dynamo")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--skip-full", action="store_true", help="skip full-size ResNet-50 timing")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from models import MODELS, SMALL_CONFIG, build_onnx

    names = [n for n in args.models.split(",") if n] or list(MODELS)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            config = dict(SMALL_CONFIG[name])
            for exporter in args.exporters.split(","):
                path = Path(folder) / f"{name}_{exporter}.onnx"
                build_onnx(
                    name,
                    path,
                    exporter=exporter,
                    width=config["width"],
                    size=config["size"],
                    depth=config.get("depth", 1.0),
                )
                row = [name, exporter, *measure(path)]
                print(" | ".join(str(c) for c in row), flush=True)
                rows.append(row)
        full = None
        if not args.skip_full:
            path = Path(folder) / "resnet50_full.onnx"
            build_onnx("resnet50", path, exporter="torchscript", width=1.0, size=224)
            full = measure(path)
            print("resnet50 full:", full, flush=True)
    header = [
        "model",
        "exporter",
        "groups",
        "prunable groups",
        "prunable MACs",
        "MAC cut @0.3",
        "param cut @0.3",
        "MAC cut @0.5",
        "param cut @0.5",
        "prune time s",
    ]
    body = markdown_table(header, rows)
    if full is not None:
        body += (
            "\n\nFull-size ResNet-50 (224², width 1.0, TorchScript export): "
            + markdown_table(header[2:], [full]).split("\n", 2)[-1].strip("| ").replace(" | ", ", ")
            + " (columns as above; prune time = load + preprocess + analysis + scoring + rewrite + check)"
        )
    if not args.no_write:
        write_section("coverage", body)


if __name__ == "__main__":
    main()
