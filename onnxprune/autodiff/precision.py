"""Half-precision models differentiated in float32.

ONNX Runtime's CPU provider has no float16 kernels for several ops a backward graph needs
(ScatterElements, most reductions' gradients), and float16 sums of many per-sample products
lose the scores they accumulate. Gradients are therefore computed on :func:`float32_copy`:

    the same graph with every float16 / bfloat16 tensor made float32 — initializers (values
    upcast exactly), graph inputs, outputs and value_info, ``Cast``/``CastLike`` targets,
    ``Constant`` / ``ConstantOfShape`` values and ``dtype`` attributes, in subgraphs too.

Every float16 value is exactly representable in float32, so the copy computes what the
model computes up to float16 rounding of intermediate results. Initializer names do not
change: scores and gradients keyed by name apply to the original model. Feeds of float16
arrays are upcast by :class:`~onnxprune.autodiff.session.GradientSession`. Models without
half-precision tensors are returned unchanged (same object).
"""

from __future__ import annotations

import numpy as np
from onnx import AttributeProto, GraphProto, ModelProto, TensorProto, numpy_helper

HALF_TYPES = (TensorProto.FLOAT16, TensorProto.BFLOAT16)
_DTYPE_ATTRIBUTES = ("to", "dtype")


def has_half_precision(model: ModelProto) -> bool:
    """Whether any initializer, graph input or graph output is float16 or bfloat16."""
    graph = model.graph
    if any(init.data_type in HALF_TYPES for init in graph.initializer):
        return True
    values = [*graph.input, *graph.output, *graph.value_info]
    return any(value.type.tensor_type.elem_type in HALF_TYPES for value in values)


def _upcast_tensor(tensor: TensorProto) -> None:
    if tensor.data_type not in HALF_TYPES:
        return
    value = numpy_helper.to_array(tensor).astype(np.float32)
    tensor.CopyFrom(numpy_helper.from_array(value, tensor.name))


def _upcast_graph(graph: GraphProto) -> None:
    for init in graph.initializer:
        _upcast_tensor(init)
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.type.tensor_type.elem_type in HALF_TYPES:
            value.type.tensor_type.elem_type = TensorProto.FLOAT
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == AttributeProto.TENSOR:
                _upcast_tensor(attribute.t)
            elif attribute.type == AttributeProto.INT and attribute.name in _DTYPE_ATTRIBUTES:
                if attribute.i in HALF_TYPES:
                    attribute.i = TensorProto.FLOAT
            elif attribute.type == AttributeProto.GRAPH:
                _upcast_graph(attribute.g)
            elif attribute.type == AttributeProto.GRAPHS:
                for subgraph in attribute.graphs:
                    _upcast_graph(subgraph)


def float32_copy(model: ModelProto) -> ModelProto:
    """``model`` with half-precision tensors made float32 (module docstring)."""
    if not has_half_precision(model):
        return model
    copy = ModelProto()
    copy.CopyFrom(model)
    _upcast_graph(copy.graph)
    return copy


def float32_feeds(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``feeds`` with float16 arrays upcast, for a :func:`float32_copy` of the model."""
    return {
        name: value.astype(np.float32) if value.dtype == np.float16 else value
        for name, value in feeds.items()
    }
