"""Building small exporter-style graphs and comparing them before/after preprocessing."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from onnxprune.passes import PreprocessResult, preprocess

FLOAT = TensorProto.FLOAT
RNG_SEED = 0


def const(name: str, values) -> onnx.TensorProto:
    """An initializer from numpy values (float64 is stored as float32)."""
    array = np.asarray(values)
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    return numpy_helper.from_array(array, name)


def constant_node(name: str, values) -> onnx.NodeProto:
    """A Constant node producing ``name`` (Paddle2ONNX and dynamo style)."""
    return helper.make_node("Constant", [], [name], value=const(name + "_value", values))


def model(
    nodes: Sequence[onnx.NodeProto],
    inputs: Sequence[tuple[str, Sequence]],
    outputs: Sequence[tuple[str, Sequence | None]],
    initializers: Sequence[onnx.TensorProto] = (),
    opset: int = 17,
    check: bool = True,
) -> onnx.ModelProto:
    """A float32 model; dims may be ints or names (dynamic); output dims None = unknown.

    ``check=False`` skips the ONNX checker (for deliberately unsorted graphs).
    """
    graph = helper.make_graph(
        list(nodes),
        "test",
        [helper.make_tensor_value_info(name, FLOAT, list(dims)) for name, dims in inputs],
        [
            helper.make_tensor_value_info(name, FLOAT, None if dims is None else list(dims))
            for name, dims in outputs
        ],
        list(initializers),
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 8
    if check:
        onnx.checker.check_model(proto, full_check=True)
    return proto


def feeds(proto: onnx.ModelProto, shapes: dict[str, Sequence[int]], seed: int = RNG_SEED):
    """Random float32 inputs of the given shapes."""
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(dims).astype(np.float32) for name, dims in shapes.items()}


def run(proto: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """ONNX Runtime CPU outputs."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return session.run(None, inputs)


def op_types(proto: onnx.ModelProto) -> list[str]:
    return [node.op_type for node in proto.graph.node]


def interface(proto: onnx.ModelProto) -> list[tuple[str, str]]:
    """Names and full type strings of the graph inputs and outputs."""
    initializers = {init.name for init in proto.graph.initializer}
    values = [v for v in proto.graph.input if v.name not in initializers]
    return [(v.name, str(v.type)) for v in [*values, *proto.graph.output]]


def check_preprocess(
    proto: onnx.ModelProto,
    shapes: dict[str, Sequence[int]],
    *,
    rtol: float = 1e-5,
    exact: bool = False,
    input_scale: float = 1.0,
    **kwargs,
) -> PreprocessResult:
    """Preprocess ``proto``; assert validity, same interface, same outputs; return the result.

    Outputs are compared on random normal inputs times ``input_scale`` (relative error to the
    largest output magnitude <= ``rtol``, or bit-exact with ``exact``).
    """
    serialized = proto.SerializeToString()
    result = preprocess(proto, **kwargs)
    assert proto.SerializeToString() == serialized, "the input model was modified"
    onnx.checker.check_model(result.model, full_check=True)
    assert interface(result.model) == interface(proto)
    inputs = {name: value * np.float32(input_scale) for name, value in feeds(proto, shapes).items()}
    expected = run(proto, inputs)
    actual = run(result.model, inputs)
    assert len(expected) == len(actual)
    for want, got in zip(expected, actual, strict=True):
        assert want.shape == got.shape
        if exact:
            np.testing.assert_array_equal(got, want)
        else:
            scale = max(float(np.abs(want).max()), 1e-6)
            assert float(np.abs(got - want).max()) / scale <= rtol
    return result


def transformer_optimized(source, folder, model_type: str = "bert") -> onnx.ModelProto:
    """``source`` (a BERT or ViT export) as ONNX Runtime's transformer optimizer saves it
    (``opt_level=1``, heads and width read from the graph)."""
    from onnxruntime.transformers import optimizer

    optimized = optimizer.optimize_model(
        str(source), model_type=model_type, num_heads=0, hidden_size=0, opt_level=1,
        use_gpu=False,
    )  # fmt: skip
    path = folder / f"{model_type}_optimized.onnx"
    optimized.save_model_to_file(str(path))
    return onnx.load(str(path))


def group_summary(model: onnx.ModelProto) -> tuple[int, list[tuple[int, bool]]]:
    """(prunable MACs, sorted (size, prunable) per group) of the preprocessed ``model``."""
    from onnxprune.analysis import analyze

    analysis = analyze(preprocess(model).model)
    return analysis.prunable_macs(), sorted((g.size, g.prunable) for g in analysis.groups)


def padding_mask_attention(batch: int = 2, heads: int = 2, tokens: int = 5, head: int = 4):
    """One ONNX ``Attention`` (opset 23) over inputs Q, K, V [batch, heads, tokens, head] and a
    float padding mask M [batch, 1, 1, tokens] — the layout PyTorch's dynamo exporter writes,
    which ONNX Runtime 1.31's kernel refuses at any length above 1."""
    shape = [batch, heads, tokens, head]
    inputs = [helper.make_tensor_value_info(n, FLOAT, shape) for n in "QKV"]
    inputs.append(helper.make_tensor_value_info("M", FLOAT, [batch, 1, 1, tokens]))
    node = helper.make_node("Attention", ["Q", "K", "V", "M"], ["Y"])
    graph = helper.make_graph(
        [node], "g", inputs, [helper.make_tensor_value_info("Y", FLOAT, shape)]
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    proto.ir_version = 10
    return proto
