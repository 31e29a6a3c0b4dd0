"""Tiny hand-built ONNX models for calibration, criteria and recovery tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from onnxprune.analysis import analyze
from onnxprune.passes.prepare import prepare


def _model(nodes, inputs, outputs, initializers) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "tiny",
        inputs,
        outputs,
        [
            numpy_helper.from_array(np.asarray(v, dtype=np.float32), k)
            for k, v in initializers.items()
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def conv_chain(
    w1: np.ndarray,
    b1: np.ndarray,
    w2: np.ndarray,
    b2: np.ndarray | None = None,
    *,
    size: int = 8,
    pad2: int = 1,
    relu: bool = True,
) -> onnx.ModelProto:
    """x (N, C0, size, size) -> Conv a (3x3, pad 1) -> [Relu] -> Conv b (pad ``pad2``) -> y."""
    c0 = w1.shape[1]
    k2 = w2.shape[2]
    inits = {"w1": w1, "b1": b1, "w2": w2}
    conv2_inputs = ["h", "w2"]
    if b2 is not None:
        inits["b2"] = b2
        conv2_inputs.append("b2")
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["a"], name="a", pads=[1, 1, 1, 1]),
        helper.make_node("Relu" if relu else "Identity", ["a"], ["h"], name="act"),
        helper.make_node("Conv", conv2_inputs, ["y"], name="b", pads=[pad2] * 4),
    ]
    out = size + 2 * pad2 - k2 + 1
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c0, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", w2.shape[0], out, out])],
        inits,
    )


def gemm_chain(w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, *, matmul: bool = False):
    """x (N, K) -> Gemm a (transB=1) -> Gemm b (transB=0) / MatMul b (no bias) -> y."""
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="a", transB=1)]
    if matmul:
        nodes.append(helper.make_node("MatMul", ["h", "w2"], ["y"], name="b"))
    else:
        nodes.append(helper.make_node("Gemm", ["h", "w2"], ["y"], name="b"))
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", w1.shape[1]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", w2.shape[1]])],
        {"w1": w1, "b1": b1, "w2": w2},
    )


def analysed(model: onnx.ModelProto, shapes: dict[str, list[int]]):
    _, prepared, _ = prepare(model, shapes)
    return analyze(prepared, shapes)


def source_clusters(analysis, source: str) -> np.ndarray:
    """Cluster ids of the group produced by ``source``, in channel order."""
    group = next(g for g in analysis.groups if g.sources == [source])
    return group.clusters


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]


def conv_stack(weights: list[np.ndarray], biases: list[np.ndarray], *, size: int = 8):
    """Convs c0..cn (3x3, pad 1, ReLU between, none after the last) from x to y."""
    nodes, inits = [], {}
    current = "x"
    for index, (w, b) in enumerate(zip(weights, biases, strict=True)):
        inits[f"w{index}"], inits[f"b{index}"] = w, b
        out = "y" if index == len(weights) - 1 else f"c{index}_out"
        nodes.append(
            helper.make_node(
                "Conv", [current, f"w{index}", f"b{index}"], [out], name=f"c{index}", pads=[1] * 4
            )
        )
        if out != "y":
            nodes.append(helper.make_node("Relu", [out], [f"r{index}"], name=f"relu{index}"))
            current = f"r{index}"
    return _model(
        nodes,
        [
            helper.make_tensor_value_info(
                "x", TensorProto.FLOAT, ["N", weights[0].shape[1], size, size]
            )
        ],
        [
            helper.make_tensor_value_info(
                "y", TensorProto.FLOAT, ["N", weights[-1].shape[0], size, size]
            )
        ],
        inits,
    )
