"""The copy of a model that gradient-based methods differentiate: float32, opset 16 or newer.

:func:`gradient_ready` is :func:`~onnxprune.autodiff.precision.float32_copy` followed by
:func:`modern_opset_copy`. Contract of the opset step: a model whose default-domain opset is
below ``FULL_GRADIENT_OPSET`` (16) is converted to ``CONVERT_TO`` (17) by the ONNX version
converter (IR-3 weights listed as inputs become plain initializers first,
:func:`~onnxprune.io.normalize.lift_initializer_inputs`). Why: the backward graph and the losses
are written in the ops of recent opsets — ``Slice``/``Pad`` bounds as inputs (10/11), ``Gemm``
without C (11), ``ScatterElements`` (11) and its ``reduction="add"`` (16: the gradient of a
MaxPool whose windows overlap, as in every ResNet stem), ``Where`` and ``ConstantOfShape`` (9),
and ``Softmax``/``LogSoftmax`` over one axis (13; before, they flatten every axis from ``axis``
on, which is not the class axis of a dense [N, K, H, W] output). The converter keeps
initializer names and the computed function (its adapters rewrite attributes into inputs and
old ops into their successors), so gradients and scores keyed by tensor name apply to the
model the caller holds. An adapter that replaces a node (Upsample → Resize) names its output
anew: the source name is put back when the node's readers say which tensor it became
(:func:`_restore_names`); a tensor still renamed makes the conversion count as failed. When the converter fails, a model at opset
``MIN_GRADIENT_OPSET`` (13) or newer is differentiated as it is (a rule that needs a newer op
then names the op and the opset); an older one is an ``InputError`` naming the opset — never
a guessed graph. Models at opset 16 or newer come back unchanged (the same object when
float32 too).
"""

from __future__ import annotations

from onnx import ModelProto

from onnxprune.autodiff.precision import float32_copy
from onnxprune.errors import InputError
from onnxprune.io.normalize import lift_initializer_inputs

MIN_GRADIENT_OPSET = 13
FULL_GRADIENT_OPSET = 16
CONVERT_TO = 17


def default_opset(model: ModelProto) -> int:
    """The model's default-domain (ai.onnx) opset version, 0 when it imports none."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def modern_opset_copy(model: ModelProto) -> ModelProto:
    """``model`` at opset ``FULL_GRADIENT_OPSET`` or newer when it can be converted, else as
    it is from ``MIN_GRADIENT_OPSET`` on (see the module docstring)."""
    opset = default_opset(model)
    if opset >= FULL_GRADIENT_OPSET:
        return model
    from onnx import version_converter

    source = ModelProto()
    source.CopyFrom(model)
    lift_initializer_inputs(source)
    try:
        converted = version_converter.convert_version(source, CONVERT_TO)
        _restore_names(source, converted)
        renamed = _renamed_tensors(source, converted)
        if renamed:
            raise ValueError(f"it renamed {len(renamed)} tensor(s), e.g. '{renamed[0]}'")
    except Exception as error:  # the converter raises several types (RuntimeError, C++ errors)
        if opset >= MIN_GRADIENT_OPSET:
            return model
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(
            f"gradient-based methods need opset {MIN_GRADIENT_OPSET} or newer, and converting "
            f"this opset-{opset} model to {CONVERT_TO} failed ({first}); re-export it at "
            f"opset {CONVERT_TO} or use a criterion and recovery without gradients"
        ) from None
    converted.ir_version = max(converted.ir_version, source.ir_version)
    return converted


def _renamed_tensors(source: ModelProto, converted: ModelProto) -> list[str]:
    """Names of ``source``'s node outputs and initializers missing from ``converted`` (an
    adapter that replaces a node, such as Upsample → Resize, may name its output anew; scores
    and gradients are keyed by these names)."""
    kept = {out for node in converted.graph.node for out in node.output}
    kept |= {init.name for init in converted.graph.initializer}
    names = [out for node in source.graph.node for out in node.output if out]
    names += [init.name for init in source.graph.initializer]
    return [name for name in names if name not in kept]


def _restore_names(source: ModelProto, converted: ModelProto) -> None:
    """Give tensors an adapter renamed their source names back, in place.

    For a source tensor missing from ``converted``, the tensor its readers read there (same
    node name, same input position; or the same graph-output position) is its new name; when
    every reader agrees on one name that the source does not use, it is renamed back
    everywhere (node inputs and outputs, graph outputs, value_info).
    """
    missing = set(_renamed_tensors(source, converted))
    if not missing:
        return
    taken = {out for node in source.graph.node for out in node.output}
    by_name = {node.name: node for node in converted.graph.node if node.name}
    candidates: dict[str, set[str]] = {name: set() for name in missing}
    for node in source.graph.node:
        twin = by_name.get(node.name)
        for index, name in enumerate(node.input):
            if name in missing:
                found = twin.input[index] if twin is not None and index < len(twin.input) else ""
                candidates[name].add(found)
    for index, value in enumerate(source.graph.output):
        if value.name in missing and index < len(converted.graph.output):
            candidates[value.name].add(converted.graph.output[index].name)
    mapping = {
        next(iter(found)): name
        for name, found in candidates.items()
        if len(found) == 1 and next(iter(found)) and next(iter(found)) not in taken
    }
    if not mapping:
        return
    for node in converted.graph.node:
        node.input[:] = [mapping.get(name, name) for name in node.input]
        node.output[:] = [mapping.get(name, name) for name in node.output]
    for value in [*converted.graph.output, *converted.graph.value_info]:
        value.name = mapping.get(value.name, value.name)


def gradient_ready(model: ModelProto, feeds: dict | None = None) -> ModelProto:
    """float32 (:func:`float32_copy`) and a recent opset (:func:`modern_opset_copy`); with
    ``feeds`` (arrays by input name, first axis = samples), one sample's dims pinned where the
    model leaves them dynamic, the batch axis kept free
    (:func:`onnxprune.graph.shapes.pin_sample_dims`): shapes computed from the image size at
    run time then resolve for the backward rules that need static dims."""
    if feeds:
        from onnxprune.graph.shapes import pin_sample_dims

        shapes = {name: tuple(value.shape[1:]) for name, value in feeds.items()}
        model = pin_sample_dims(model, shapes)
    return modern_opset_copy(float32_copy(model))
