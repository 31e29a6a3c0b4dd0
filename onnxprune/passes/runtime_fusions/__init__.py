"""Expansions of ONNX Runtime's fused ops into standard ONNX ops, registered by (domain, op type).

Importing the package registers every expansion (:mod:`.linear`, :mod:`.transformer`, :mod:`.attention`);
:mod:`onnxprune.passes.expand_runtime_fusions` is the pass that applies them.
"""

from onnxprune.passes.runtime_fusions import (  # noqa: F401  (importing registers them)
    attention,
    linear,
    transformer,
)
from onnxprune.passes.runtime_fusions.registry import EXPANSIONS, MICROSOFT, register_expansion

__all__ = ["EXPANSIONS", "MICROSOFT", "register_expansion"]
