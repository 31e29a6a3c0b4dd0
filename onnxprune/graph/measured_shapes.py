"""Shapes that static inference cannot see, measured by running the model once.

ONNX shape inference gives up on shape computations it cannot evaluate symbolically, e.g. a
BERT position-id slice ``position_ids[:, :Shape(input_ids)[1]]`` from a [1, 512] buffer, and
every shape downstream is then unknown. At fixed input shapes the real shapes are one ONNX
Runtime run away: ``measure_shapes`` runs the model on CPU with every node output exposed as a
graph output and returns the shape of each value. ``fill_unknown_shapes`` merges them into the
statically inferred shapes where those are unknown or partly symbolic, and lists which tensors
were measured (callers report it).

The measured values are only *shapes at these input shapes*; nothing here writes them into the
model, so shape constants that depend on dynamic dimensions stay dynamic in any written model.
Feeds: the caller's (e.g. one calibration sample), or :func:`valid_random_feeds` at the fixed
input shapes, with integer inputs in the range read from the model
(:mod:`onnxprune.graph.input_ranges`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import ModelProto

from onnxprune.graph.input_ranges import integer_input_ranges, random_integers
from onnxprune.graph.shapes import Shape

# Protobufs are limited to 2 GB: larger models are not measured (static shapes only).
_MEASURE_LIMIT = 2**31 - 2**20


def valid_random_feeds(model: ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs at the model's declared input shapes (every dim must be fixed): floats
    standard normal, bool a fair coin, integers in the range the model accepts."""
    rng = np.random.default_rng(seed)
    ranges = integer_input_ranges(model)
    initializers = {init.name for init in model.graph.initializer}
    feeds: dict[str, np.ndarray] = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
        shape = tuple(int(d.dim_value) for d in tensor_type.shape.dim)
        if dtype == np.bool_:
            feed = rng.random(shape) < 0.5
        elif np.issubdtype(dtype, np.integer):
            feed = random_integers(rng, shape, dtype, ranges[value.name])
        else:
            feed = rng.standard_normal(shape)
        feeds[value.name] = np.asarray(feed, dtype=dtype)  # rank 0 gives a numpy scalar
    return feeds


def measure_shapes(
    model: ModelProto, feeds: Mapping[str, np.ndarray] | None = None
) -> dict[str, tuple[int, ...]]:
    """Shape of every main-graph node output when ``model`` runs on ``feeds`` (default:
    :func:`valid_random_feeds`, which needs fixed input shapes). Raises what ONNX Runtime
    raises when the model cannot run; returns {} for models over 2 GB."""
    import onnxruntime as ort

    if model.ByteSize() >= _MEASURE_LIMIT:
        return {}
    exposed = ModelProto()
    exposed.CopyFrom(model)
    declared = {value.name for value in exposed.graph.output}
    names = [
        name for node in exposed.graph.node for name in node.output if name and name not in declared
    ]
    exposed.graph.output.extend(onnx.ValueInfoProto(name=name) for name in names)
    del exposed.graph.value_info[:]
    options = ort.SessionOptions()
    options.log_severity_level = 4  # failures come back as exceptions, not log lines
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        exposed.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    feeds = dict(feeds) if feeds is not None else valid_random_feeds(model)
    outputs = [output.name for output in session.get_outputs()]
    values = session.run(outputs, feeds)
    return {
        name: tuple(int(d) for d in np.shape(value))
        for name, value in zip(outputs, values, strict=True)
        if isinstance(value, np.ndarray)
    }


_MEASURED = "static inference could not resolve were measured by running the model"


def measured_note(count: int, where: str) -> str:
    """The report line for ``count`` tensor shapes measured by one run, ``where`` saying how
    (``in ONNX Runtime at input_ids=[1, 16]``, ...)."""
    return f"{count} tensor shape(s) {_MEASURED} {where}"


def says_measured(note: str) -> bool:
    """True for a line made by :func:`measured_note`."""
    return _MEASURED in note


def measuring_failed_note(error: BaseException) -> str:
    """The report line when the run that would measure shapes fails (first 160 characters)."""
    reason = " ".join(str(error).split())[:160]
    return f"static shape inference was incomplete and measuring shapes failed: {reason}"


def is_unknown(shape: Shape | None) -> bool:
    """True when a static shape is missing or has a symbolic/unknown dimension."""
    return shape is None or any(d is None or not isinstance(d, int) or d < 0 for d in shape)


def fill_unknown_shapes(
    shapes: dict[str, Shape], measured: Mapping[str, tuple[int, ...]]
) -> list[str]:
    """Put measured shapes into ``shapes`` (in place) where the static one is unknown and the
    ranks agree (or no rank was known); return the names filled, sorted."""
    filled = []
    for name, shape in measured.items():
        static = shapes.get(name)
        if not is_unknown(static):
            continue
        if static is not None and len(static) != len(shape):
            continue
        shapes[name] = tuple(shape)
        filled.append(name)
    return sorted(filled)


def needs_measurement(model: ModelProto, shapes: Mapping[str, Shape]) -> bool:
    """True when some node output of the main graph has no fully known static shape."""
    return any(
        is_unknown(shapes.get(name)) for node in model.graph.node for name in node.output if name
    )
