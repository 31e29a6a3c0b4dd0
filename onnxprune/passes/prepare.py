"""Load and preprocess in one call: the first step of every entry point."""

from __future__ import annotations

import os

from onnx import ModelProto

from onnxprune.io import load_model
from onnxprune.passes.pipeline import preprocess


def prepare(
    model: str | os.PathLike | ModelProto, input_shapes: dict[str, list[int]] | None = None
) -> tuple[ModelProto, ModelProto, list[str]]:
    """Load ``model`` (validated at the door) and run the default passes.

    Returns ``(original, preprocessed, notes)``: the loaded model as given, the normalized
    graph every later layer reads, and the passes' notes for the report.
    """
    original = load_model(model)
    result = preprocess(original, input_shapes=input_shapes)
    return original, result.model, list(result.notes)
