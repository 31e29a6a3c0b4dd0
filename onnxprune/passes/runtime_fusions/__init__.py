"""Expansions of ONNX Runtime's fused ops into standard ONNX ops, registered by (domain, op type).

Importing the package registers every expansion (:mod:`.linear`, :mod:`.transformer`);
:mod:`onnxprune.passes.expand_runtime_fusions` is the pass that applies them.
"""

from onnxprune.passes.runtime_fusions import linear, transformer  # noqa: F401  (registers)
from onnxprune.passes.runtime_fusions.registry import EXPANSIONS, MICROSOFT, register_expansion

__all__ = ["EXPANSIONS", "MICROSOFT", "register_expansion"]
