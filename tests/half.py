"""Half-precision copies of float32 test models (what float16 exports look like: float16
initializers, inputs and outputs), without a converter package."""

from __future__ import annotations

import numpy as np
from onnx import AttributeProto, ModelProto, TensorProto, numpy_helper


def to_float16(model: ModelProto) -> ModelProto:
    """``model`` computing in float16: float initializers, graph inputs/outputs and float
    Constant values become float16, Cast-to-float targets too; value_info is dropped."""
    half = ModelProto()
    half.CopyFrom(model)
    graph = half.graph
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            value = numpy_helper.to_array(init).astype(np.float16)
            init.CopyFrom(numpy_helper.from_array(value, init.name))
    for value in [*graph.input, *graph.output]:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            value.type.tensor_type.elem_type = TensorProto.FLOAT16
    del graph.value_info[:]
    for node in graph.node:
        for attribute in node.attribute:
            if (
                attribute.type == AttributeProto.TENSOR
                and attribute.t.data_type == TensorProto.FLOAT
            ):
                value = numpy_helper.to_array(attribute.t).astype(np.float16)
                attribute.t.CopyFrom(numpy_helper.from_array(value, attribute.t.name))
            if (
                node.op_type == "Cast"
                and attribute.name == "to"
                and attribute.i == TensorProto.FLOAT
            ):
                attribute.i = TensorProto.FLOAT16
    return half
