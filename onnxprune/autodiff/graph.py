"""``build_gradient_model``: one ONNX model that returns a scalar loss and its gradients.

The forward graph (the model plus the loss nodes) is kept as it is; the backward nodes are
appended. Reverse-mode accumulation over the forward nodes in reverse topological order: a node
is differentiated when a gradient reaches one of its outputs and one of its differentiable
inputs depends on a ``wrt`` tensor; its vector-Jacobian rule (:mod:`~onnxprune.autodiff.rules`,
registered by op type and opset) turns the output gradients into input gradients; several
contributions to one tensor are added with ``Sum``. Only floating tensors carry gradients
(shape computations stop the path). A node on the path with no rule raises ``InputError``
naming the op and the node: the model is never differentiated approximately.

Outputs of the returned model: the loss, then ``gradient_name(w)`` for every ``w`` in ``wrt``
(zeros when no path joins ``w`` to the loss). Initializers in ``wrt`` are also declared as graph
inputs, so one session serves new values of them (ONNX initializers are overridable defaults).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import onnx
from onnx import ModelProto, TensorProto, helper

from onnxprune.analysis.graph_view import GraphView, ensure_node_names
from onnxprune.autodiff import rules  # noqa: F401 - registers the rules
from onnxprune.autodiff.builder import GradientBuilder
from onnxprune.autodiff.losses import Loss
from onnxprune.autodiff.registry import lookup_vjp
from onnxprune.errors import InputError
from onnxprune.graph.shapes import infer_shapes

FLOAT_TYPES = {
    TensorProto.FLOAT,
    TensorProto.DOUBLE,
    TensorProto.FLOAT16,
    TensorProto.BFLOAT16,
}


def gradient_name(tensor: str) -> str:
    """Name of the output holding ∂loss/∂``tensor``."""
    return f"grad/{tensor}"


def with_loss(model: ModelProto, loss: Loss) -> ModelProto:
    """A copy of ``model`` with the loss nodes, inputs and constants appended and the loss as
    its only output (shapes inferred)."""
    merged = ModelProto()
    merged.CopyFrom(model)
    ensure_node_names(merged)
    graph = merged.graph
    graph.node.extend(loss.nodes)
    graph.input.extend(loss.inputs)
    graph.initializer.extend(loss.initializers)
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(loss.output, loss.elem_type, []))
    return infer_shapes(merged)


def _differentiable_inputs(node, opset: int) -> list[int]:
    entry = lookup_vjp(node.op_type, node.domain, opset)
    positions = range(len(node.inputs))
    if entry is not None and entry.inputs is not None:
        positions = [p for p in entry.inputs if p < len(node.inputs)]
    return [p for p in positions if node.inputs[p]]


def _is_float(b: GradientBuilder, name: str) -> bool:
    return b.elem_type(name) in FLOAT_TYPES


def _dependent_tensors(view: GraphView, b: GradientBuilder, wrt: Iterable[str]) -> set[str]:
    """Floating tensors that depend on a ``wrt`` tensor through differentiable inputs."""
    live = set(wrt)
    for node in view.nodes:
        if any(node.inputs[p] in live for p in _differentiable_inputs(node, view.opset)):
            live.update(out for out in node.outputs if out and _is_float(b, out))
    return live


def reachable(model: ModelProto, loss: Loss, candidates: Sequence[str]) -> list[str]:
    """The ``candidates`` (tensor names) through which the loss depends differentiably."""
    merged = with_loss(model, loss)
    view = GraphView(merged)
    b = GradientBuilder(view)
    found = []
    for name in candidates:
        if loss.output in _dependent_tensors(view, b, [name]):
            found.append(name)
    return found


def build_loss_model(model: ModelProto, loss: Loss, feedable: Sequence[str] = ()) -> ModelProto:
    """``model`` + ``loss`` with the loss as the only output and the initializers in
    ``feedable`` declared as graph inputs (for evaluating new parameter values)."""
    merged = with_loss(model, loss)
    declared = {value.name for value in merged.graph.input}
    initializers = {init.name: init for init in merged.graph.initializer}
    for name in feedable:
        init = initializers.get(name)
        if init is not None and name not in declared:
            merged.graph.input.append(
                helper.make_tensor_value_info(name, init.data_type, list(init.dims))
            )
    return merged


def build_gradient_model(
    model: ModelProto,
    loss: Loss,
    wrt: Sequence[str],
    *,
    keep_outputs: Sequence[str] = (),
) -> ModelProto:
    """``model`` + ``loss`` + the backward graph; outputs: loss, ∂loss/∂w for w in ``wrt``
    (see the module docstring), then ``keep_outputs`` (forward tensors to return as well)."""
    merged = with_loss(model, loss)
    view = GraphView(merged)
    b = GradientBuilder(view)
    known = set(view.producer) | {v.name for v in merged.graph.input}
    known |= {init.name for init in merged.graph.initializer}
    unknown = [name for name in wrt if name not in known]
    if unknown:
        raise InputError(f"gradient requested for unknown tensor(s): {', '.join(unknown)}")
    live = _dependent_tensors(view, b, wrt)
    contributions: dict[str, list[str]] = defaultdict(list)
    contributions[loss.output].append(b.scalar(1.0, loss.output))

    def total(name: str) -> str | None:
        parts = contributions.get(name)
        if not parts:
            return None
        if len(parts) > 1:
            contributions[name] = [b.node("Sum", parts)]
        return contributions[name][0]

    for node in reversed(view.nodes):
        positions = [p for p in _differentiable_inputs(node, view.opset) if node.inputs[p] in live]
        if not positions:
            continue
        grads = [total(out) if out else None for out in node.outputs]
        if all(g is None for g in grads):
            continue
        entry = lookup_vjp(node.op_type, node.domain, view.opset)
        if entry is None:
            domain = f" (domain '{node.domain}')" if node.domain else ""
            raise InputError(
                f"no gradient rule for op {node.op_type}{domain} at opset {view.opset} "
                f"(node '{node.name}'); gradient-based methods cannot run on this model"
            )
        needed = [p in positions for p in range(len(node.inputs))]
        input_grads = entry.rule(node, b, grads, needed)
        for position in positions:
            grad = input_grads[position]
            if grad is not None:
                contributions[node.inputs[position]].append(grad)

    outputs = [helper.make_tensor_value_info(loss.output, loss.elem_type, [])]
    for name in wrt:
        grad = total(name) or b.zeros_like(name)
        out = gradient_name(name)
        b.nodes.append(helper.make_node("Identity", [grad], [out], name=b.fresh("out")))
        outputs.append(helper.make_tensor_value_info(out, b.elem_type(name), _dims(b, name)))
    for name in keep_outputs:
        outputs.append(helper.make_tensor_value_info(name, b.elem_type(name), _dims(b, name)))
    return _assemble(merged, b, outputs, wrt)


def _dims(b: GradientBuilder, name: str) -> list:
    dims = b.view.shapes.get(name) if not b.view.is_constant(name) else b.dims(name)
    if dims is None:
        return None
    return [d if d is not None else f"{name}_d{i}" for i, d in enumerate(dims)]


def _assemble(merged: ModelProto, b: GradientBuilder, outputs, wrt) -> ModelProto:
    result = ModelProto()
    result.CopyFrom(merged)
    graph = result.graph
    graph.node.extend(b.nodes)
    graph.initializer.extend(b.initializers)
    del graph.output[:]
    graph.output.extend(outputs)
    declared = {value.name for value in graph.input}
    initializers = {init.name: init for init in graph.initializer}
    for name in wrt:
        init = initializers.get(name)
        if init is not None and name not in declared:
            graph.input.append(helper.make_tensor_value_info(name, init.data_type, list(init.dims)))
    if result.ir_version < 4:
        result.ir_version = 4
    onnx.checker.check_model(result)
    return result
