"""Registry of the expansions of ONNX Runtime's fused ops, and the helpers they share.

An expansion is ``fn(node, graph, ctx, names) -> bool``: it rewrites one fused
onnx-graphsurgeon node into the standard ops it computes (same output names) and returns True,
or leaves the graph untouched and returns False when the node's attributes are outside what it
states. Expansions are registered by (domain, op type) in ``EXPANSIONS``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.passes._graph import NameGen
from onnxprune.passes.context import PassContext

MICROSOFT = "com.microsoft"
Expansion = Callable[[gs.Node, gs.Graph, PassContext, NameGen], bool]
EXPANSIONS: dict[tuple[str, str], Expansion] = {}


def register_expansion(domain: str, op_type: str) -> Callable[[Expansion], Expansion]:
    """Decorator registering the expansion of ``domain``::``op_type`` nodes."""

    def decorate(fn: Expansion) -> Expansion:
        EXPANSIONS[(domain, op_type)] = fn
        return fn

    return decorate


def rewire(tensors, new) -> None:
    """Replace the contents of a node's synchronized input/output list (no slice assignment)."""
    new = list(new)
    tensors.clear()
    tensors.extend(new)


def text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def float_dtype(*tensors):
    """The first known float dtype among ``tensors`` (graphsurgeon tensors or numpy arrays;
    float32 when none is known), for new constants: a float16 model's fused node often has no
    typed output, but its weights do."""
    for tensor in tensors:
        dtype = getattr(tensor, "dtype", None)
        if dtype is None:  # np.dtype(None) would be float64
            continue
        try:
            if np.issubdtype(np.dtype(dtype), np.floating):
                return np.dtype(dtype)
        except TypeError:
            continue
    return np.dtype(np.float32)


class Emitter:
    """Appends standard nodes computing into fresh tensors named after ``base``."""

    def __init__(
        self, graph: gs.Graph, names: NameGen, base: gs.Tensor, opset: int, like=()
    ) -> None:
        self.graph, self.names, self.base, self.opset = graph, names, base, opset
        self.dtype = float_dtype(base, *like)  # of new float constants

    def op(self, op: str, *inputs: gs.Tensor, out: gs.Tensor | None = None, **attrs) -> gs.Tensor:
        if out is None:
            out = gs.Variable(self.names(f"{self.base.name}_{op.lower()}"), dtype=self.base.dtype)
        node = gs.Node(op, self.names(f"{out.name}_node"), attrs=attrs, inputs=list(inputs),
                       outputs=[out])  # fmt: skip
        self.graph.nodes.append(node)
        return out

    def scalar(self, value: float) -> gs.Constant:
        value = np.array(value, dtype=self.dtype)
        return gs.Constant(self.names(f"{self.base.name}_c"), value)

    def mean_last(self, x: gs.Tensor) -> gs.Tensor:
        """ReduceMean over the last axis, keepdims (axes as attribute before opset 18)."""
        if self.opset >= 18:
            axes = gs.Constant(self.names(f"{self.base.name}_axes"), np.array([-1], np.int64))
            return self.op("ReduceMean", x, axes, keepdims=1)
        return self.op("ReduceMean", x, axes=[-1], keepdims=1)


def take_over(node: gs.Node) -> gs.Tensor:
    """Detach ``node`` and return its (only used) first output, to be produced anew."""
    y = node.outputs[0]
    node.inputs.clear()
    node.outputs.clear()
    return y


def is_read(tensor: gs.Tensor | None, graph: gs.Graph) -> bool:
    """Whether ``tensor`` exists and a node or the graph's outputs read it."""
    if tensor is None or tensor.is_empty():
        return False
    return bool(tensor.outputs) or any(out is tensor for out in graph.outputs)


def usable(node: gs.Node, graph: gs.Graph, count: int, used_outputs: int = 1) -> bool:
    """``node`` has ``count`` present inputs at least, and no output after the first
    ``used_outputs`` is read by a node or is a graph output."""
    if len(node.inputs) < count or any(t.is_empty() for t in node.inputs[:count]):
        return False
    return not any(is_read(t, graph) for t in node.outputs[used_outputs:])
