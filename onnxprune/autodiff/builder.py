"""``GradientBuilder``: what vector-Jacobian rules use to emit the backward graph.

It appends standard ONNX nodes and constants to a list, hands out unique tensor names, and knows
the forward graph: constants as numpy, tensor ranks and dims (``None`` for symbolic ones, such
as the batch), element types and the default-domain opset, so that helpers can pick the form
of an op that opset defines (``ReduceSum`` axes as attribute before 13, as input from 13).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from onnx import NodeProto, TensorProto, helper, numpy_helper

from onnxprune.analysis.graph_view import GraphView
from onnxprune.errors import InputError

Dims = tuple[int | None, ...]


class GradientBuilder:
    """Collects backward nodes and constants for one forward model."""

    def __init__(self, view: GraphView, prefix: str = "grad") -> None:
        self.view = view
        self.opset = int(view.opset)
        self.prefix = prefix
        self.nodes: list[NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._used: set[str] = set(view.producer) | set(view.consumers)
        self._used |= {init.name for init in view.model.graph.initializer}
        self._used |= {value.name for value in view.model.graph.input}
        self._elem: dict[str, int] = _element_types(view)
        self._scalars: dict[tuple, str] = {}

    # -- names and nodes -------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        """A tensor or node name not used anywhere in the model."""
        stem = f"{self.prefix}/{base}"
        name, index = stem, 0
        while name in self._used:
            index += 1
            name = f"{stem}_{index}"
        self._used.add(name)
        return name

    def node(self, op_type: str, inputs: Sequence[str], outputs: int = 1, **attrs) -> str:
        """Append one node; returns its first output (see :meth:`node_outputs` for more)."""
        return self.node_outputs(op_type, inputs, outputs, **attrs)[0]

    def node_outputs(
        self, op_type: str, inputs: Sequence[str], outputs: int = 1, **attrs
    ) -> list[str]:
        names = [self.fresh(f"{op_type}_out") for _ in range(outputs)]
        attrs = {key: value for key, value in attrs.items() if value is not None}
        self.nodes.append(
            helper.make_node(
                op_type, list(inputs), names, name=self.fresh(f"{op_type}_node"), **attrs
            )
        )
        return names

    def const(self, value: np.ndarray, base: str = "const") -> str:
        """A new initializer holding ``value``."""
        name = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def ints(self, values: Sequence[int]) -> str:
        """An int64 1-D constant (axes, shapes, pads), shared between equal requests."""
        key = ("ints", tuple(int(v) for v in values))
        if key not in self._scalars:
            self._scalars[key] = self.const(np.asarray(key[1], dtype=np.int64), "ints")
        return self._scalars[key]

    def scalar(self, value: float, like: str) -> str:
        """A 0-d constant of ``like``'s element type, shared between equal requests."""
        dtype = self.np_dtype(like)
        key = ("scalar", float(value), dtype.str)
        if key not in self._scalars:
            self._scalars[key] = self.const(np.asarray(value, dtype=dtype), "scalar")
        return self._scalars[key]

    # -- what is known about the forward graph ------------------------------------------------
    def elem_type(self, name: str) -> int:
        return self._elem.get(name, TensorProto.FLOAT)

    def np_dtype(self, name: str) -> np.dtype:
        return np.dtype(helper.tensor_dtype_to_np_dtype(self.elem_type(name)))

    def set_elem_type(self, name: str, elem: int) -> None:
        self._elem[name] = elem

    def dims(self, name: str, what: str = "tensor") -> Dims:
        """Dims of a forward tensor (None = symbolic); InputError when even the rank is unknown."""
        if self.view.is_constant(name):
            return tuple(int(d) for d in self.view.constant_shape(name))
        shape = self.view.shapes.get(name)
        if shape is None:
            raise InputError(
                f"gradient: the rank of {what} '{name}' is unknown after shape inference; "
                "give fixed input shapes (--input-shape)"
            )
        return tuple(shape)

    def rank(self, name: str) -> int:
        return len(self.dims(name))

    def static_dims(self, name: str, axes: Sequence[int], what: str) -> list[int]:
        """Dims of ``name`` on ``axes`` that must be known numbers (InputError otherwise)."""
        dims = self.dims(name, what)
        values = [dims[a] for a in axes]
        if any(v is None for v in values):
            raise InputError(
                f"gradient of {what}: dims {list(axes)} of '{name}' must be static, got {dims} "
                "(shape inference did not resolve them: the backward graph keeps the batch axis "
                "dynamic, and a shape computed from the batch size at run time stays unknown); "
                "a criterion or recovery that needs no gradient (obs, lsq) avoids it"
            )
        return [int(v) for v in values]  # type: ignore[arg-type]

    def constant(self, name: str, what: str) -> np.ndarray:
        """A constant input's value (InputError when it is computed at run time)."""
        value = self.view.constant(name) if name else None
        if value is None:
            raise InputError(f"gradient of {what}: input '{name}' must be a constant")
        return value

    # -- opset-aware helpers -----------------------------------------------------------------
    def reduce(self, op_type: str, x: str, axes: Sequence[int], keepdims: bool) -> str:
        """``ReduceSum``/``ReduceMean``/... over ``axes`` in the form the opset defines."""
        axes = [int(a) for a in axes]
        axes_as_input = self.opset >= (13 if op_type == "ReduceSum" else 18)
        if axes_as_input:
            return self.node(op_type, [x, self.ints(axes)], keepdims=int(keepdims))
        return self.node(op_type, [x], axes=axes, keepdims=int(keepdims))

    def reduce_sum(self, x: str, axes: Sequence[int], keepdims: bool = True) -> str:
        return self.reduce("ReduceSum", x, axes, keepdims) if len(axes) else x

    def unsqueeze(self, x: str, axes: Sequence[int]) -> str:
        if self.opset >= 13:
            return self.node("Unsqueeze", [x, self.ints(axes)])
        return self.node("Unsqueeze", [x], axes=[int(a) for a in axes])

    def shape_of(self, x: str) -> str:
        return self.node("Shape", [x])

    def reshape_like(self, g: str, x: str) -> str:
        """``g`` reshaped to the run-time shape of ``x``."""
        return self.node("Reshape", [g, self.shape_of(x)])

    def zeros_like(self, x: str) -> str:
        value = helper.make_tensor("value", self.elem_type(x), [1], [0])
        return self.node("ConstantOfShape", [self.shape_of(x)], value=value)

    def mul(self, a: str, b: str) -> str:
        return self.node("Mul", [a, b])

    def transpose(self, x: str, perm: Sequence[int]) -> str:
        perm = [int(p) for p in perm]
        if perm == list(range(len(perm))):
            return x
        return self.node("Transpose", [x], perm=perm)

    def slice(self, x: str, starts, ends, axes, steps=None) -> str:
        inputs = [x, self.ints(starts), self.ints(ends), self.ints(axes)]
        if steps is not None:
            inputs.append(self.ints(steps))
        return self.node("Slice", inputs)

    def unbroadcast(self, g: str, out_dims: Dims, target: str) -> str:
        """Sum ``g`` (dims ``out_dims``) over the axes numpy broadcasting expanded ``target``
        along, then reshape it to ``target``'s run-time shape.

        Axes before ``target``'s rank are summed; so is every axis where ``target`` has a
        static 1 (harmless when ``g`` has 1 there too). When a ``target`` dim is symbolic
        (a Reshape with -1 that inference could not resolve), whether it is broadcast is only
        known at run time: the axes where ``target`` is 1 and ``g`` is not are computed then
        (``NonZero``) and summed by one ``ReduceSum`` (``noop_with_empty_axes``).
        """
        target_dims = self.dims(target)
        lead = len(out_dims) - len(target_dims)
        if None in target_dims and self.opset >= 13:
            return self._unbroadcast_at_run_time(g, lead, target)
        axes = list(range(lead))
        for axis, dim in enumerate(target_dims):
            if dim == 1 and out_dims[lead + axis] != 1:
                axes.append(lead + axis)
        if not axes and tuple(out_dims) == tuple(target_dims) and None not in target_dims:
            return g
        summed = self.reduce_sum(g, axes, keepdims=True) if axes else g
        return self.reshape_like(summed, target)

    def _unbroadcast_at_run_time(self, g: str, lead: int, target: str) -> str:
        """:meth:`unbroadcast` with the broadcast axes found from the run-time shapes."""
        if lead:
            g = self.reduce_sum(g, list(range(lead)), keepdims=False)
        one = self.ints([1])
        g_shape, target_shape = self.shape_of(g), self.shape_of(target)
        expanded = self.node(
            "And",
            [
                self.node("Equal", [target_shape, one]),
                self.node("Not", [self.node("Equal", [g_shape, one])]),
            ],
        )
        axes = self.node("Reshape", [self.node("NonZero", [expanded]), self.ints([-1])])
        summed = self.node("ReduceSum", [g, axes], keepdims=1, noop_with_empty_axes=1)
        return self.reshape_like(summed, target)


def _element_types(view: GraphView) -> dict[str, int]:
    types: dict[str, int] = {}
    graph = view.model.graph
    for value in [*graph.input, *graph.value_info, *graph.output]:
        if value.type.HasField("tensor_type"):
            types[value.name] = value.type.tensor_type.elem_type
    for init in graph.initializer:
        types[init.name] = init.data_type
    return types


def string_attr(node, name: str, default: str) -> str:
    """A string attribute of a node view (decoded from bytes)."""
    value = node.attrs.get(name, default)
    return value.decode() if isinstance(value, bytes) else str(value)
