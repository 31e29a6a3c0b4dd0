"""The same network written by different export settings and tools: what onnxprune sees of it.

Exports the zoo ResNet-18 (width 0.25, 32 px) and the zoo BERT encoder with PyTorch's
TorchScript exporter in several ways users meet in files they did not write themselves, then
for each file measures, through the public API and CLI:

* MACs (``inspect``'s count) and Conv/Gemm/MatMul weights ``sparsify`` counts, as a share of
  the plain export's (anything below 100 % is a layer the tool does not see);
* the prunable MAC share of the channel analysis;
* exit codes of ``prune --ratio 0.3``, ``sparsify --sparsity 0.5 --pattern 2:4`` and
  ``sparsify --sparsity 0.5 --criterion obs --data`` (random calibration inputs);
* whether the pruned model computes what the masked original computes (two random removals,
  ONNX Runtime, relative tolerance 1e-4).

Variants: ``plain`` (constant folding, opset 17), ``weights as inputs``
(``keep_initializers_as_inputs=True``), ``no constant folding``, ``module functions``
(``export_modules_as_functions`` for Conv2d and Linear), ``onnxslim`` (the slimmer ultralytics
runs on its exports), ``opset 22`` (the plain file through ONNX's version converter).

    python tools/export_variants.py --write
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, publish  # noqa: E402

SECTION = "export-variants"
VARIANTS = (
    "plain",
    "weights as inputs",
    "no constant folding",
    "module functions",
    "onnxslim",
    "opset 22",
)


def _export(name: str, variant: str, path: Path) -> Path:
    import onnx
    import torch

    from models import build_model, text_inputs
    from models.zoo import bert

    if variant in ("onnxslim", "opset 22"):
        plain = _export(name, "plain", path.with_name(path.stem + "-plain.onnx"))
        model = onnx.load(str(plain))
        if variant == "onnxslim":
            import onnxslim

            model = onnxslim.slim(model)
        else:
            from onnx import version_converter

            model = version_converter.convert_version(model, 22)
        onnx.save(model, str(path))
        return path
    kwargs: dict = {"opset_version": 17, "dynamo": False}
    if variant == "weights as inputs":
        kwargs["keep_initializers_as_inputs"] = True
    if variant == "no constant folding":
        kwargs["do_constant_folding"] = False
    if variant == "module functions":
        kwargs["export_modules_as_functions"] = {torch.nn.Conv2d, torch.nn.Linear}
    if name == "bert":
        module = build_model("bert", 1.0, None, 0, size=None, depth=1.0).eval()
        example = text_inputs("bert", batch=2, size=None, seed=0)
        names = list(bert.INPUT_NAMES)
        torch.onnx.export(
            module, tuple(example[n] for n in names), str(path), input_names=names,
            output_names=list(bert.OUTPUT_NAMES),
            dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names}, **kwargs,
        )  # fmt: skip
    else:
        module = build_model(name, 0.25, None, 0, size=32, depth=1.0).eval()
        torch.onnx.export(
            module, (torch.randn(1, 3, 32, 32),), str(path), input_names=["input"],
            output_names=["logits"], dynamic_axes={"input": {0: "batch"}}, **kwargs,
        )  # fmt: skip
    return path


def _calibration(path: Path, folder: Path) -> Path:
    """Random valid inputs for every model input, 32 samples, as an .npz."""
    import numpy as np

    from onnxprune.io import load_model
    from tests.oracle import random_feeds

    feeds = random_feeds(load_model(path), batch=32, seed=0)  # every free dim 32
    out = folder / f"{path.stem}-calib.npz"
    np.savez(out, **feeds)
    return out


def _measure(path: Path, folder: Path) -> dict:
    from click.testing import CliRunner

    from onnxprune.analysis import analyze
    from onnxprune.cli import cli
    from onnxprune.io import load_model
    from onnxprune.passes import preprocess
    from onnxprune.sparsity.measure import weight_sparsity
    from onnxprune.stats import summarize
    from tests.oracle import prove_random_removals

    model = load_model(path)
    analysis = analyze(preprocess(model).model, allow_norm_stats=False)
    row = {
        "macs": summarize(model).macs,
        "weights": sum(layer.size for layer in weight_sparsity(model)),
        "prunable": analysis.prunable_macs() / max(analysis.total_macs, 1),
        "proof": prove_random_removals(analysis, seeds=2),
    }
    data = _calibration(path, folder)
    commands = {
        "prune": ["prune", str(path), "--ratio", "0.3"],
        "sparsify 2:4": ["sparsify", str(path), "--sparsity", "0.5", "--pattern", "2:4"],
        "sparsify obs": ["sparsify", str(path), "--sparsity", "0.5", "--criterion", "obs",
                         "--data", str(data), "--min-size", "0"],
    }  # fmt: skip
    for key, args in commands.items():
        out = folder / f"{path.stem}-{key.replace(' ', '-').replace(':', '')}.onnx"
        result = CliRunner().invoke(cli, [*args, "-o", str(out)])
        row[key] = result.exit_code
        if result.exit_code:
            print(f"  {key}: {result.output.strip().splitlines()[-1]}", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,bert")
    parser.add_argument("--write", action="store_true", help="write the docs section")
    args = parser.parse_args(argv)
    tick = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="export-variants-") as tmp:
        folder = Path(tmp)
        for name in args.models.split(","):
            reference = None
            for variant in VARIANTS:
                slug = variant.replace(" ", "-")
                path = _export(name, variant, folder / f"{name}-{slug}.onnx")
                measured = _measure(path, folder)
                reference = reference or measured
                rows.append([
                    name, variant,
                    f"{measured['macs'] / reference['macs']:.1%}",
                    f"{measured['weights'] / reference['weights']:.1%}",
                    f"{measured['prunable']:.1%}",
                    measured["prune"], measured["sparsify 2:4"], measured["sparsify obs"],
                    measured["proof"],
                ])  # fmt: skip
                print(" | ".join(str(cell) for cell in rows[-1]), flush=True)
    minutes = (time.perf_counter() - tick) / 60
    header = [
        "model", "export", "MACs seen", "weights seen", "prunable MACs", "prune exit",
        "sparsify 2:4 exit", "sparsify obs exit", "mask equivalence",
    ]  # fmt: skip
    body = "\n".join([
        f"`python tools/export_variants.py{' --write' if args.write else ''}` — {minutes:.1f} min "
        "(2 shared CPU cores).",
        "",
        "The same network exported in several ways (see the tool's docstring). MACs and "
        "weights seen: share of the plain export's count (inspect; the Conv/Gemm/MatMul "
        "weights sparsify counts). Exit codes: 0 = written.",
        "",
        markdown_table(header, rows),
    ])  # fmt: skip
    publish(SECTION, body, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
