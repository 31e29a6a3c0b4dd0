"""Models with experimental ops of ONNX's first opsets: do they load, and what is prunable?

One small network per op that ``onnxprune/io/legacy_ops.py`` rewrites, and one with a standard
Slice-1 over channels (attribute bounds, the form before opset 10), built by hand at opset 8
(ONNX Runtime runs every op here at opset 8) and IR 3 (weights also listed as graph inputs, as the ONNX Model Zoo files of that era
are): Conv 3→16, Relu, the op, Conv 16→16, Relu, Conv 16→8 (``ImageScaler`` sits on the image
input instead, as in Tiny YOLOv2). Random weights, nothing downloaded. Per model: whether
``load_model`` accepts it, the largest difference between ONNX Runtime's outputs on the file
and on the loaded (rewritten) model, prunable groups and MAC share after preprocessing, and
the mask-equivalence oracle on two random removals.

    python tools/legacy_ops_coverage.py              # writes the legacy-ops section
    python tools/legacy_ops_coverage.py --no-write --repo /path/to/older/checkout
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

SECTION = "legacy-ops"
OPS = {
    "ImageScaler": {"scale": 1 / 255, "bias": [-0.5, -0.4, -0.3]},
    "Affine": {"alpha": 0.5, "beta": 0.1},
    "Scale": {"scale": 2.0},
    "ScaledTanh": {"alpha": 1.5, "beta": 0.5},
    "ParametricSoftplus": {"alpha": 1.5, "beta": 0.7},
    "ThresholdedRelu": {"alpha": 0.2},
    "Crop": {"border": [1, 1, 1, 1]},
    "DynamicSlice": {},
    "MeanVarianceNormalization": {},
    "Slice": {"starts": [2], "ends": [14], "axes": [1]},  # standard Slice-1 over channels
    # standard normalizations that had no channel rule (the opset they need in OPSETS)
    "LpNormalization": {"axis": 1, "p": 2},
    "MeanVarianceNormalization@13": {},
    "RMSNormalization": {"axis": 1},
}
CHANNELS_AFTER = {"Slice": 12}
OPSETS = {"LpNormalization": 8, "MeanVarianceNormalization@13": 13, "RMSNormalization": 23}
SCALES = {"RMSNormalization": (16, 1, 1)}  # a scale input of this shape


def build(op_type: str, path: Path) -> None:
    """The op's network at opset 8, IR 3, or as ``OPSETS`` says (see module docstring)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def conv(name: str, cout: int, cin: int) -> onnx.TensorProto:
        scale = np.sqrt(2 / (cin * 9))
        return numpy_helper.from_array((rng.normal(size=(cout, cin, 3, 3)) * scale).astype(
            np.float32), name)  # fmt: skip

    weights = [
        conv("w1", 16, 3),
        conv("w2", 16, CHANNELS_AFTER.get(op_type, 16)),
        conv("w3", 8, 16),
    ]
    attributes = OPS[op_type]
    opset = OPSETS.get(op_type, 8)
    extra_inputs: list[str] = []
    if op_type in SCALES:
        weights.append(numpy_helper.from_array(np.ones(SCALES[op_type], np.float32), "scale"))
        extra_inputs.append("scale")
    op_type = op_type.split("@")[0]
    if op_type == "DynamicSlice":
        for name, values in (("starts", [1, 1]), ("ends", [-1, -1]), ("axes", [2, 3])):
            weights.append(numpy_helper.from_array(np.array(values, np.int64), name))
            extra_inputs.append(name)
    legacy_input, legacy_output = ("image", "scaled") if op_type == "ImageScaler" else ("r1", "l")
    first_input = "scaled" if op_type == "ImageScaler" else "image"
    nodes = [
        helper.make_node("Conv", [first_input, "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node(
            op_type, [legacy_input, *extra_inputs], [legacy_output], name="legacy", **attributes
        ),
        helper.make_node(
            "Conv",
            ["r1" if op_type == "ImageScaler" else "l", "w2"],
            ["c2"],
            name="conv2",
            pads=[1, 1, 1, 1],
        ),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "w3"], ["y"], name="conv3", pads=[1, 1, 1, 1]),
    ]
    if op_type == "ImageScaler":  # the scaler feeds conv1; conv2 reads relu1 directly
        nodes = [nodes[2], nodes[0], nodes[1], nodes[3], nodes[4], nodes[5]]
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16])]
    if opset < 9:  # IR 3: weights are graph inputs too
        inputs += [
            helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in weights
        ]
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, None, None])
    model = helper.make_model(
        helper.make_graph(nodes, op_type, inputs, [output], weights),
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="hand-built",
    )
    model.ir_version = 3 if opset < 9 else 10
    onnx.save(model, path)


