"""Apply a removal: slice every coupled constant, run the fixups, re-infer shapes.

Contract: ``apply_removal(analysis, removed)`` returns a new model in which the channels of the
removed clusters no longer exist. Graph inputs and outputs keep their names, dtypes, ranks and
dynamic dimensions; stale intermediate shapes are dropped and re-inferred.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
import onnx_graphsurgeon as gs
from onnx import ModelProto

from onnxprune.analysis import ChannelAnalysis
from onnxprune.errors import OnnxPruneError
from onnxprune.graph.shapes import attach_inferred_shapes
from onnxprune.io.provenance import mark_made_by
from onnxprune.rewrite.editor import GraphEditor


class RewriteError(OnnxPruneError):
    """A plan could not be applied consistently (a bug or an inconsistent plan)."""

    exit_code = 1


def _keep_masks(analysis: ChannelAnalysis, keep) -> dict[str, dict[int, np.ndarray]]:
    """One keep mask per (constant, axis); requests that disagree are a rewrite error."""
    masks: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
    for request in analysis.slices:
        mask = keep(request.labels)
        previous = masks[request.constant].get(request.axis)
        if previous is not None and not np.array_equal(previous, mask):
            raise RewriteError(f"inconsistent slices of '{request.constant}' axis {request.axis}")
        masks[request.constant][request.axis] = mask
    return masks


def apply_removal(analysis: ChannelAnalysis, removed_clusters) -> ModelProto:
    """Return a copy of the analysed model without the channels of ``removed_clusters``."""
    keep = analysis.keep_fn(removed_clusters)
    graph = gs.import_onnx(analysis.model)
    editor = GraphEditor(graph)
    for constant, per_axis in _keep_masks(analysis, keep).items():
        value = editor.constant_value(constant)
        for axis, mask in per_axis.items():
            if not mask.all():
                value = np.take(value, np.flatnonzero(mask), axis=axis)
        editor.set_constant_value(constant, value)
    for _, fixup in analysis.fixups:
        fixup(editor, keep)
    io_names = {t.name for t in [*graph.inputs, *graph.outputs]}
    for tensor in graph.tensors().values():
        if isinstance(tensor, gs.Variable) and tensor.name not in io_names:
            tensor.shape = None
    graph.cleanup(remove_unused_graph_inputs=False).toposort()
    pruned = gs.export_onnx(graph, do_type_check=False)
    _copy_model_metadata(analysis.model, pruned)
    restore_non_tensor_outputs(analysis.model, pruned)
    del pruned.graph.value_info[:]
    return mark_made_by(attach_inferred_shapes(pruned, data_prop=False), "rewrite")


def _copy_model_metadata(source: ModelProto, target: ModelProto) -> None:
    target.ir_version = source.ir_version
    del target.opset_import[:]
    target.opset_import.extend(source.opset_import)
    target.producer_name = source.producer_name
    target.producer_version = source.producer_version
    target.domain = source.domain
    target.model_version = source.model_version
    target.doc_string = source.doc_string
    del target.metadata_props[:]
    target.metadata_props.extend(source.metadata_props)
    for function in source.functions:
        target.functions.append(function)


def restore_non_tensor_outputs(source: ModelProto, target: ModelProto) -> None:
    """Put back the declarations of ``source``'s graph outputs that are not tensors (ZipMap's
    sequence of maps): onnx-graphsurgeon exports every output as a tensor of undefined type,
    which the checker rejects. Tensor outputs keep what the rewrite declared (their widths may
    follow the pruning)."""
    declared = {value.name: value for value in source.graph.output}
    for value in target.graph.output:
        original = declared.get(value.name)
        if original is not None and original.type.WhichOneof("value") != "tensor_type":
            value.CopyFrom(original)


def check_model(model: ModelProto) -> None:
    """``onnx.checker`` with full shape checking (through a file past 2 GB)."""
    if model.ByteSize() < 2**31 - 2**20:
        onnx.checker.check_model(model, full_check=True)
    else:  # pragma: no cover - exercised by the large-model benchmark only
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.onnx"
            onnx.save_model(model, path, save_as_external_data=True)
            onnx.checker.check_model(str(path), full_check=True)
