"""Tiny hand-built ONNX models shared by the io, stats and inspect tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # what onnxruntime accepts


def make_model(nodes, inputs, outputs, initializers=(), ir_version=IR_VERSION, **kwargs):
    """A model around one graph with opset 17 and an IR version onnxruntime loads."""
    graph = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), list(initializers))
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=ir_version,
        producer_name="tiny",
        producer_version="0.1",
        **kwargs,
    )


def weight(name: str, shape, seed: int = 0, dtype=np.float32) -> TensorProto:
    """Seeded standard-normal initializer."""
    rng = np.random.default_rng(seed)
    return numpy_helper.from_array(rng.standard_normal(shape).astype(dtype), name)


def mlp_model(hidden: int = 48) -> onnx.ModelProto:
    """x[batch, 32] -> MatMul(W1 32×hidden) -> Relu -> MatMul(W2 hidden×16) -> y[batch, 16].

    W1 and W2 are 6 KiB and 3 KiB at hidden=48, so both go to external data when forced.
    """
    return make_model(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
            helper.make_node("Relu", ["h"], ["r"], name="relu"),
            helper.make_node("MatMul", ["r", "w2"], ["y"], name="fc2"),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])],
        [weight("w1", (32, hidden), 1), weight("w2", (hidden, 16), 2)],
    )


def run(model_or_path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Outputs of onnxruntime (CPU) for a ModelProto or a path."""
    import onnxruntime as ort

    source = (
        model_or_path.SerializeToString() if hasattr(model_or_path, "graph") else str(model_or_path)
    )
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)
