"""A two-conv chain with a classifier head, analysed: the removal-order and loop tests' model."""

from __future__ import annotations

from onnxprune.analysis import ChannelAnalysis, ChannelGroup, analyze
from tests.analysis.test_rules import build, chain, conv, head


def chain_analysis() -> ChannelAnalysis:
    """x → c1 (3→16) → c2 (16→32) → head (32→8), analysed."""
    nodes, inits = chain(conv("c1", "x", "a", 3, 16), conv("c2", "a", "b", 16, 32, seed=1))
    h_nodes, h_inits = head("b", 32, 8)
    return analyze(build(nodes + h_nodes, inits + h_inits))


def group(analysis: ChannelAnalysis, source: str) -> ChannelGroup:
    """The group whose only source is ``source``."""
    return next(g for g in analysis.groups if g.sources == [source])
