"""Keras Applications through tf2onnx: prunable MAC share and mask equivalence, per model.

TensorFlow is not a dependency of this repo; the models are converted once, outside it, with
random weights (``weights=None``: nothing is downloaded; the graph is what matters here):

    python -m venv tfenv && tfenv/bin/pip install tensorflow-cpu tf2onnx
    tfenv/bin/python - <<'EOF'
    import keras, subprocess, sys
    for name in ["MobileNetV2", "MobileNetV3Small", "MobileNetV3Large", "EfficientNetB0",
                 "EfficientNetV2B0", "ResNet50", "ResNet50V2", "DenseNet121", "ConvNeXtTiny",
                 "Xception", "NASNetMobile", "InceptionV3"]:
        size = 299 if name in ("Xception", "InceptionV3") else 224
        getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3)).export(
            f"/tmp/sm_{name}", verbose=False)
        subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--saved-model",
                        f"/tmp/sm_{name}", "--opset", "17", "--output", f"DIR/{name}.onnx"])
    EOF

(TensorFlow 2.21 / Keras 3.15 / tf2onnx 1.17.) NHWC models whose every conv is wrapped in
Transposes, Keras's BatchNormalization as Mul/Add, SE blocks through Reshape, hard-swish,
DenseNet's concatenations, NASNet's cells. For each file: load it as a user would (the
``onnxprune inspect`` door), preprocess at batch 1, analyse without norm statistics (every
prunable group must be mask-equivalent), and run the mask-equivalence oracle
(``tests/oracle.py``) on two random removals (tolerance 1e-4 relative to the output scale).
A file the door refuses is listed with its one-line error.

    python tools/keras_coverage.py DIR            # writes the keras-coverage section
    python tools/keras_coverage.py DIR --no-write
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from _coverage import blocked_reasons  # noqa: E402
from _markdown import markdown_table, publish  # noqa: E402

SECTION = "keras-coverage"


def probe(path: Path) -> list[str]:
    from onnxprune.analysis import analyze
    from onnxprune.errors import OnnxPruneError
    from onnxprune.io import load_model
    from onnxprune.passes import preprocess
    from onnxprune.stats import count_macs
    from tests.oracle import prove_random_removals

    tick = time.perf_counter()
    try:
        model = load_model(str(path))
    except OnnxPruneError as error:
        return [path.stem, "-", "-", "-", "-", f"refused: {str(error)[:160]}", "-"]
    shapes = {
        value.name: [1] + [d.dim_value for d in value.type.tensor_type.shape.dim[1:]]
        for value in model.graph.input
    }
    macs = count_macs(model, shapes).total
    analysis = analyze(preprocess(model, input_shapes=shapes).model, shapes, allow_norm_stats=False)
    share = analysis.prunable_macs() / max(analysis.total_macs, 1)
    prunable = sum(group.prunable for group in analysis.groups)
    proof = prove_random_removals(analysis)
    blocked = blocked_reasons(analysis)
    return [
        path.stem,
        f"{macs / 1e6:,.0f} M",
        f"{prunable}/{len(analysis.groups)}",
        f"{share:.1%}",
        blocked,
        proof,
        f"{time.perf_counter() - tick:.1f}",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of tf2onnx conversions (*.onnx)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    rows = []
    for path in sorted(args.folder.glob("*.onnx")):
        rows.append(probe(path))
        print(" | ".join(rows[-1]), flush=True)
    header = [
        "model", "MACs", "prunable groups", "prunable MAC share", "why the others are blocked",
        "mask equivalence", "s",
    ]  # fmt: skip
    body = (
        "### Keras Applications through tf2onnx\n\n"
        + markdown_table(header, rows)
        + "\n\nRandom weights (`weights=None`), batch 1, opset 17; analysis without norm "
        "statistics; mask equivalence on two random removals each (tests/oracle.py); s = "
        "load, count, preprocess, analyse and prove.\n\nCommand: `python "
        "tools/keras_coverage.py DIR` (DIR: the conversions of the module docstring)."
    )
    publish(SECTION, body, not args.no_write)


if __name__ == "__main__":
    main()
