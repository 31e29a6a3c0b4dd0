"""Weight sparsity: zero individual weights (unstructured, global, threshold, top-k, N:M) of
Conv/ConvTranspose/Gemm/MatMul, with magnitude, Wanda or OBS (SparseGPT-style, with weight
update) criteria, and optional ``sparse_initializer`` storage.

Public API: :func:`sparsify` -> :class:`SparsifyResult`.
"""

from onnxprune.sparsity.api import LayerPlan, SparsifyResult, sparsify
from onnxprune.sparsity.criteria import register_sparsity_criterion

__all__ = ["LayerPlan", "SparsifyResult", "register_sparsity_criterion", "sparsify"]
