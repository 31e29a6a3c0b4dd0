"""Bitmask weight storage: a mostly-zero initializer written as its non-zeros plus one bit per
weight, decoded by standard ONNX ops that ONNX Runtime folds when it loads the model.

ONNX's own ``sparse_initializer`` needs an INT64 index per non-zero (12 bytes per float32
value), so it shrinks a file only above 2/3 sparsity. Here a weight W of n values with k
non-zeros becomes two initializers

* ``W__nonzeros`` = [0, w_1, …, w_k]: the non-zeros in row-major order after a leading 0;
* ``W__bitmask`` = packbits(W ≠ 0): ⌈n/8⌉ bytes, most significant bit first;

(k + 1)·b + n/8 bytes for b-byte values, 0.33× the dense size at 70 % sparsity for float32,
and a decode chain whose output is named W, so every consumer is unchanged:

    bits  = Mod(BitShift(Unsqueeze(W__bitmask, 1), [7 … 0], RIGHT), 2)   # [⌈n/8⌉, 8]
    mask  = Cast(Slice(Reshape(bits, [-1]), 0, n), INT64)                # 0/1 per weight
    W     = Reshape(Gather(W__nonzeros, CumSum(mask) · mask), shape(W))

The position of the j-th non-zero is CumSum(mask) = j; a zero gets index 0, the leading 0. All
inputs are initializers, so ONNX Runtime's constant folding turns the chain back into the dense
W at session creation: outputs are bit-identical and runs are as fast as the dense model's
(a NonZero/ScatterND chain is *not* folded and runs on every call; see docs/ARCHITECTURE.md).

:func:`encode_bitmask` writes the form (opset ≥ 11), :func:`decode_bitmask` restores dense
initializers; :func:`onnxprune.io.normalize.normalize_model` decodes on load, so onnxprune reads
its own output like any other model.
"""

from __future__ import annotations

import numpy as np
from onnx import GraphProto, ModelProto, NodeProto, TensorProto, helper, numpy_helper

MARK = "onnxprune bitmask storage"
NONZEROS = "__nonzeros"
BITMASK = "__bitmask"
SHARED = "onnxprune_bitmask"
FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16)
MIN_OPSET = 11  # BitShift and CumSum


def _opset(model: ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0


def bitmask_bytes(size: int, nonzero: int, item_bytes: int) -> int:
    """Bytes of the encoded form: (k + 1) values and ⌈n/8⌉ mask bytes."""
    return (nonzero + 1) * item_bytes + -(-size // 8)


def _shared_constants(opset: int) -> list[TensorProto]:
    tensors = [
        numpy_helper.from_array(
            np.arange(7, -1, -1, dtype=np.uint8).reshape(1, 8), f"{SHARED}/shifts"
        ),
        numpy_helper.from_array(np.array([2], dtype=np.uint8), f"{SHARED}/two"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), f"{SHARED}/flat"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), f"{SHARED}/start"),
        numpy_helper.from_array(np.array(0, dtype=np.int64), f"{SHARED}/axis0"),
    ]
    if opset >= 13:
        tensors.append(numpy_helper.from_array(np.array([1], dtype=np.int64), f"{SHARED}/axis1"))
    return tensors


def _decode_nodes(name: str, opset: int) -> list[NodeProto]:
    """The chain of the module docstring, producing tensor ``name``."""
    p = f"{name}/bitmask_decode"
    if opset >= 13:
        unsqueeze = helper.make_node(
            "Unsqueeze", [name + BITMASK, f"{SHARED}/axis1"], [f"{p}/bytes"], name=f"{p}/0"
        )
    else:
        unsqueeze = helper.make_node(
            "Unsqueeze", [name + BITMASK], [f"{p}/bytes"], name=f"{p}/0", axes=[1]
        )
    final = helper.make_node("Reshape", [f"{p}/dense", f"{name}__shape"], [name], name=f"{p}/9")
    final.doc_string = MARK
    return [
        unsqueeze,
        helper.make_node(
            "BitShift",
            [f"{p}/bytes", f"{SHARED}/shifts"],
            [f"{p}/shifted"],
            name=f"{p}/1",
            direction="RIGHT",
        ),
        helper.make_node("Mod", [f"{p}/shifted", f"{SHARED}/two"], [f"{p}/bits"], name=f"{p}/2"),
        helper.make_node("Reshape", [f"{p}/bits", f"{SHARED}/flat"], [f"{p}/row"], name=f"{p}/3"),
        helper.make_node(
            "Slice",
            [f"{p}/row", f"{SHARED}/start", f"{name}__count"],
            [f"{p}/used"],
            name=f"{p}/4",
        ),
        helper.make_node("Cast", [f"{p}/used"], [f"{p}/mask"], name=f"{p}/5", to=TensorProto.INT64),
        helper.make_node("CumSum", [f"{p}/mask", f"{SHARED}/axis0"], [f"{p}/rank"], name=f"{p}/6"),
        helper.make_node("Mul", [f"{p}/rank", f"{p}/mask"], [f"{p}/index"], name=f"{p}/7"),
        helper.make_node(
            "Gather", [name + NONZEROS, f"{p}/index"], [f"{p}/dense"], name=f"{p}/8", axis=0
        ),
        final,
    ]


