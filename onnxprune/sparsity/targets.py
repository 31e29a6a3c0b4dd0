"""Sparsifiable layers: constant weights of Conv, ConvTranspose, Gemm and MatMul.

Every layer is seen as a *weight matrix* ``W`` of shape (rows, columns) whose rows are
independent outputs and whose columns are the reduction (the inputs one output sums over):

* ``Conv`` (plain, grouped, depthwise), weight (K, C/g, *k): rows = K, columns = (c, j) for the
  C/g input channels of the row's group and every kernel offset j, in C-order (c-major, the
  im2col order of :mod:`onnxprune.calibrate.im2col`).
* ``ConvTranspose``, weight (C, K/g, *k): an output (o, j) sums over the C input channels of its
  group, so rows = (o, j) and columns = c: ``W = weight.reshape(C, -1).T``.
* ``Gemm`` (``transA = 0``), constant B: rows = outputs, columns = inputs; ``B.T`` when
  ``transB = 0``, ``B`` itself when ``transB = 1``.
* ``MatMul`` with a constant 2-D right operand B (K, N): ``W = B.T``; with a constant 2-D left
  operand A (M, K) (``y = A·X``): ``W = A``, the reduction runs along axis -2 of X.

The *reduction axis* of N:M sparsity is the channel part of the columns (C for convs, the input
dimension otherwise); ``inner`` is the kernel size (1 for matrices). :meth:`SparseLayer.nm_order`
permutes the columns so that every run of M consecutive columns is one N:M group in the layout
TensorRT reads (Conv KCRS: M consecutive c at the same k, r, s).

:func:`find_layers` classifies every candidate node as eligible or skipped with a reason:
``ignored`` (matched ``ignore``; left out of the whole-model count too), ``protected`` (matched
``protected``; stays dense but counts), ``depthwise``, ``small`` (fewer than ``min_size``
weights), ``shared`` (a weight read by several nodes), ``unsupported`` (not float, not 2-D, ...).
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from onnx import AttributeProto, ModelProto, TensorProto

from onnxprune.analysis.graph_view import GraphView, NodeView, ensure_node_names
from onnxprune.calibrate.im2col import ConvGeometry

#: Default minimum number of weights of a sparsified layer.
DEFAULT_MIN_SIZE = 1024
FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}
WEIGHT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
# Random ops have no fixed value; a Cast (float16 weights cast to float32) would be folded into
# wider stored weights, so the file would grow: those layers stay unsupported.
_NOT_FOLDED = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
               "Multinomial", "Bernoulli", "Cast", "CastLike"}  # fmt: skip
_SUBGRAPH_TYPES = (AttributeProto.GRAPH, AttributeProto.GRAPHS)


@dataclass(frozen=True)
class SparseLayer:
    """One sparsifiable weight and how it maps to its weight matrix (see module docstring).

    Attributes:
        node: node name; op_type: its op type.
        weight: initializer name; shape: its shape.
        input: the dynamic input the layer reads (the data of Wanda/OBS statistics).
        rows, columns: weight-matrix shape.
        reduction: input channels per output (C/g for convs, the input dim otherwise).
        inner: kernel size (columns per reduction channel; 1 for matrices).
        groups: conv groups (row r reads input channels of group r // (rows/groups)).
        geometry: kernel geometry of a Conv, else None.
        feature_axis: axis of ``input`` holding the reduction features (1 for convs, -1 for
            Gemm/MatMul-right, -2 for MatMul-left).
    """

    node: str
    op_type: str
    weight: str
    shape: tuple[int, ...]
    input: str
    rows: int
    columns: int
    reduction: int
    inner: int
    groups: int = 1
    geometry: ConvGeometry | None = None
    feature_axis: int = -1
    trans_b: bool = False
    left_constant: bool = False

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def is_depthwise(self) -> bool:
        return self.op_type == "Conv" and self.reduction == 1 and self.groups > 1

    def to_matrix(self, weight: np.ndarray) -> np.ndarray:
        """The (rows, columns) weight matrix of ``weight`` (a view or copy, same dtype)."""
        if self.op_type == "Conv":
            return weight.reshape(self.rows, self.columns)
        if self.op_type == "ConvTranspose":
            return weight.reshape(self.shape[0], -1).T
        if self.op_type == "Gemm":
            return weight if self.trans_b else weight.T
        return weight if self.left_constant else weight.T

    def from_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_matrix`: the weight tensor of ``matrix``."""
        if self.op_type == "Conv":
            return matrix.reshape(self.shape)
        if self.op_type == "ConvTranspose":
            return matrix.T.reshape(self.shape)
        if self.op_type == "Gemm":
            return matrix if self.trans_b else matrix.T
        return matrix if self.left_constant else matrix.T

    def nm_order(self) -> np.ndarray:
        """Column permutation putting each N:M group (M consecutive reduction channels at one
        kernel offset) on consecutive positions: position p ↔ column ``order[p]``."""
        return np.arange(self.columns).reshape(self.reduction, self.inner).T.reshape(-1)

    def allows_nm(self, m: int) -> bool:
        """True when the reduction axis splits into whole groups of ``m``."""
        return self.reduction >= m and self.reduction % m == 0

    def row_groups(self) -> np.ndarray:
        """Conv group of every row (zeros for matrices)."""
        if self.op_type != "Conv" or self.groups == 1:
            return np.zeros(self.rows, dtype=np.int64)
        return np.arange(self.rows) // (self.rows // self.groups)


@dataclass
class TargetSet:
    """Eligible layers, skipped ones with their reason, and the whole-model weight count."""

    layers: list[SparseLayer]
    skipped: dict[str, str] = field(default_factory=dict)  # node -> reason
    skipped_sizes: dict[str, int] = field(default_factory=dict)  # node -> weights
    total_weights: int = 0  # weights of every counted layer (all but `ignored`)

    @property
    def eligible_weights(self) -> int:
        return sum(layer.size for layer in self.layers)


QUANTIZED_WEIGHT = (
    "quantized weight (DequantizeLinear of an integer constant): sparsify the float model, "
    "then quantize it"
)


def _dequantized_operand(node: NodeView, view: GraphView) -> bool:
    """Whether a weight operand of ``node`` is computed by a DequantizeLinear (QDQ models)."""
    operands = (1,) if node.op_type in ("Conv", "ConvTranspose", "Gemm") else (0, 1)
    for position in operands:
        producer = view.producer.get(node.input(position))
        if producer is not None and producer.op_type == "DequantizeLinear":
            return True
    return False


def _describe(node: NodeView, view: GraphView) -> tuple[SparseLayer | None, str]:
    """The layer for ``node`` or (None, reason)."""
    if _dequantized_operand(node, view):
        return None, QUANTIZED_WEIGHT
    if node.op_type == "Conv" or node.op_type == "ConvTranspose":
        weight = node.input(1)
        shape = view.constant_shape(weight)
        if shape is None or len(shape) < 3:
            return None, "weight is not a constant of rank >= 3"
        group = int(node.attrs.get("group", 1))
        kernel = tuple(int(k) for k in shape[2:])
        inner = int(np.prod(kernel))
        if node.op_type == "Conv":
            geometry = ConvGeometry.from_attrs(node.attrs, kernel)
            layer = SparseLayer(
                node.name, "Conv", weight, shape, node.input(0), shape[0], shape[1] * inner,
                shape[1], inner, group, geometry, 1,
            )  # fmt: skip
            return layer, ""
        rows = int(np.prod(shape[1:]))
        layer = SparseLayer(
            node.name, "ConvTranspose", weight, shape, node.input(0), rows, shape[0],
            shape[0], 1, group, None, 1,
        )  # fmt: skip
        return layer, ""
    if node.op_type == "Gemm":
        weight = node.input(1)
        shape = view.constant_shape(weight)
        if shape is None or len(shape) != 2:
            return None, "B is not a constant matrix"
        if int(node.attrs.get("transA", 0)):
            return None, "transA = 1"
        trans_b = bool(int(node.attrs.get("transB", 0)))
        out, red = (shape[0], shape[1]) if trans_b else (shape[1], shape[0])
        layer = SparseLayer(
            node.name, "Gemm", weight, shape, node.input(0), out, red, red, 1, trans_b=trans_b
        )
        return layer, ""
    right, left = node.input(1), node.input(0)
    if view.is_constant(right) and not view.is_constant(left):
        shape = view.constant_shape(right)
        if len(shape) != 2:
            return None, "constant operand is not 2-D"
        layer = SparseLayer(
            node.name, "MatMul", right, shape, left, shape[1], shape[0], shape[0], 1
        )
        return layer, ""
    if view.is_constant(left) and not view.is_constant(right):
        shape = view.constant_shape(left)
        if len(shape) != 2:
            return None, "constant operand is not 2-D"
        layer = SparseLayer(
            node.name, "MatMul", left, shape, right, shape[0], shape[1], shape[1], 1,
            feature_axis=-2, left_constant=True,
        )  # fmt: skip
        return layer, ""
    return None, "no constant operand"


def computed_weights(model: ModelProto) -> list[str]:
    """Names of the Conv/ConvTranspose/Gemm/MatMul nodes whose weight operand is *computed* from
    constants in the graph rather than stored (an export without constant folding writes
    ``MatMul(x, Transpose(W))``): folding those constants gives the layer a weight to sparsify.

    A tensor is constant-computed when it is not an initializer and its producer is a node of
    the main graph without subgraphs, not random and not a ``Cast`` (folding a float16
    weight's cast would store it wider), whose every input is an initializer or
    constant-computed. Constant nodes count as initializers
    (:func:`onnxprune.io.normalize_model` has turned them into initializers before this runs).
    """
    stored = {init.name for init in model.graph.initializer}
    computed: set[str] = set()
    for node in model.graph.node:  # topological order
        if node.op_type in _NOT_FOLDED or any(a.type in _SUBGRAPH_TYPES for a in node.attribute):
            continue
        inputs = [name for name in node.input if name]
        if inputs and all(name in stored or name in computed for name in inputs):
            computed.update(name for name in node.output if name)
    names = []
    for node in model.graph.node:
        if node.op_type not in WEIGHT_OPS or node.domain not in ("", "ai.onnx"):
            continue
        operands = list(node.input[:2]) if node.op_type == "MatMul" else list(node.input[1:2])
        if any(name in computed for name in operands):
            names.append(node.name)
    return names


#: The passes that turn weights computed from constants into stored ones (nothing else changes).
FOLD_PASSES = ("constants_to_initializers", "fold_constants")


def fold_computed_weights(model: ModelProto) -> tuple[ModelProto, list[str]]:
    """``model`` with the constants behind :func:`computed_weights` folded into initializers
    (the same function; ``model`` itself is not modified), and those layers' node names. A
    model without such layers, or with sparse initializers (not folded), comes back as it is.
    """
    from onnxprune.passes import preprocess

    computed = computed_weights(model)
    if not computed or model.graph.sparse_initializer:
        return model, []
    return preprocess(model, passes=FOLD_PASSES).model, computed


def _matches(layer_node: str, weight: str, patterns: tuple[str, ...] | list[str]) -> bool:
    return any(fnmatch.fnmatch(layer_node, p) or fnmatch.fnmatch(weight, p) for p in patterns)


def find_layers(
    model: ModelProto,
    *,
    ignore: tuple[str, ...] | list[str] = (),
    protected: tuple[str, ...] | list[str] = (),
    min_size: int = DEFAULT_MIN_SIZE,
    skip_depthwise: bool = True,
) -> TargetSet:
    """Classify every Conv/ConvTranspose/Gemm/MatMul of ``model`` (see module docstring).

    Globs match the node name or the weight's initializer name. ``model`` must have its
    constant weights as initializers (:func:`onnxprune.io.normalize_model`); node names are
    made unique in place when missing.
    """
    ensure_node_names(model)
    view = GraphView(model)
    types = {init.name: init.data_type for init in model.graph.initializer}
    readers = Counter(name for node in model.graph.node for name in set(node.input) if name)
    targets = TargetSet(layers=[])
    counted: set[str] = set()
    for node in view.nodes:
        if node.op_type not in WEIGHT_OPS or node.domain not in ("", "ai.onnx"):
            continue
        layer, reason = _describe(node, view)
        if layer is None:
            targets.skipped[node.name] = f"unsupported: {reason}"
            targets.skipped_sizes[node.name] = 0
            continue
        if _matches(layer.node, layer.weight, ignore):
            targets.skipped[layer.node] = "ignored"
            targets.skipped_sizes[layer.node] = layer.size
            continue
        if layer.weight not in counted:
            counted.add(layer.weight)
            targets.total_weights += layer.size
        reason = ""
        if types.get(layer.weight) not in FLOAT_TYPES:
            reason = "unsupported: weight is not floating point"
        elif readers[layer.weight] > 1:
            reason = f"shared: weight read by {readers[layer.weight]} nodes"
        elif _matches(layer.node, layer.weight, protected):
            reason = "protected"
        elif skip_depthwise and layer.is_depthwise:
            reason = "depthwise"
        elif layer.size < min_size:
            reason = f"small: {layer.size} < {min_size} weights"
        if reason:
            targets.skipped[layer.node] = reason
            targets.skipped_sizes[layer.node] = layer.size
        else:
            targets.layers.append(layer)
    return targets
