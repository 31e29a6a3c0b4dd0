"""Registry of vector-Jacobian rules: one function per ONNX op type (default domain), by opset.

A rule is ``rule(node: NodeView, b: GradientBuilder, grads: list[str | None], needed:
list[bool]) -> list[str | None]``. ``grads[i]`` names the tensor holding ∂L/∂(output i) (None
when no gradient reaches that output); the rule emits standard ONNX nodes through ``b`` and
returns, per input, the name of ∂L/∂(input) for every input with ``needed[i]`` (None for the
others). ``inputs`` lists the input positions the rule can differentiate (None = all): the path
analysis never asks for the others (shapes, axes, pads, Clip bounds, Resize scales).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from onnxprune.analysis.graph_view import NodeView

if TYPE_CHECKING:
    from onnxprune.autodiff.builder import GradientBuilder

VjpRule = Callable[[NodeView, "GradientBuilder", list, list], list]


@dataclass(frozen=True)
class RegisteredVjp:
    op_type: str
    since: int
    until: int | None
    inputs: tuple[int, ...] | None
    rule: VjpRule


_RULES: dict[str, list[RegisteredVjp]] = {}


def register_vjp(
    *op_types: str,
    since: int = 1,
    until: int | None = None,
    inputs: tuple[int, ...] | None = None,
) -> Callable[[VjpRule], VjpRule]:
    """Register ``rule`` for ``op_types`` (default domain) at opsets [since, until]; ``inputs``
    are the differentiable input positions (None = every input)."""

    def decorate(rule: VjpRule) -> VjpRule:
        for op_type in op_types:
            _RULES.setdefault(op_type, []).append(
                RegisteredVjp(op_type, since, until, inputs, rule)
            )
        return rule

    return decorate


def lookup_vjp(op_type: str, domain: str, opset: int) -> RegisteredVjp | None:
    """The rule entry for ``op_type`` at ``opset``, or None (no rule or non-default domain)."""
    if domain not in ("", "ai.onnx"):
        return None
    for entry in _RULES.get(op_type, []):
        if entry.since <= opset and (entry.until is None or opset <= entry.until):
            return entry
    return None


def registered_vjp_ops() -> list[str]:
    """Op types with at least one vector-Jacobian rule (for docs and tests)."""
    return sorted(_RULES)
