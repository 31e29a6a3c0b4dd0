"""Walk every tensor a model holds and size tensor data without serializing it.

Protobuf messages cannot be serialized past 2 GB, so sizes here come from ``dims`` × element
size (``raw_data`` must hold exactly that many bytes), never from ``ByteSize()`` of a large model.
"""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf.message import EncodeError
from onnx import AttributeProto, GraphProto, ModelProto, TensorProto, helper

# Sub-byte element types pack several elements per byte.
_SUB_BYTE_BITS: dict[int, int] = {
    getattr(TensorProto, name): bits
    for name, bits in (
        ("INT4", 4),
        ("UINT4", 4),
        ("FLOAT4E2M1", 4),
        ("INT2", 2),
        ("UINT2", 2),
    )
    if hasattr(TensorProto, name)
}


def element_count(tensor: TensorProto) -> int:
    """Number of elements: the product of ``dims`` (1 for a scalar)."""
    count = 1
    for dim in tensor.dims:
        count *= int(dim)
    return count


def element_bits(data_type: int) -> int | None:
    """Bits per element of an ONNX element type; None for variable-size types (STRING)."""
    if data_type in _SUB_BYTE_BITS:
        return _SUB_BYTE_BITS[data_type]
    if data_type in (TensorProto.STRING, TensorProto.UNDEFINED):
        return None
    try:
        return helper.tensor_dtype_to_np_dtype(data_type).itemsize * 8
    except (KeyError, ValueError, TypeError):
        return None


def tensor_nbytes(tensor: TensorProto) -> int:
    """Bytes of the tensor's data as stored raw: ceil(elements × bits / 8).

    Strings (variable size) are measured with ``ByteSize()`` of the tensor, which is safe since
    one tensor is always under the 2 GB protobuf limit.
    """
    bits = element_bits(tensor.data_type)
    if bits is None:
        return tensor.ByteSize()
    return (element_count(tensor) * bits + 7) // 8


def is_external(tensor: TensorProto) -> bool:
    """True when the tensor's data lives in an external file."""
    return tensor.data_location == TensorProto.EXTERNAL


def _attribute_tensors(attribute: AttributeProto) -> Iterator[TensorProto]:
    if attribute.HasField("t"):
        yield attribute.t
    yield from attribute.tensors
    if attribute.HasField("sparse_tensor"):
        yield attribute.sparse_tensor.values
    for sparse in attribute.sparse_tensors:
        yield sparse.values


def _attribute_graphs(attribute: AttributeProto) -> Iterator[GraphProto]:
    if attribute.HasField("g"):
        yield attribute.g
    yield from attribute.graphs


def iter_graph_tensors(graph: GraphProto) -> Iterator[TensorProto]:
    """Every tensor of ``graph``: initializers, sparse initializers' values, tensors held in node
    attributes (Constant and others), recursively through subgraphs (If/Loop/Scan bodies)."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
    for node in graph.node:
        for attribute in node.attribute:
            yield from _attribute_tensors(attribute)
            for subgraph in _attribute_graphs(attribute):
                yield from iter_graph_tensors(subgraph)


def iter_model_tensors(model: ModelProto) -> Iterator[TensorProto]:
    """Every tensor of the model: the main graph's (see iter_graph_tensors) and those in nodes of
    model-local functions."""
    yield from iter_graph_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            for attribute in node.attribute:
                yield from _attribute_tensors(attribute)
                for subgraph in _attribute_graphs(attribute):
                    yield from iter_graph_tensors(subgraph)


def inline_data_bytes(model: ModelProto) -> int:
    """Bytes of tensor data stored inside the model proto (external tensors count 0)."""
    return sum(tensor_nbytes(t) for t in iter_model_tensors(model) if not is_external(t))


def estimate_model_bytes(model: ModelProto) -> int:
    """Serialized size of ``model`` in bytes, computed without serializing a > 2 GB protobuf.

    Exact (``ByteSize()``) when the inline tensor data is safely under 2 GB; otherwise the
    inline tensor data size, a lower bound that is already past the protobuf limit.
    """
    data = inline_data_bytes(model)
    if data >= 2**31 - 2**26:
        return data
    try:
        return model.ByteSize()
    except EncodeError:  # structure alone past 2 GB: unusual but possible
        return max(data, 2**31)
