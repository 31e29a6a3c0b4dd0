"""Tiny ONNX models for evaluation tests (built with onnx.helper, no training)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def linear_model(
    weight: np.ndarray,
    batch: int | str = "batch",
    extra_output: bool = False,
    label_first: bool = False,
):
    """``logits = x @ weight`` for x of shape (batch, F); optionally a second output
    ``double = 2 * logits``; ``label_first``: an output ``label = argmax(logits)`` (batch,)
    int64 before the logits, as skl2onnx classifiers have."""
    features, classes = weight.shape
    nodes = [helper.make_node("MatMul", ["x", "w"], ["logits"])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])]
    if label_first:
        nodes.append(helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0))
        outputs.insert(0, helper.make_tensor_value_info("label", TensorProto.INT64, [batch]))
    initializers = [numpy_helper.from_array(weight.astype(np.float32), "w")]
    if extra_output:
        nodes.append(helper.make_node("Mul", ["logits", "two"], ["double"]))
        outputs.append(helper.make_tensor_value_info("double", TensorProto.FLOAT, [batch, classes]))
        initializers.append(numpy_helper.from_array(np.array(2.0, np.float32), "two"))
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, features])],
        outputs,
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def conv_classifier(classes: int = 3, size: int = 12, seed: int = 0, batch: int | str = "batch"):
    """Conv(1→4, 3×3) → Relu → GlobalAveragePool → Flatten → Gemm: class scores of a
    (batch, 1, size, size) image; random filters, class k reads filter k (each class can win)."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Conv", ["x", "cw", "cb"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "gw", "gb"], ["logits"], transB=1),
    ]
    initializers = [
        numpy_helper.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "cw"),
        numpy_helper.from_array(np.zeros(4, np.float32), "cb"),
        numpy_helper.from_array((3 * np.eye(classes, 4) - 1).astype(np.float32), "gw"),
        numpy_helper.from_array(np.zeros(classes, np.float32), "gb"),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 1, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def grey_photos(root, count: int, *, seed: int = 0, size: tuple[int, int] = (24, 30)):
    """A flat folder ``root`` of ``count`` random greyscale PNG photos (H, W = ``size``), for
    models like :func:`conv_classifier` with one input channel."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    for index in range(count):
        pixels = rng.integers(0, 256, size=size, dtype=np.uint8)
        Image.fromarray(pixels, mode="L").save(root / f"{index}.png")
    return root
