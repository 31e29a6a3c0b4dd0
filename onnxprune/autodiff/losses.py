"""Scalar losses appended to a forward model before differentiation.

Each builder returns a :class:`Loss`: the nodes computing one scalar, the graph inputs they
read (targets, fed at run time) and their constants. The class axis is 1 (classification
logits [N, K], or [N, K, ...] for dense outputs, averaged over the other positions).

* :func:`kl_divergence` — T² · mean KL(softmax(r/T) ‖ softmax(y/T)) to reference logits r
  (input ``target/<output>``), the distillation loss (Hinton et al.): its gradient w.r.t. y is
  T·(softmax(y/T) − softmax(r/T)) / positions.
* :func:`cross_entropy` — −mean Σ_k t_k log softmax(y)_k with target probabilities t (input
  ``target/<output>``): one-hot labels (:func:`one_hot`, optionally label-smoothed), or any
  soft targets.
* :func:`mean_squared_error` — Σ_t mean((x_t − target_t)²) over chosen outputs or
  intermediate tensors (inputs ``target/<tensor>``).
* :func:`embedding_cosine` — mean (1 − cos) of mask-pooled sentence embeddings (a text
  encoder's hidden states against the unpruned model's).

Losses are summed with :func:`sum_losses`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from onnx import ModelProto, NodeProto, TensorProto, ValueInfoProto, helper

from onnxprune.analysis.graph_view import GraphView
from onnxprune.errors import InputError
from onnxprune.graph.mask_input import mask_input
from onnxprune.graph.shapes import infer_shapes


@dataclass
class Loss:
    """A scalar ``output`` computed by ``nodes`` from the model's tensors and ``inputs``."""

    output: str
    nodes: list[NodeProto]
    inputs: list[ValueInfoProto] = field(default_factory=list)
    initializers: list[TensorProto] = field(default_factory=list)
    elem_type: int = TensorProto.FLOAT
    targets: dict[str, str] = field(default_factory=dict)  # target input -> model tensor


def target_name(tensor: str) -> str:
    """Graph input holding the target of ``tensor``."""
    return f"target/{tensor}"


_LOSS_IDS = itertools.count()


def _builder(model: ModelProto, prefix: str):
    """A builder with a prefix no other loss uses (so losses can be summed)."""
    from onnxprune.autodiff.builder import GradientBuilder

    return GradientBuilder(GraphView(infer_shapes(model)), prefix=f"{prefix}{next(_LOSS_IDS)}")


def _float_outputs(model: ModelProto, outputs: Sequence[str] | None) -> list[str]:
    names = [value.name for value in model.graph.output]
    chosen = list(outputs) if outputs else names
    missing = [name for name in chosen if name not in names]
    if missing:
        raise InputError(f"loss on unknown output(s) {', '.join(missing)}; outputs: {names}")
    return chosen


def _target_input(b, tensor: str) -> ValueInfoProto:
    dims = [d if d is not None else f"d{i}" for i, d in enumerate(b.dims(tensor))]
    return helper.make_tensor_value_info(target_name(tensor), b.elem_type(tensor), dims)


def _finish(b, terms: list[str], inputs, targets, elem: int, name: str) -> Loss:
    output = terms[0] if len(terms) == 1 else b.node("Sum", terms)
    final = b.fresh(name)
    b.nodes.append(helper.make_node("Identity", [output], [final], name=b.fresh("loss_out")))
    return Loss(final, b.nodes, inputs, b.initializers, elem, targets)


def _mean_over_positions(b, per_class: str, class_axis: int) -> str:
    """ReduceSum over the class axis, then the mean over every other axis (a scalar)."""
    summed = b.reduce_sum(per_class, [class_axis], keepdims=False)
    return b.node("ReduceMean", [summed], keepdims=0)


def kl_divergence(
    model: ModelProto,
    *,
    outputs: Sequence[str] | None = None,
    temperature: float = 1.0,
    class_axis: int = 1,
) -> Loss:
    """T² · mean KL(softmax(target/T) ‖ softmax(y/T)) summed over ``outputs`` (default all)."""
    if temperature <= 0:
        raise InputError(f"temperature must be > 0, got {temperature}")
    b = _builder(model, "loss")
    terms, inputs, targets = [], [], {}
    for output in _float_outputs(model, outputs):
        inputs.append(_target_input(b, output))
        targets[target_name(output)] = output
        inv_t = b.scalar(1.0 / temperature, output)
        log_q = b.node("LogSoftmax", [b.mul(output, inv_t)], axis=class_axis)
        log_p = b.node("LogSoftmax", [b.mul(target_name(output), inv_t)], axis=class_axis)
        p = b.node("Exp", [log_p])
        per_class = b.mul(p, b.node("Sub", [log_p, log_q]))
        term = _mean_over_positions(b, per_class, class_axis)
        terms.append(b.mul(term, b.scalar(temperature**2, output)))
    return _finish(b, terms, inputs, targets, b.elem_type(output), "kl")


