"""Apply pruning decisions to the graph, and build the oracle's masked reference."""

from onnxprune.rewrite.apply import RewriteError, apply_removal, check_model
from onnxprune.rewrite.mask import masked_model

__all__ = ["RewriteError", "apply_removal", "check_model", "masked_model"]
