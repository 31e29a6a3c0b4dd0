"""Static shapes completed by one ONNX Runtime run, for the analyses that read a GraphView.

The channel analysis and the block search both need every tensor's shape at fixed input
shapes; where ONNX inference gives up (a BERT position-id slice from a buffer), the shapes are
measured (:mod:`onnxprune.graph.measured_shapes`) and the report says so.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from onnx import ModelProto

from onnxprune.analysis.graph_view import GraphView
from onnxprune.graph.measured_shapes import (
    fill_unknown_shapes,
    measured_note,
    measuring_failed_note,
    needs_measurement,
)
from onnxprune.graph.measured_shapes import measure_shapes as run_and_measure
from onnxprune.graph.shapes import fix_input_shapes


def measure_missing_shapes(
    model: ModelProto,
    view: GraphView,
    input_shapes: dict[str, list[int]] | None,
    feeds: Mapping[str, np.ndarray] | None,
) -> list[str]:
    """Fill ``view.shapes`` gaps with shapes measured in ONNX Runtime at ``input_shapes`` (or
    on ``feeds``); returns the notes for the report (what was measured, or why not)."""
    if not needs_measurement(model, view.shapes):
        return []
    try:
        measured = run_and_measure(fix_input_shapes(model, input_shapes), feeds)
    except Exception as error:  # the model may not run here (custom ops): stay static
        return [measuring_failed_note(error)]
    filled = fill_unknown_shapes(view.shapes, measured)
    if not filled:
        return []
    at = ", ".join(f"{name}={list(dims)}" for name, dims in _feed_shapes(view, feeds).items())
    return [measured_note(len(filled), f"in ONNX Runtime at {at}")]


def _feed_shapes(view: GraphView, feeds) -> dict[str, tuple]:
    if feeds is not None:
        return {name: tuple(np.shape(value)) for name, value in feeds.items()}
    return {name: view.shapes.get(name) or () for name in view.graph_inputs}
