"""``preprocess``: one graphsurgeon import, the passes in order, one export, shape inference."""

from __future__ import annotations

from collections.abc import Sequence

import onnx
import onnx_graphsurgeon as gs
from onnx import ModelProto
from onnx_graphsurgeon.ir.tensor import LazyValues

from onnxprune.errors import InputError
from onnxprune.io.legacy_ops import lowered_note
from onnxprune.io.normalize import lift_initializer_inputs, lifted_note, weight_inputs
from onnxprune.io.provenance import mark_made_by
from onnxprune.passes._shapes import apply_value_infos, infer_value_infos, skeleton
from onnxprune.passes.context import PassContext, PreprocessResult
from onnxprune.passes.registry import DEFAULT_PASSES, PASSES


def _default_opset(model: ModelProto) -> int:
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            return int(opset.version)
    raise InputError("model has no default-domain (ai.onnx) opset import")


def _real_inputs(model: ModelProto) -> list[onnx.ValueInfoProto]:
    initializers = {init.name for init in model.graph.initializer}
    return [value for value in model.graph.input if value.name not in initializers]


def _check_input_shapes(model: ModelProto, input_shapes: dict[str, list[int]] | None) -> None:
    """Reject input shapes that name unknown inputs or have the wrong rank."""
    if not input_shapes:
        return
    inputs = {value.name: value for value in _real_inputs(model)}
    for name, dims in input_shapes.items():
        if name not in inputs:
            known = ", ".join(inputs) or "(none)"
            raise InputError(f"input shape given for unknown input {name!r}; model inputs: {known}")
        tensor_type = inputs[name].type.tensor_type
        if tensor_type.HasField("shape") and len(tensor_type.shape.dim) != len(dims):
            raise InputError(
                f"input shape for {name!r} has {len(dims)} dims, the model input has rank "
                f"{len(tensor_type.shape.dim)}"
            )


def _check_passes(passes: Sequence[str]) -> None:
    unknown = [name for name in passes if name not in PASSES]
    if unknown:
        raise InputError(
            f"unknown preprocessing pass(es) {', '.join(unknown)}; known: {', '.join(PASSES)}"
        )


def _restore_interface(result: ModelProto, original: ModelProto) -> None:
    """Put the original graph input/output declarations (names, dtypes, dims) back."""
    original_inputs = _real_inputs(original)
    result_inputs = _real_inputs(result)
    if [v.name for v in result_inputs] == [v.name for v in original_inputs]:
        initializers = {init.name for init in result.graph.initializer}
        kept = [v for v in result.graph.input if v.name in initializers]
        del result.graph.input[:]
        result.graph.input.extend([*original_inputs, *kept])
    if [v.name for v in result.graph.output] == [v.name for v in original.graph.output]:
        del result.graph.output[:]
        result.graph.output.extend(original.graph.output)


def _copy_model_fields(result: ModelProto, original: ModelProto) -> None:
    result.ir_version = original.ir_version
    result.producer_name = original.producer_name
    result.producer_version = original.producer_version
    result.domain = original.domain
    result.model_version = original.model_version
    result.doc_string = original.doc_string
    del result.metadata_props[:]
    result.metadata_props.extend(original.metadata_props)


def _attach_value_infos(model: ModelProto) -> bool:
    """Replace value_info by freshly inferred shapes; True when inference produced any."""
    infos = infer_value_infos(model)
    boundary = {v.name for v in [*model.graph.input, *model.graph.output]}
    boundary |= {init.name for init in model.graph.initializer}
    del model.graph.value_info[:]
    model.graph.value_info.extend(v for name, v in infos.items() if name not in boundary)
    return bool(infos)


def _validates(model: ModelProto) -> bool:
    try:
        onnx.checker.check_model(skeleton(model), full_check=True)
    except Exception:  # checker and inference raise several types
        return False
    return True


def _detach_constant_attributes(graph: gs.Graph) -> None:
    """Give every Constant node's lazily loaded tensor a private proto copy.

    graphsurgeon keeps references to the input model's attribute TensorProtos and renames them on
    export, which would modify the caller's model; copying the (small) attribute tensors stops it.
    """
    for node in graph.nodes:
        value = node.attrs.get("value") if node.op == "Constant" else None
        if isinstance(value, gs.Constant) and isinstance(value._values, LazyValues):
            proto = onnx.TensorProto()
            proto.CopyFrom(value._values.tensor)
            value._values = LazyValues(proto)


