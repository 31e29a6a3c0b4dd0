"""onnxprune: prune exported ONNX models, recover accuracy without training, validate with ORT.

Public API: :func:`prune` (structured channel pruning at a ratio, data-free or data-driven),
:func:`optimize` (prune toward a MAC/param/latency target under an accuracy guard),
:func:`remove_blocks` (remove whole residual branches) and :func:`sparsify` (zero
individual weights: unstructured or N:M, magnitude/Wanda/OBS).
"""

from onnxprune._version import __version__
from onnxprune.blocks import BlockRemoval, remove_blocks
from onnxprune.pipeline.api import OptimizeResult, optimize
from onnxprune.prune import PruneResult, prune  # the function shadows the module attribute
from onnxprune.sparsity import SparsifyResult, sparsify

__all__ = [
    "BlockRemoval",
    "OptimizeResult",
    "PruneResult",
    "SparsifyResult",
    "__version__",
    "optimize",
    "prune",
    "remove_blocks",
    "sparsify",
]
