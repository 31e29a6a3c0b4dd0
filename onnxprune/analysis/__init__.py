"""Channel dependency analysis: which channels must be pruned together, and which cannot."""

from onnxprune.analysis.analyze import ATTENTION_UNITS, ChannelAnalysis, analyze, attention_head_dim
from onnxprune.analysis.groups import ChannelGroup
from onnxprune.analysis.registry import register, registered_op_types

__all__ = [
    "ATTENTION_UNITS",
    "ChannelAnalysis",
    "ChannelGroup",
    "analyze",
    "attention_head_dim",
    "register",
    "registered_op_types",
]