def cross_entropy(
    model: ModelProto, *, outputs: Sequence[str] | None = None, class_axis: int = 1
) -> Loss:
    """−mean Σ_k target_k · log softmax(y)_k summed over ``outputs`` (default all)."""
    b = _builder(model, "loss")
    terms, inputs, targets = [], [], {}
    for output in _float_outputs(model, outputs):
        inputs.append(_target_input(b, output))
        targets[target_name(output)] = output
        log_q = b.node("LogSoftmax", [output], axis=class_axis)
        per_class = b.mul(target_name(output), log_q)
        terms.append(b.node("Neg", [_mean_over_positions(b, per_class, class_axis)]))
    return _finish(b, terms, inputs, targets, b.elem_type(output), "cross_entropy")


def mean_squared_error(model: ModelProto, tensors: Sequence[str]) -> Loss:
    """Σ_t mean((t − target_t)²) over model ``tensors`` (outputs or intermediate tensors)."""
    if not tensors:
        raise InputError("mean squared error needs at least one tensor")
    b = _builder(model, "loss")
    terms, inputs, targets = [], [], {}
    for tensor in tensors:
        inputs.append(_target_input(b, tensor))
        targets[target_name(tensor)] = tensor
        diff = b.node("Sub", [tensor, target_name(tensor)])
        terms.append(b.node("ReduceMean", [b.mul(diff, diff)], keepdims=0))
    return _finish(b, terms, inputs, targets, b.elem_type(tensors[0]), "mse")


def _pooled(b, hidden: str, rank: int, mask: str | None) -> str:
    """Σ_l m_l · x_l over the token axis 1 of [N, L, H] (every token without a mask); a
    rank-2 [N, H] tensor is already pooled. The mean's 1/Σm cancels in a cosine."""
    if rank == 2:
        return hidden
    if mask is not None:
        hidden = b.mul(hidden, mask)
    return b.reduce_sum(hidden, [1], keepdims=False)


def embedding_cosine(model: ModelProto, *, outputs: Sequence[str] | None = None) -> Loss:
    """Σ_outputs mean_n (1 − cos(e_n, r_n)) of mean-pooled embeddings: e_n = Σ_l m_nl y_nl
    over the real tokens (the attention-mask input, :mod:`onnxprune.graph.mask_input`; all
    tokens without one) of
    a [N, L, H] output, r_n the same of the target; cos(e, r) = e·r / sqrt(‖e‖²‖r‖² + ε)."""
    b = _builder(model, "loss")
    terms, inputs, targets = [], [], {}
    for output in _float_outputs(model, outputs):
        inputs.append(_target_input(b, output))
        targets[target_name(output)] = output
        if b.rank(output) not in (2, 3):
            raise InputError(
                f"embedding cosine loss: output '{output}' must be [N, H] or [N, L, H], "
                f"has rank {b.rank(output)}"
            )
        mask_name = mask_input(model) if b.rank(output) == 3 else None
        mask = None
        if mask_name is not None:
            elem = b.elem_type(output)
            mask = b.unsqueeze(b.node("Cast", [mask_name], to=elem), [2])
            b.set_elem_type(mask, elem)
        student = _pooled(b, output, b.rank(output), mask)
        teacher = _pooled(b, target_name(output), b.rank(output), mask)
        dot = b.reduce_sum(b.mul(student, teacher), [-1], keepdims=False)
        norms = b.mul(
            b.reduce_sum(b.mul(student, student), [-1], keepdims=False),
            b.reduce_sum(b.mul(teacher, teacher), [-1], keepdims=False),
        )
        root = b.node("Sqrt", [b.node("Add", [norms, b.scalar(1e-12, output)])])
        cosine = b.node("Div", [dot, root])
        distance = b.node("Sub", [b.scalar(1.0, output), cosine])
        terms.append(b.node("ReduceMean", [distance], keepdims=0))
    return _finish(b, terms, inputs, targets, b.elem_type(output), "embedding_cosine")


def sum_losses(model: ModelProto, parts: Sequence[Loss], weights: Sequence[float]) -> Loss:
    """Σ_i weights[i] · parts[i] (the parts were built for the same ``model``)."""
    b = _builder(model, "loss_sum")
    nodes = [node for part in parts for node in part.nodes]
    inputs = [value for part in parts for value in part.inputs]
    initializers = [init for part in parts for init in part.initializers]
    targets = {key: value for part in parts for key, value in part.targets.items()}
    for part in parts:
        b.set_elem_type(part.output, part.elem_type)
    terms = [
        b.mul(part.output, b.scalar(w, part.output))
        for part, w in zip(parts, weights, strict=False)
    ]
    loss = _finish(b, terms, [], {}, parts[0].elem_type, "total")
    return Loss(
        loss.output,
        nodes + loss.nodes,
        inputs,
        initializers + loss.initializers,
        loss.elem_type,
        targets,
    )


def one_hot(labels: np.ndarray, classes: int, smoothing: float = 0.0, dtype=np.float32):
    """Targets (1 − ε)·onehot(labels) + ε/K for :func:`cross_entropy`."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise InputError(f"labels must lie in [0, {classes}), got {labels.min()}..{labels.max()}")
    targets = np.full((labels.size, classes), smoothing / classes, dtype=np.float64)
    targets[np.arange(labels.size), labels] += 1.0 - smoothing
    return targets.astype(dtype)
