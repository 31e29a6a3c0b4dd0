"""A small hand-built model with every sparsifiable kind of layer, and its calibration data."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def weight_zoo(seed: int = 0) -> onnx.ModelProto:
    """x (N, 8, 6, 6) -> Conv a (16x8x3x3) -> Relu -> depthwise Conv dw -> ConvTranspose up
    (16 -> 8, 2x2, stride 2) -> Conv g (grouped, 2 groups) -> GlobalAveragePool -> Flatten ->
    Gemm fc (transB=1, 24x8) -> MatMul mm (24x64) -> y."""
    rng = np.random.default_rng(seed)
    inits = {
        "wa": rng.normal(size=(16, 8, 3, 3)),
        "ba": rng.normal(size=16) * 0.1,
        "wdw": rng.normal(size=(16, 1, 3, 3)),
        "wup": rng.normal(size=(16, 8, 2, 2)),
        "wg": rng.normal(size=(8, 4, 3, 3)),
        "wfc": rng.normal(size=(24, 8)),
        "bfc": rng.normal(size=24) * 0.1,
        "wmm": rng.normal(size=(24, 64)),
    }
    nodes = [
        helper.make_node("Conv", ["x", "wa", "ba"], ["a"], name="a", pads=[1] * 4),
        helper.make_node("Relu", ["a"], ["ra"], name="ra"),
        helper.make_node("Conv", ["ra", "wdw"], ["d"], name="dw", pads=[1] * 4, group=16),
        helper.make_node("ConvTranspose", ["d", "wup"], ["u"], name="up", strides=[2, 2]),
        helper.make_node("Conv", ["u", "wg"], ["g"], name="g", pads=[1] * 4, group=2),
        helper.make_node("GlobalAveragePool", ["g"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "wfc", "bfc"], ["h"], name="fc", transB=1),
        helper.make_node("MatMul", ["h", "wmm"], ["y"], name="mm"),
    ]
    graph = helper.make_graph(
        nodes,
        "weight_zoo",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 64])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def calibration(n: int = 24, seed: int = 1) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).normal(size=(n, 8, 6, 6)).astype(np.float32)}


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]
