"""Sparse storage: write mostly-zero weights as ONNX ``sparse_initializer`` (COO).

By default zeros stay dense (every runtime loads that). :func:`to_sparse_storage` moves every
floating initializer of at least ``min_size`` values whose zero share is at least
``min_sparsity`` into ``graph.sparse_initializer``: ``values`` (the non-zeros, same name and
dtype) and ``indices`` (their linearized positions, ascending; ONNX requires INT64), ``dims``
the dense shape. ONNX Runtime expands them to dense tensors when it loads the model, so outputs
are identical and nothing runs faster: only the file shrinks. Each stored non-zero costs its
value plus 8 index bytes, so for float32 the file shrinks only above 2/3 sparsity
(12·(1−s) < 4) — the break-even is checked per tensor and denser ones stay dense.

:func:`to_bitmask_storage` is the compact alternative (:mod:`onnxprune.io.bitmask`): the
non-zeros plus one bit per weight, decoded by standard ops that ONNX Runtime folds at load,
(1 − s)·b + n/8 bytes — 0.33× the dense float32 size at 70 % sparsity, smaller than dense from
about 1/8 + 1/32 sparsity on.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import numpy as np
from onnx import ModelProto, TensorProto, helper, numpy_helper

from onnxprune.io.tensors import element_bits

INDEX_BYTES = 8


@dataclass(frozen=True)
class SizeReport:
    """Serialized sizes of a model: plain and after gzip (level 6)."""

    bytes: int
    gzip_bytes: int


def model_sizes(model: ModelProto) -> SizeReport:
    """File size of ``model`` as written (protobuf, inline data) and its gzip size."""
    data = model.SerializeToString()
    return SizeReport(len(data), len(gzip.compress(data, compresslevel=6)))


def _worth_it(tensor: TensorProto, nonzero: int, size: int) -> bool:
    bits = element_bits(tensor.data_type) or 32
    return nonzero * (bits / 8 + INDEX_BYTES) < size * bits / 8


def to_sparse_storage(
    model: ModelProto, *, min_sparsity: float = 0.5, min_size: int = 1024
) -> tuple[ModelProto, list[str]]:
    """A copy of ``model`` with sparse-enough initializers as ``sparse_initializer``s, and the
    names moved. Initializers that are also graph inputs (IR < 4) stay dense."""
    result = ModelProto()
    result.CopyFrom(model)
    graph = result.graph
    inputs = {value.name for value in graph.input}
    keep, moved = [], []
    for init in graph.initializer:
        if init.name in inputs or init.data_type not in (
            TensorProto.FLOAT,
            TensorProto.DOUBLE,
            TensorProto.FLOAT16,
            TensorProto.BFLOAT16,
        ):
            keep.append(init)
            continue
        value = numpy_helper.to_array(init)
        flat = value.reshape(-1)
        nonzero = np.flatnonzero(flat)
        if (
            flat.size < min_size
            or 1 - len(nonzero) / max(flat.size, 1) < min_sparsity
            or not _worth_it(init, len(nonzero), flat.size)
        ):
            keep.append(init)
            continue
        values = numpy_helper.from_array(flat[nonzero], init.name)
        indices = numpy_helper.from_array(nonzero.astype(np.int64), f"{init.name}__indices")
        graph.sparse_initializer.append(
            helper.make_sparse_tensor(values, indices, list(value.shape))
        )
        moved.append(init.name)
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return result, moved


def to_bitmask_storage(
    model: ModelProto, *, min_sparsity: float = 0.5, min_size: int = 1024
) -> tuple[ModelProto, list[str]]:
    """A copy of ``model`` with sparse-enough initializers stored as bitmask + non-zeros
    (:func:`onnxprune.io.bitmask.encode_bitmask`), and the names stored that way."""
    from onnxprune.io.bitmask import encode_bitmask

    return encode_bitmask(model, min_sparsity=min_sparsity, min_size=min_size)


STORAGE_FORMATS = {"coo": to_sparse_storage, "bitmask": to_bitmask_storage}


def to_dense_storage(model: ModelProto) -> ModelProto:
    """A copy of ``model`` whose sparse initializers (COO or bitmask) are dense initializers
    again."""
    from onnxprune.io.bitmask import decode_bitmask

    result = ModelProto()
    result.CopyFrom(model)
    graph = result.graph
    decode_bitmask(graph)
    for sparse in graph.sparse_initializer:
        values = numpy_helper.to_array(sparse.values).reshape(-1)
        dense = np.zeros(int(np.prod(sparse.dims)), dtype=values.dtype)
        dense[numpy_helper.to_array(sparse.indices).reshape(-1)] = values
        graph.initializer.append(
            numpy_helper.from_array(dense.reshape(tuple(sparse.dims)), sparse.values.name)
        )
    del graph.sparse_initializer[:]
    return result
