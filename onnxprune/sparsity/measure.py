"""Per-layer weight sparsity of any model (for ``inspect`` and reports).

For every Conv/ConvTranspose/Gemm/MatMul with a constant weight: its size, its zeros, and
whether it holds N:M (default 2:4) along the reduction axis in TensorRT's layout (None when the
reduction axis does not split into groups of M).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from onnx import ModelProto, numpy_helper

from onnxprune.sparsity.patterns import holds_nm
from onnxprune.sparsity.targets import find_layers, fold_computed_weights


@dataclass(frozen=True)
class LayerSparsity:
    node: str
    op_type: str
    weight: str
    size: int
    zeros: int
    holds_nm: bool | None

    @property
    def sparsity(self) -> float:
        return self.zeros / self.size if self.size else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "sparsity": self.sparsity}


def weight_sparsity(model: ModelProto, *, n: int = 2, m: int = 4) -> list[LayerSparsity]:
    """One row per weight layer, in graph order (sparse initializers are read too; weights
    computed from constants, as an export without constant folding writes them, are read
    folded: :func:`~onnxprune.sparsity.targets.fold_computed_weights`)."""
    model, _ = fold_computed_weights(model)
    arrays = {init.name: init for init in model.graph.initializer}
    sparse = {s.values.name: s for s in model.graph.sparse_initializer}
    probe = ModelProto()
    probe.CopyFrom(model)
    for name, tensor in sparse.items():  # shapes only: let find_layers see them
        placeholder = numpy_helper.from_array(np.zeros(0, dtype=np.float32), name)
        del placeholder.dims[:]
        placeholder.dims.extend(tensor.dims)
        probe.graph.initializer.append(placeholder)
    targets = find_layers(probe, min_size=0, skip_depthwise=False)
    rows = []
    for layer in targets.layers:
        if layer.weight in arrays:
            value = numpy_helper.to_array(arrays[layer.weight])
            zeros = int(value.size - np.count_nonzero(value))
        else:
            tensor = sparse[layer.weight]
            value = np.zeros(int(np.prod(tensor.dims)), dtype=np.float32)
            value[numpy_helper.to_array(tensor.indices).reshape(-1)] = numpy_helper.to_array(
                tensor.values
            ).reshape(-1)
            value = value.reshape(tuple(tensor.dims))
            zeros = int(value.size - np.count_nonzero(value))
        nm = None
        if layer.allows_nm(m):
            nm = holds_nm(layer.to_matrix(value)[:, layer.nm_order()], n, m)
        rows.append(LayerSparsity(layer.node, layer.op_type, layer.weight, layer.size, zeros, nm))
    return rows