def probe(op_type: str, folder: Path) -> list[str]:
    import numpy as np
    import onnxruntime as ort

    from onnxprune.analysis import analyze
    from onnxprune.errors import OnnxPruneError
    from onnxprune.io import load_model
    from onnxprune.passes import preprocess
    from tests.oracle import prove_random_removals

    tick = time.perf_counter()
    path = folder / f"{op_type}.onnx"
    build(op_type, path)
    try:
        loaded = load_model(str(path))
    except OnnxPruneError as error:
        reason = str(error).split(": ", 2)[-1].split(";")[0]
        return [
            op_type,
            f"refused: {reason}",
            "-",
            "-",
            "-",
            "-",
            f"{time.perf_counter() - tick:.1f}",
        ]
    x = np.random.default_rng(1).normal(size=(1, 3, 16, 16)).astype(np.float32)
    outputs = [
        ort.InferenceSession(source, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
        for source in (str(path), loaded.SerializeToString())
    ]
    difference = float(np.max(np.abs(outputs[0] - outputs[1])))
    prepared = preprocess(loaded).model
    cells = []
    for allow in (False, True):  # data-free prune / optimize with data (norm statistics)
        analysis = analyze(prepared, allow_norm_stats=allow)
        share = analysis.prunable_macs() / max(analysis.total_macs, 1)
        cells.append(
            f"{sum(g.prunable for g in analysis.groups)}/{len(analysis.groups)}, {share:.1%}"
        )
        if not allow:
            proof = prove_random_removals(analysis)
    return [
        op_type, "loaded", f"{difference:.1e}", *cells, proof,
        f"{time.perf_counter() - tick:.1f}",
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", default=",".join(OPS))
    parser.add_argument("--repo", help="import onnxprune from this checkout (a 'before' column)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if args.repo:
        sys.path.insert(0, str(Path(args.repo).resolve()))
    from _markdown import markdown_table, publish

    warnings.filterwarnings("ignore")
    rows = []
    with tempfile.TemporaryDirectory(prefix="onnxprune-legacy-ops-") as name:
        for op_type in args.ops.split(","):
            rows.append(probe(op_type, Path(name)))
            print(" | ".join(rows[-1]), flush=True)
    header = [
        "op (opset 8, IR 3, unless named)", "load", "max abs. difference of ORT outputs, file vs loaded",
        "prunable groups, MAC share", "with norm statistics allowed",
        "mask equivalence (without)", "s",
    ]  # fmt: skip
    command = "python tools/legacy_ops_coverage.py" + (
        "" if args.ops == ",".join(OPS) else f" --ops {args.ops}"
    )
    body = (
        "### Experimental ops of ONNX's first opsets\n\n"
        + markdown_table(header, rows)
        + "\n\nHand-built Conv–Relu–op–Conv–Relu–Conv networks with random weights (the op on "
        "the image input for ImageScaler); LpNormalization at opset 8 over the channels, "
        "MeanVarianceNormalization at opset 13 with its default axes (not written), "
        "RMSNormalization at opset 23 over [C, H, W] with a [C, 1, 1] scale (IR 10); groups "
        "after preprocessing, without norm statistics (data-free `prune`) and with them "
        "(`optimize` with data: the channels of a norm over them are statistics-coupled, "
        "pruned under the guard); mask equivalence on two random removals without norm "
        f"statistics (tests/oracle.py).\n\nCommand: `{command}`."
    )
    publish(SECTION, body, write=not args.no_write)


if __name__ == "__main__":
    main()
