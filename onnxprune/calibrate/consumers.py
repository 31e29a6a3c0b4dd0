"""Consumer layers: the Conv/Gemm/MatMul nodes whose weight columns read pruned channels.

A *consumer* is a node with an ``in`` slice (see :class:`~onnxprune.analysis.context.SliceRequest`)
of one of the kinds recovery and the data-driven criteria understand:

* ``Conv`` with ``group == 1``: features = input channels (axis 1 of the input), weight matrix
  ``W.reshape(M, C·∏k)`` whose columns are (channel, kernel offset) pairs;
* ``Gemm`` with ``transA == 0`` and a constant B: features = columns of A, weight matrix
  ``alpha·B`` (transposed so rows are outputs);
* ``MatMul`` with a constant 2-D right operand: features = last axis of the left operand,
  weight matrix ``Wᵀ``.

Everything else that reads pruned channels (grouped convs, ConvTranspose, activation MatMuls)
is left out: criteria fall back to weight norms there and recovery leaves it as pruned.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from onnx import ModelProto

from onnxprune.analysis import ChannelAnalysis
from onnxprune.analysis.context import ROLE_IN
from onnxprune.analysis.graph_view import GraphView, NodeView
from onnxprune.calibrate.im2col import ConvGeometry, conv_rows, matrix_rows


@dataclass
class ConsumerLayer:
    """One supported consumer of prunable channels.

    Attributes:
        node: node name (kept by ``apply_removal``, so it names the same node when pruned).
        op_type: ``Conv``, ``Gemm`` or ``MatMul``.
        input: name of the dynamic input read (features along ``feature_axis``).
        weight: initializer name of the weight.
        in_axis: weight axis indexed by input features.
        labels: atom label of every input feature (-1 = not prunable).
        geometry: kernel geometry for convs, None otherwise.
        elem_type: ONNX element type of the weight (and so of the input).
    """

    node: str
    op_type: str
    input: str
    weight: str
    in_axis: int
    labels: np.ndarray
    geometry: ConvGeometry | None
    elem_type: int
    alpha: float = 1.0

    @property
    def is_conv(self) -> bool:
        return self.geometry is not None

    @property
    def kernel_size(self) -> int:
        """Weight-matrix columns per input feature (∏k for convs, 1 otherwise)."""
        return self.geometry.size if self.geometry is not None else 1

    @property
    def feature_axis(self) -> int:
        """Axis of the input holding features: 1 for convs, -1 otherwise."""
        return 1 if self.is_conv else -1

    @property
    def key(self) -> tuple:
        """Consumers with equal keys see identical im2col rows (same input and geometry)."""
        return (self.input, self.geometry)

    def weight_matrix(self, weight: np.ndarray) -> np.ndarray:
        """The (outputs, columns) matrix W with y = W · row + b, in float64."""
        w = weight.astype(np.float64)
        if self.op_type == "Conv":
            return w.reshape(w.shape[0], -1)
        matrix = w.T if self.in_axis == 0 else w
        return matrix * self.alpha

    def weight_from_matrix(self, matrix: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Inverse of :meth:`weight_matrix` for a weight of ``shape``."""
        if self.op_type == "Conv":
            return matrix.reshape(shape)
        matrix = matrix / self.alpha
        return matrix.T if self.in_axis == 0 else matrix

    def position_count(self, shape: tuple[int, ...]) -> int:
        """Rows per sample of this layer's input of ``shape``: output positions for convs,
        the product of the middle axes otherwise."""
        if self.geometry is not None:
            return int(np.prod(self.geometry.output_spatial(tuple(shape[2:]))))
        return int(np.prod(shape[1:-1]))

    def rows(self, x: np.ndarray, chosen: np.ndarray) -> Iterator[np.ndarray]:
        """float64 row chunks (im2col for convs) of input ``x`` at positions ``chosen`` (N, P)."""
        if self.geometry is not None:
            return conv_rows(x, self.geometry, chosen)
        return matrix_rows(x, chosen)

    def columns(self, features: np.ndarray) -> np.ndarray:
        """Weight-matrix column indices of the given input features."""
        k = self.kernel_size
        features = np.asarray(features, dtype=np.int64)
        return (features[:, None] * k + np.arange(k)[None, :]).reshape(-1)


def _elem_type(model: ModelProto, name: str) -> int:
    for init in model.graph.initializer:
        if init.name == name:
            return int(init.data_type)
    return 1


def describe_node(
    node: NodeView, view: GraphView, weight: str, axis: int, labels
) -> ConsumerLayer | None:
    """The :class:`ConsumerLayer` for ``node`` reading features through ``weight[axis]``,
    or None when the node is not a supported consumer."""
    shape = view.constant_shape(weight)
    if shape is None:
        return None
    elem = _elem_type(view.model, weight)
    if node.op_type == "Conv":
        if int(node.attrs.get("group", 1)) != 1 or axis != 1 or node.input(1) != weight:
            return None
        geometry = ConvGeometry.from_attrs(node.attrs, tuple(shape[2:]))
        return ConsumerLayer(node.name, "Conv", node.input(0), weight, 1, labels, geometry, elem)
    if node.op_type == "Gemm":
        if int(node.attrs.get("transA", 0)) or node.input(1) != weight:
            return None
        expected = 1 if int(node.attrs.get("transB", 0)) else 0
        if axis != expected:
            return None
        alpha = float(node.attrs.get("alpha", 1.0))
        return ConsumerLayer(
            node.name, "Gemm", node.input(0), weight, axis, labels, None, elem, alpha
        )
    if node.op_type == "MatMul":
        if node.input(1) != weight or len(shape) != 2 or axis != 0:
            return None
        if view.is_constant(node.input(0)):
            return None
        return ConsumerLayer(node.name, "MatMul", node.input(0), weight, 0, labels, None, elem)
    return None


def consumer_layers(analysis: ChannelAnalysis) -> list[ConsumerLayer]:
    """Supported consumers of ``analysis`` in graph order (one per node)."""
    view = GraphView(analysis.model)
    nodes = {node.name: node for node in view.nodes}
    found: dict[str, ConsumerLayer] = {}
    for request in analysis.slices:
        if request.role != ROLE_IN or request.node in found:
            continue
        node = nodes.get(request.node)
        if node is None:
            continue
        layer = describe_node(node, view, request.constant, request.axis, request.labels)
        if (
            layer is not None
            and len(layer.labels) == view.constant_shape(layer.weight)[layer.in_axis]
        ):
            found[layer.node] = layer
    order = {node.name: node.index for node in view.nodes}
    return sorted(found.values(), key=lambda layer: order[layer.node])
