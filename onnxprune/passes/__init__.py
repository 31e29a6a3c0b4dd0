"""Preprocessing passes that normalize exporter output before the channel analysis.

One pass per module, each registered by name in :data:`PASSES`; :func:`preprocess` runs
:data:`DEFAULT_PASSES` on one onnx-graphsurgeon import and re-infers shapes at the end.
"""

from onnxprune.passes import (  # noqa: F401  (importing registers the passes)
    cancel_transposes,
    cleanup,
    constants_to_initializers,
    eliminate_dropout,
    eliminate_identity,
    expand_runtime_fusions,
    fold_constants,
    fuse_batchnorm,
    fuse_hardsigmoid,
    fuse_hardswish,
    fuse_layernorm,
    hoist_split_constants,
    lower_attention,
    lower_einsum,
    reshape_copy_dims,
    unshare_expanded_operands,
    unshare_uniform_constants,
)
from onnxprune.passes.context import PassContext, PreprocessResult
from onnxprune.passes.pipeline import preprocess
from onnxprune.passes.registry import DEFAULT_PASSES, PASSES, register_pass

__all__ = [
    "DEFAULT_PASSES",
    "PASSES",
    "PassContext",
    "PreprocessResult",
    "preprocess",
    "register_pass",
]