def encode_bitmask(
    model: ModelProto, *, min_sparsity: float = 0.5, min_size: int = 1024
) -> tuple[ModelProto, list[str]]:
    """A copy of ``model`` with every floating initializer of at least ``min_size`` values,
    ``min_sparsity`` zeros and a smaller encoded form stored as bitmask + non-zeros (module
    docstring), and the names encoded. Graph inputs and models below opset 11 stay as they are.
    """
    result = ModelProto()
    result.CopyFrom(model)
    opset = _opset(result)
    if opset < MIN_OPSET:
        return result, []
    graph = result.graph
    inputs = {value.name for value in graph.input}
    keep: list[TensorProto] = []
    added: list[TensorProto] = []
    nodes: list[NodeProto] = []
    encoded: list[str] = []
    for init in graph.initializer:
        if init.name in inputs or init.data_type not in FLOAT_TYPES:
            keep.append(init)
            continue
        value = numpy_helper.to_array(init)
        flat = value.reshape(-1)
        present = flat != 0
        nonzero = int(present.sum())
        if (
            flat.size < min_size
            or 1 - nonzero / max(flat.size, 1) < min_sparsity
            or bitmask_bytes(flat.size, nonzero, flat.dtype.itemsize) >= flat.nbytes
        ):
            keep.append(init)
            continue
        values = np.concatenate([np.zeros(1, dtype=flat.dtype), flat[present]])
        added += [
            numpy_helper.from_array(values, init.name + NONZEROS),
            numpy_helper.from_array(np.packbits(present), init.name + BITMASK),
            numpy_helper.from_array(np.array([flat.size], dtype=np.int64), f"{init.name}__count"),
            numpy_helper.from_array(np.array(value.shape, dtype=np.int64), f"{init.name}__shape"),
        ]
        nodes += _decode_nodes(init.name, opset)
        encoded.append(init.name)
    if not encoded:
        return result, []
    del graph.initializer[:]
    graph.initializer.extend(keep + added + _shared_constants(opset))
    rest = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + rest)
    return result, encoded


def _encoded_names(graph: GraphProto) -> list[str]:
    return [
        node.output[0]
        for node in graph.node
        if node.doc_string == MARK and node.op_type == "Reshape" and len(node.output) == 1
    ]


def decode_bitmask(graph: GraphProto) -> list[str]:
    """Turn every bitmask-stored weight of ``graph`` (in place) back into a dense initializer;
    the decode nodes and the initializers only they read are removed. Returns the names."""
    names = _encoded_names(graph)
    if not names:
        return []
    arrays = {init.name: init for init in graph.initializer}
    dense: list[TensorProto] = []
    for name in names:
        values = numpy_helper.to_array(arrays[name + NONZEROS]).reshape(-1)
        bits = numpy_helper.to_array(arrays[name + BITMASK]).reshape(-1)
        count = int(numpy_helper.to_array(arrays[f"{name}__count"]).reshape(-1)[0])
        shape = [int(d) for d in numpy_helper.to_array(arrays[f"{name}__shape"]).reshape(-1)]
        mask = np.unpackbits(bits)[:count].astype(bool)
        flat = np.zeros(count, dtype=values.dtype)
        flat[mask] = values[1 : 1 + int(mask.sum())]
        dense.append(numpy_helper.from_array(flat.reshape(shape), name))
    prefixes = tuple(f"{name}/bitmask_decode/" for name in names)
    kept_nodes = [node for node in graph.node if not node.name.startswith(prefixes)]
    del graph.node[:]
    graph.node.extend(kept_nodes)
    read = {name for node in graph.node for name in node.input}
    read |= {value.name for value in graph.output}
    owned = {
        f"{name}{suffix}" for name in names for suffix in (NONZEROS, BITMASK, "__count", "__shape")
    }
    kept = [
        init
        for init in graph.initializer
        if init.name in read or not (init.name in owned or init.name.startswith(SHARED + "/"))
    ]
    del graph.initializer[:]
    graph.initializer.extend(kept + dense)
    return names
