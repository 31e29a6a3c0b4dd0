"""Registry of preprocessing passes: ``name -> pass function``.

A pass is ``def pass_fn(graph: gs.Graph, ctx: PassContext) -> bool``: it edits the
onnx-graphsurgeon graph in place, keeps the model numerically equivalent and returns True
when it changed something. ``DEFAULT_PASSES`` is the order :func:`preprocess` runs them in.
"""

from __future__ import annotations

from collections.abc import Callable

import onnx_graphsurgeon as gs

from onnxprune.passes.context import PassContext

PassFn = Callable[[gs.Graph, PassContext], bool]

PASSES: dict[str, PassFn] = {}


def register_pass(name: str) -> Callable[[PassFn], PassFn]:
    """Decorator registering ``fn`` under ``name`` (names are unique)."""

    def decorate(fn: PassFn) -> PassFn:
        if name in PASSES and PASSES[name] is not fn:
            raise ValueError(f"pass {name!r} is already registered")
        PASSES[name] = fn
        return fn

    return decorate


DEFAULT_PASSES: tuple[str, ...] = (
    "constants_to_initializers",
    "lower_einsum",
    "lower_attention",
    "expand_runtime_fusions",
    "eliminate_identity",
    "eliminate_dropout",
    "fold_constants",
    "reshape_copy_dims",
    "hoist_split_constants",
    "cancel_transposes",
    "fuse_batchnorm",
    "fuse_hardsigmoid",
    "fuse_hardswish",
    "fuse_layernorm",
    "unshare_uniform_constants",
    "unshare_expanded_operands",
    "cleanup",
)