def _run(model, input_shapes, passes, allow_opset_raise) -> tuple[PreprocessResult, int]:
    opset = _default_opset(model)
    ctx = PassContext(input_shapes=input_shapes, opset=opset, allow_opset_raise=allow_opset_raise)
    infos = infer_value_infos(model)
    graph = gs.import_onnx(model)
    _detach_constant_attributes(graph)
    apply_value_infos(graph, infos, model.graph.value_info)
    applied: dict[str, bool] = {}
    for name in passes:
        applied[name] = bool(PASSES[name](graph, ctx)) or applied.get(name, False)
    result = gs.export_onnx(graph, do_type_check=False)
    _copy_model_fields(result, model)
    _restore_interface(result, model)
    applied["infer_shapes"] = _attach_value_infos(result)
    return PreprocessResult(model=result, notes=ctx.notes, applied=applied), ctx.opset


#: rounds of the passes at most (see :func:`preprocess`)
MAX_ROUNDS = 16


def preprocess(
    model: ModelProto,
    *,
    input_shapes: dict[str, list[int]] | None = None,
    passes: Sequence[str] = DEFAULT_PASSES,
) -> PreprocessResult:
    """Normalize exporter output for the analysis; ``model`` itself is never modified.

    Runs ``passes`` (names from ``PASSES``, in order) on one onnx-graphsurgeon import, exports
    once and re-infers every intermediate shape; while a round changed the graph, another round
    runs on its result, up to ``MAX_ROUNDS`` in all: a fold can make shapes known that an
    earlier pass of the same round needed (a TorchScript ViT at opset 13 computes the class
    token's Expand shape at run time, so its token count is unknown until that is folded, and
    only then can the attention Reshape targets that read it be folded). Graph input/output
    names, dtypes and dims are kept exactly. ``input_shapes`` are validated and available to
    passes, never baked in.
    """
    if not isinstance(model, ModelProto):
        raise InputError(f"preprocess expects an onnx.ModelProto, got {type(model).__name__}")
    _check_input_shapes(model, input_shapes)
    _check_passes(passes)
    lifted = _lifted_weights(model)
    if lifted is not None:
        model, lifted_count = lifted
    result, opset = _run(model, input_shapes, passes, allow_opset_raise=True)
    if opset != _default_opset(model) and not _validates(result.model) and _validates(model):
        result, _ = _run(model, input_shapes, passes, allow_opset_raise=False)
        result.notes.append("opset raise reverted: the raised model did not validate")
    for _ in range(MAX_ROUNDS - 1):
        if not _changed(result):
            break
        again, _ = _run(result.model, input_shapes, passes, allow_opset_raise=False)
        if not _changed(again):
            break
        result = PreprocessResult(
            model=again.model,
            notes=[*result.notes, *(n for n in again.notes if n not in result.notes)],
            applied={k: v or again.applied.get(k, False) for k, v in result.applied.items()},
        )
    if lifted is not None and lifted_count:
        result.notes.append(lifted_note(lifted_count))
    legacy = lowered_note(model)
    if legacy is not None:
        result.notes.append(legacy)
    mark_made_by(result.model, "preprocess")
    return result


def _lifted_weights(model: ModelProto) -> tuple[ModelProto, int] | None:
    """A copy of ``model`` whose weights listed as graph inputs are constants, and how many
    (:func:`onnxprune.io.normalize.lift_initializer_inputs`); None when there is nothing to
    lift and the model is IR 4 or newer."""
    if model.ir_version >= 4 and not weight_inputs(model):
        return None
    lifted = ModelProto()
    lifted.CopyFrom(model)
    return lifted, lift_initializer_inputs(lifted)


def _changed(result: PreprocessResult) -> bool:
    """Whether any pass changed the graph (shape inference alone does not count)."""
    return any(value for name, value in result.applied.items() if name != "infer_shapes")
