"""Registry of channel rules: one function per ONNX op type (default domain), by opset range.

A rule is ``rule(node: NodeView, ctx: AnalysisContext) -> None``: it reads its inputs' labels,
writes its outputs' labels and records slices, unions, fixups and blocks on ``ctx``. An op with
no rule blocks every channel that reaches it (fail closed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from onnxprune.analysis.context import AnalysisContext
from onnxprune.analysis.graph_view import NodeView

Rule = Callable[[NodeView, AnalysisContext], None]


@dataclass(frozen=True)
class RegisteredRule:
    op_type: str
    since: int
    until: int | None
    rule: Rule


_RULES: dict[str, list[RegisteredRule]] = {}


def register(*op_types: str, since: int = 1, until: int | None = None) -> Callable[[Rule], Rule]:
    """Register ``rule`` for ``op_types`` in the default domain for opsets [since, until]."""

    def decorate(rule: Rule) -> Rule:
        for op_type in op_types:
            _RULES.setdefault(op_type, []).append(RegisteredRule(op_type, since, until, rule))
        return rule

    return decorate


def lookup(op_type: str, domain: str, opset: int) -> Rule | None:
    """The rule for ``op_type`` at ``opset``, or None (unknown op or non-default domain)."""
    if domain not in ("", "ai.onnx"):
        return None
    for entry in _RULES.get(op_type, []):
        if entry.since <= opset and (entry.until is None or opset <= entry.until):
            return entry.rule
    return None


def registered_op_types() -> list[str]:
    """Op types that have at least one rule (for docs and tests)."""
    return sorted(_RULES)
