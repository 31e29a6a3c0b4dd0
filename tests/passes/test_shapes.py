"""passes/_shapes: the inferred shapes the passes read, completed by what the exporter wrote."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs
from onnx import TensorProto, helper, numpy_helper

from onnxprune.passes._shapes import apply_value_infos, infer_value_infos


def _head_split_model(recorded_heads: int | None):
    """x [B, T, 8] → Reshape to [B, T, h, 2] with h read from a run-time Div of the width, so
    onnx's inference on the skeleton cannot know the head count; the file may record it."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "last"], ["width"]),
        helper.make_node("Div", ["width", "two"], ["heads"]),
        helper.make_node("Slice", ["shape", "zero", "two_i"], ["bt"]),
        helper.make_node("Concat", ["bt", "heads", "two"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["split"]),
        helper.make_node("Relu", ["split"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.asarray([2], np.int64), "last"),
        numpy_helper.from_array(np.asarray([2], np.int64), "two"),
        numpy_helper.from_array(np.asarray([0], np.int64), "zero"),
        numpy_helper.from_array(np.asarray([2], np.int64), "two_i"),
    ]
    value_info = []
    if recorded_heads is not None:
        value_info.append(
            # the last dim recorded wrong on purpose: a known inferred dim is never replaced
            helper.make_tensor_value_info("split", TensorProto.FLOAT, ["b", "t", recorded_heads, 5])
        )
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "t", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits,
        value_info=value_info,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_recorded_integers_fill_only_unknown_dims():
    model = _head_split_model(recorded_heads=4)
    infos = infer_value_infos(model)
    inferred = [d.dim_value or d.dim_param for d in infos["split"].type.tensor_type.shape.dim]
    assert not isinstance(inferred[2], int) or inferred[2] == 0  # inference does not know h
    graph = gs.import_onnx(model)
    apply_value_infos(graph, infos, model.graph.value_info)
    shape = graph.tensors()["split"].shape
    assert shape[2] == 4 and shape[3] == 2


def test_without_a_record_the_inferred_shape_stands():
    model = _head_split_model(recorded_heads=None)
    infos = infer_value_infos(model)
    graph = gs.import_onnx(model)
    apply_value_infos(graph, infos, model.graph.value_info)
    assert not isinstance(graph.tensors()["split"].shape[2], int)
