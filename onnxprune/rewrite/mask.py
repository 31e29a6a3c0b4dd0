"""The mask-equivalence oracle's reference model.

``masked_model(analysis, removed)`` is the *original* analysed model in which every consumer
of the removed channels reads zeros instead: their weight columns (``in`` slices) are zeroed and
dynamic consumers (activation MatMul contractions) get their input multiplied by the keep mask.
For every group not coupled to normalization statistics, ``apply_removal`` must produce a model
with the same outputs (relative error <= 1e-5 in float32).
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs
from onnx import ModelProto

from onnxprune.analysis import ChannelAnalysis
from onnxprune.analysis.context import ROLE_IN
from onnxprune.rewrite.editor import GraphEditor


def masked_model(analysis: ChannelAnalysis, removed_clusters) -> ModelProto:
    """The original model with the removed channels' consumer inputs zeroed."""
    keep = analysis.keep_fn(removed_clusters)
    graph = gs.import_onnx(analysis.model)
    editor = GraphEditor(graph)
    for request in analysis.slices:
        if request.role != ROLE_IN:
            continue
        mask = keep(request.labels)
        if mask.all():
            continue
        value = editor.constant_value(request.constant).copy()
        index = [slice(None)] * value.ndim
        index[request.axis] = np.flatnonzero(~mask)
        value[tuple(index)] = 0
        editor.set_constant_value(request.constant, value)
    for position, edge in enumerate(analysis.mask_edges):
        mask = keep(edge.labels)
        if mask.all():
            continue
        node = editor.node(edge.node)
        source = node.inputs[edge.input_index]
        dtype = source.dtype or np.float32
        gate = gs.Constant(f"oracle_mask_{position}", mask.astype(dtype))
        gated = gs.Variable(f"oracle_masked_{position}", dtype=source.dtype)
        graph.nodes.append(gs.Node("Mul", inputs=[source, gate], outputs=[gated]))
        node.inputs[edge.input_index] = gated
    graph.toposort()
    model = gs.export_onnx(graph, do_type_check=False)
    model.ir_version = analysis.model.ir_version
    del model.opset_import[:]
    model.opset_import.extend(analysis.model.opset_import)
    return model
