"""Pass: expand ONNX Runtime's fused ops back into standard ONNX ops.

A model saved after ONNX Runtime's graph optimizations (``optimized_model_filepath`` at the
``extended`` level, its transformer optimizer, HF Optimum's O1–O4) holds ``com.microsoft``
nodes that no channel rule, MAC counter or gradient rule reads, so nothing behind them could be
pruned. Each registered expansion (:mod:`onnxprune.passes.runtime_fusions`: FusedConv,
FusedGemm, FusedMatMul; the Gelu family, SkipLayerNormalization, Attention,
EmbedLayerNormalization) writes the same function in standard ops, so the rest of onnxprune
sees an ordinary export; ONNX Runtime fuses the written model again when it loads it. A node
whose attributes fall outside what its expansion states is left as it is, with a note: the
analysis then blocks it with its reason (fail closed).
"""

from __future__ import annotations

import onnx_graphsurgeon as gs
from onnx import ModelProto

from onnxprune.passes._graph import NameGen
from onnxprune.passes.context import PassContext
from onnxprune.passes.registry import register_pass
from onnxprune.passes.runtime_fusions import EXPANSIONS

__all__ = ["EXPANSIONS", "expand_runtime_fusions", "expanded_model", "has_runtime_fusions"]


@register_pass("expand_runtime_fusions")
def expand_runtime_fusions(graph: gs.Graph, ctx: PassContext) -> bool:
    """Replace every node with a registered expansion (module docstring) by standard ops.

    Contract: the same function up to float rounding; output names unchanged; nodes outside
    an expansion's stated attributes stay (and are reported).
    """
    names = NameGen(graph)
    expanded: dict[str, int] = {}
    left: dict[str, int] = {}
    for node in list(graph.nodes):
        expansion = EXPANSIONS.get((node.domain or "", node.op))
        if expansion is None:
            continue
        op = node.op
        if expansion(node, graph, ctx, names):
            expanded[op] = expanded.get(op, 0) + 1
        else:
            left[op] = left.get(op, 0) + 1
    if expanded:
        listed = ", ".join(f"{count} {op}" for op, count in sorted(expanded.items()))
        ctx.note(f"expanded ONNX Runtime fused ops into standard ops: {listed}")
        graph.toposort()
    if left:
        listed = ", ".join(f"{count} {op}" for op, count in sorted(left.items()))
        ctx.note(f"left ONNX Runtime fused ops with unsupported attributes as they are: {listed}")
    return bool(expanded)


def has_runtime_fusions(model: ModelProto) -> bool:
    """Whether the main graph holds a node with a registered expansion."""
    return any((node.domain, node.op_type) in EXPANSIONS for node in model.graph.node)


def expanded_model(model: ModelProto) -> ModelProto:
    """``model`` with its registered fused ops expanded (this pass alone, through
    :func:`~onnxprune.passes.preprocess`: interface and node names kept); ``model`` itself when
    it holds none."""
    if not has_runtime_fusions(model):
        return model
    from onnxprune.passes.pipeline import preprocess

    return preprocess(model, passes=("expand_runtime_fusions",)).model
