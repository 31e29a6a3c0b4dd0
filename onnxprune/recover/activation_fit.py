"""Per-channel scale and shift fitted through a monotone activation (``reconstruct``).

A layer whose only reader is a monotone activation σ is refitted by
:mod:`~onnxprune.recover.reconstruct` to the unpruned model's *pre*-activation tensor y. The
network downstream sees σ(y): where σ is flat (a ReLU below 0, a Clip outside [lo, hi]) an
error changes nothing, yet a fit over all positions spends its freedom there. After the refit,
each output channel k gets a scale a_k and a shift c_k fitted on its *active* rows, where σ is
strictly increasing at the target, A_k = {i : lo < y_ik < hi}:

    (a_k, c_k) = argmin_{a, c} Σ_{i∈A_k} (a·ŷ_ik + c − y_ik)² + λ·[S_k·(a − 1)² + |A_k|·c²]

with ŷ the refitted layer's output, S_k = Σ_{i∈A_k} ŷ_ik² and λ the ridge toward the identity
(a 2 × 2 solve per channel). It is folded into the layer: W_k ← a_k·W_k, b_k ← a_k·b_k + c_k.
A channel keeps its adjustment only when its post-activation error over *all* sampled rows,
Σ_i (σ(a·ŷ_ik + c) − σ(y_ik))², falls, so the calibration error after σ never grows.

Activations are registered per op type (:func:`register_monotone`) with the interval where
they are strictly increasing and their numpy form; any other reader leaves the layer as the
refit made it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from onnxprune.analysis.graph_view import GraphView, NodeView


@dataclass(frozen=True)
class Monotone:
    """A monotone activation: strictly increasing on (lo, hi), ``apply`` its numpy form."""

    op_type: str
    lo: float
    hi: float
    apply: Callable[[np.ndarray], np.ndarray]


MonotoneRule = Callable[[NodeView, GraphView], Monotone | None]
MONOTONE_RULES: dict[str, MonotoneRule] = {}


def register_monotone(op_type: str) -> Callable[[MonotoneRule], MonotoneRule]:
    """Decorator registering the rule of a monotone activation ``op_type`` (default domain)."""

    def decorate(rule: MonotoneRule) -> MonotoneRule:
        MONOTONE_RULES[op_type] = rule
        return rule

    return decorate


@register_monotone("Relu")
def _relu(node: NodeView, view: GraphView) -> Monotone:
    """max(x, 0): strictly increasing on (0, ∞)."""
    return Monotone("Relu", 0.0, np.inf, lambda x: np.maximum(x, 0.0))


@register_monotone("Clip")
def _clip(node: NodeView, view: GraphView) -> Monotone | None:
    """min(max(x, lo), hi): strictly increasing on (lo, hi); lo/hi from the constant inputs
    (opset ≥ 11) or the attributes (older opsets); a run-time bound gives None."""
    bounds = []
    for position, attribute, default in ((1, "min", -np.inf), (2, "max", np.inf)):
        name = node.input(position)
        if name:
            value = view.constant(name)
            if value is None or value.size != 1:
                return None
            bounds.append(float(value.reshape(-1)[0]))
        else:
            bounds.append(float(node.attrs.get(attribute, default)))
    lo, hi = bounds
    if not lo < hi:
        return None
    return Monotone("Clip", lo, hi, lambda x: np.clip(x, lo, hi))


@register_monotone("LeakyRelu")
def _leaky_relu(node: NodeView, view: GraphView) -> Monotone | None:
    """x for x ≥ 0, α·x below: strictly increasing everywhere when α > 0."""
    alpha = float(node.attrs.get("alpha", 0.01))
    if alpha <= 0:
        return None
    return Monotone("LeakyRelu", -np.inf, np.inf, lambda x: np.where(x >= 0, x, alpha * x))


@register_monotone("Sigmoid")
def _sigmoid(node: NodeView, view: GraphView) -> Monotone:
    """1 / (1 + e^−x): strictly increasing everywhere."""
    return Monotone("Sigmoid", -np.inf, np.inf, lambda x: 0.5 * (1.0 + np.tanh(0.5 * x)))


@register_monotone("Tanh")
def _tanh(node: NodeView, view: GraphView) -> Monotone:
    """tanh x: strictly increasing everywhere."""
    return Monotone("Tanh", -np.inf, np.inf, np.tanh)


@register_monotone("HardSigmoid")
def _hard_sigmoid(node: NodeView, view: GraphView) -> Monotone | None:
    """max(0, min(1, α·x + β)): strictly increasing on (−β/α, (1 − β)/α) for α > 0."""
    alpha = float(node.attrs.get("alpha", 0.2))
    beta = float(node.attrs.get("beta", 0.5))
    if alpha <= 0:
        return None
    return Monotone(
        "HardSigmoid",
        -beta / alpha,
        (1.0 - beta) / alpha,
        lambda x: np.clip(alpha * x + beta, 0.0, 1.0),
    )


def monotone_reader(view: GraphView, tensor: str) -> Monotone | None:
    """The registered monotone activation that is the only reader of ``tensor`` (which is no
    graph output), else None."""
    readers = view.consumers.get(tensor, [])
    if len(readers) != 1 or tensor in view.graph_outputs:
        return None
    node = readers[0]
    rule = MONOTONE_RULES.get(node.op_type)
    if rule is None or node.domain not in ("", "ai.onnx") or node.input(0) != tensor:
        return None
    return rule(node, view)


def fit_scale_shift(
    predicted: np.ndarray, target: np.ndarray, activation: Monotone, ridge: float
) -> tuple[np.ndarray, np.ndarray]:
    """(a, c) per column of ``predicted`` / ``target`` (rows × channels, float64) as in the
    module docstring; a channel with no active row, or whose post-activation error would not
    fall, gets (1, 0)."""
    active = (target > activation.lo) & (target < activation.hi)
    count = active.sum(axis=0).astype(np.float64)
    p = np.where(active, predicted, 0.0)
    y = np.where(active, target, 0.0)
    spp, sp, sy, spy = (p * p).sum(0), p.sum(0), y.sum(0), (p * y).sum(0)
    # Normal equations of (a, c): [[spp(1+λ), sp], [sp, n(1+λ)]] [a, c] = [spy + λ·spp, sy]
    a11, a12, a22 = spp * (1.0 + ridge), sp, count * (1.0 + ridge)
    b1, b2 = spy + ridge * spp, sy
    determinant = a11 * a22 - a12 * a12
    solvable = (count > 1) & (determinant > 1e-12 * np.maximum(a11 * a22, 1e-300))
    safe = np.where(solvable, determinant, 1.0)
    scale = np.where(solvable, (b1 * a22 - a12 * b2) / safe, 1.0)
    shift = np.where(solvable, (a11 * b2 - a12 * b1) / safe, 0.0)
    reference = activation.apply(target)
    before = np.square(activation.apply(predicted) - reference).sum(0)
    after = np.square(activation.apply(scale * predicted + shift) - reference).sum(0)
    better = solvable & (after < before)
    return np.where(better, scale, 1.0), np.where(better, shift, 0.0)
