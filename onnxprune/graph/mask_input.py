"""The attention-mask input of a text model: the one rank-2 integer graph input whose name
contains "mask" (Hugging Face exports: ``attention_mask``; nonzero = a real token).

Shared by the calibration rows that leave padding tokens out
(:mod:`onnxprune.calibrate.padding`) and the distillation loss that pools sentence embeddings
over the real tokens (:func:`onnxprune.autodiff.losses.embedding_cosine`).
"""

from __future__ import annotations

from onnx import ModelProto, TensorProto

_INTEGER_TYPES = {
    TensorProto.INT64,
    TensorProto.INT32,
    TensorProto.INT16,
    TensorProto.INT8,
    TensorProto.UINT8,
    TensorProto.BOOL,
}


def mask_input(model: ModelProto) -> str | None:
    """The attention-mask graph input (see the module docstring), or None."""
    initializers = {init.name for init in model.graph.initializer}
    found = [
        value.name
        for value in model.graph.input
        if value.name not in initializers
        and "mask" in value.name.lower()
        and value.type.tensor_type.elem_type in _INTEGER_TYPES
        and len(value.type.tensor_type.shape.dim) == 2
    ]
    return found[0] if len(found) == 1 else None
