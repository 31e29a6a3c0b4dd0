"""Channel dependency analysis: which channels must be pruned together, and which cannot."""

from onnxprune.analysis.analyze import ChannelAnalysis, analyze
from onnxprune.analysis.groups import ChannelGroup
from onnxprune.analysis.registry import register, registered_op_types

__all__ = ["ChannelAnalysis", "ChannelGroup", "analyze", "register", "registered_op_types"]
