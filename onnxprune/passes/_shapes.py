"""Cheap ONNX shape inference: run it on a weight-free skeleton of the model.

``onnx.shape_inference`` copies the whole model; for a 100 MB model that copy dominates. The
skeleton keeps every node, the graph inputs/outputs and the small initializers (shape
constants, which data propagation needs) and turns every large initializer into a typed
graph input, so inference sees the same shapes at a fraction of the cost and without the
2 GB protobuf limit.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
import onnx_graphsurgeon as gs
from onnx import ModelProto

# Initializers up to this many elements are kept as values (shape constants, scalars).
SMALL_INITIALIZER_ELEMENTS = 4096


def _elements(dims) -> int:
    return int(np.prod(dims)) if len(dims) else 1


def skeleton(model: ModelProto) -> ModelProto:
    """A copy of ``model`` without large weight values (they become typed graph inputs)."""
    graph = model.graph
    light = onnx.GraphProto(name=graph.name)
    light.node.extend(graph.node)
    listed = set()
    for init in graph.initializer:
        listed.add(init.name)
        if _elements(init.dims) <= SMALL_INITIALIZER_ELEMENTS:
            light.initializer.append(init)
        else:
            light.input.append(
                onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
            )
    for sparse in graph.sparse_initializer:
        listed.add(sparse.values.name)
        light.input.append(
            onnx.helper.make_tensor_value_info(
                sparse.values.name, sparse.values.data_type, list(sparse.dims)
            )
        )
    light.input.extend(value for value in graph.input if value.name not in listed)
    light.output.extend(graph.output)
    result = ModelProto(ir_version=model.ir_version)
    result.opset_import.extend(model.opset_import)
    result.functions.extend(model.functions)
    result.graph.CopyFrom(light)
    return result


def infer_value_infos(model: ModelProto) -> dict[str, onnx.ValueInfoProto]:
    """Inferred type and shape of every intermediate tensor of ``model`` ({} if inference fails)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(
            skeleton(model), strict_mode=False, data_prop=True
        )
    except Exception:  # inference errors come in many types; shapes are best effort
        return {}
    return {value.name: value for value in inferred.graph.value_info}


def _gs_shape(value: onnx.ValueInfoProto) -> tuple[np.dtype | None, list | None]:
    tensor_type = value.type.tensor_type
    dtype = None
    if tensor_type.elem_type:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
    if not tensor_type.HasField("shape"):
        return dtype, None
    dims: list = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return dtype, dims


def apply_value_infos(
    graph: gs.Graph,
    infos: dict[str, onnx.ValueInfoProto],
    recorded: Iterable[onnx.ValueInfoProto] = (),
) -> None:
    """Set dtype/shape of the graph's intermediate variables from ``infos``.

    ``recorded``: the value_info the model file carries (what its exporter wrote). Where the
    inference leaves a dimension unknown (no value, or a symbol onnx invented, ``unk__N``) and
    the file recorded an integer for the same axis of a tensor of the same rank, the integer is
    kept: a dynamo export's head count computed through a run-time Reshape target is unknown
    to onnx's inference on the weightless skeleton, yet the exporter knew it. Known dimensions
    are never replaced."""
    boundary = {tensor.name for tensor in [*graph.inputs, *graph.outputs]}
    written = {value.name: _gs_shape(value)[1] for value in recorded}
    for name, tensor in graph.tensors().items():
        if name in boundary or not isinstance(tensor, gs.Variable):
            continue
        dims = None
        if name in infos and infos[name].type.HasField("tensor_type"):
            dtype, dims = _gs_shape(infos[name])
            if dtype is not None:
                tensor.dtype = dtype
        dims = _with_recorded(dims, written.get(name))
        if dims is not None:
            tensor.shape = dims


def _unknown(dim) -> bool:
    return dim is None or (isinstance(dim, str) and dim.startswith("unk__"))


def _with_recorded(dims: list | None, recorded: list | None) -> list | None:
    """``dims`` with unknown entries filled from ``recorded`` integers (same rank only)."""
    if recorded is None:
        return dims
    if dims is None:
        return recorded if any(isinstance(d, int) for d in recorded) else None
    if len(dims) != len(recorded):
        return dims
    return [
        r if _unknown(d) and isinstance(r, int) else d for d, r in zip(dims, recorded, strict=True)
    ]


def static_shape(tensor: gs.Tensor) -> tuple[int, ...] | None:
    """The shape of ``tensor`` when every dimension is a known integer, else None."""
    if isinstance(tensor, gs.Constant):
        return tuple(tensor.shape)
    shape = tensor.shape
    if shape is None or any(not isinstance(dim, int) or dim < 0 for dim in shape):
        return None
    return tuple(shape)


def rank_of(tensor: gs.Tensor) -> int | None:
    """The rank of ``tensor`` when known."""
    if isinstance(tensor, gs.Constant):
        return len(tensor.shape)
    return None if tensor.shape is None else len(tensor.shape)
