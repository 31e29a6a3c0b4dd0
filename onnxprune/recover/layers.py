"""Every linear layer with constant weights of a model, for whole-network reconstruction.

A :class:`WeightLayer` is a ``Conv`` (any ``group``), a ``Gemm`` (``transA == 0``, constant B)
or a ``MatMul`` with a constant 2-D right operand, whose weight is an initializer. Its
``layer`` (a :class:`~onnxprune.calibrate.ConsumerLayer`) gives the im2col rows and the
(outputs, columns) weight matrix; a conv with ``groups`` > 1 splits both into ``groups`` equal
blocks: outputs ``[g·M/G, (g+1)·M/G)`` read columns ``[g·d, (g+1)·d)`` of the row, d = C/G·∏k,
so each group (each channel of a depthwise conv) is refitted on its own.

``output_channels(analysis, node, count)`` maps the pruned layer's output channels to the
original's: the kept positions of the slice requests of the node's weight along its output axis
(all of them when nothing was sliced). The rewrite keeps node and tensor names, so the original
tensor of a pruned tensor is the tensor of the same name in ``analysis.model``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from onnx import ModelProto

from onnxprune.analysis import ChannelAnalysis
from onnxprune.analysis.graph_view import GraphView, NodeView
from onnxprune.calibrate import ConsumerLayer
from onnxprune.calibrate.im2col import ConvGeometry


@dataclass
class WeightLayer:
    """One refittable layer of a (pruned) model; see module docstring."""

    layer: ConsumerLayer
    output: str  # the node's output tensor
    groups: int = 1

    @property
    def node(self) -> str:
        return self.layer.node

    @property
    def output_axis(self) -> int:
        """Axis of the output tensor holding output channels."""
        return 1 if self.layer.is_conv else -1


def _initializer_types(model: ModelProto) -> dict[str, int]:
    return {init.name: int(init.data_type) for init in model.graph.initializer}


def describe_weight_layer(node: NodeView, view: GraphView, types: dict[str, int]):
    """The :class:`WeightLayer` of ``node``, or None when it is not a refittable layer."""
    weight = node.input(1)
    if not weight or weight not in types or view.is_constant(node.input(0)):
        return None
    shape = view.constant_shape(weight)
    if shape is None:
        return None
    elem = types[weight]
    if node.op_type == "Conv" and len(shape) >= 3:
        groups = int(node.attrs.get("group", 1))
        if groups < 1 or shape[0] % groups:
            return None
        geometry = ConvGeometry.from_attrs(node.attrs, tuple(shape[2:]))
        labels = np.full(shape[1] * groups, -1)
        layer = ConsumerLayer(node.name, "Conv", node.input(0), weight, 1, labels, geometry, elem)
        return WeightLayer(layer, node.outputs[0], groups)
    if node.op_type == "Gemm" and len(shape) == 2 and not int(node.attrs.get("transA", 0)):
        axis = 1 if int(node.attrs.get("transB", 0)) else 0
        alpha = float(node.attrs.get("alpha", 1.0))
        if alpha == 0:
            return None
        labels = np.full(shape[axis], -1)
        layer = ConsumerLayer(
            node.name, "Gemm", node.input(0), weight, axis, labels, None, elem, alpha
        )
        return WeightLayer(layer, node.outputs[0])
    if node.op_type == "MatMul" and len(shape) == 2:
        labels = np.full(shape[0], -1)
        layer = ConsumerLayer(node.name, "MatMul", node.input(0), weight, 0, labels, None, elem)
        return WeightLayer(layer, node.outputs[0])
    return None


def weight_layers(model: ModelProto) -> list[WeightLayer]:
    """Every refittable layer of ``model`` in graph order."""
    view = GraphView(model)
    types = _initializer_types(model)
    found = (describe_weight_layer(node, view, types) for node in view.nodes)
    return [layer for layer in found if layer is not None]


def output_channels(
    analysis: ChannelAnalysis,
    keep: Callable[[np.ndarray], np.ndarray],
    original: WeightLayer,
    total: int,
    count: int,
) -> np.ndarray | None:
    """Indices of the ``total`` output channels of ``original`` (a layer of
    ``analysis.model``) that its pruned version keeps (``count`` of them; ``keep`` =
    ``analysis.keep_fn(removed)``), or None when they cannot be told (the layer is then left
    as it is)."""
    if total == count:
        return np.arange(total)
    axis = 0 if original.layer.is_conv else 1 - original.layer.in_axis
    mask = np.ones(total, dtype=bool)
    for request in analysis.slices:
        if request.constant == original.layer.weight and request.axis == axis:
            mask &= keep(request.labels)
    kept = np.flatnonzero(mask)
    return kept if len(kept) == count else None
