"""Calibration samples as model feeds, and batched ONNX Runtime runs on CPU.

``calibration_feeds`` accepts what the rest of onnxprune passes around as calibration data: a
mapping of arrays keyed by input name (a single-input model may use any one non-label key), a
dataset object with an ``inputs`` mapping, an object whose ``batches(batch_size)`` yields
``(feeds, labels)``, or a bare array for a single-input model. The first axis is the sample
axis; at most ``max_samples`` samples are kept.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from onnx import ModelProto

from onnxprune.errors import InputError
from onnxprune.io.provenance import session_failure

LABEL_KEYS = ("labels", "label", "targets", "y")


def model_inputs(model: ModelProto) -> list[str]:
    """Graph inputs that are not initializers."""
    initializers = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in initializers]


def _from_mapping(arrays: Mapping, names: list[str]) -> dict[str, np.ndarray]:
    if all(name in arrays for name in names):
        return {name: np.asarray(arrays[name]) for name in names}
    candidates = [k for k in arrays if k not in LABEL_KEYS]
    if len(names) == 1 and len(candidates) == 1:
        return {names[0]: np.asarray(arrays[candidates[0]])}
    missing = [name for name in names if name not in arrays]
    raise InputError(
        f"calibration data has no array for input(s) {', '.join(missing)} "
        f"(keys: {', '.join(map(str, arrays)) or 'none'})"
    )


def _from_batches(data, names: list[str], max_samples: int) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    count = 0
    for item in data.batches(min(max_samples, 256)):
        feeds = item[0] if isinstance(item, tuple) else item
        feeds = _from_mapping(feeds, names)
        for name in names:
            parts[name].append(feeds[name])
        count += len(next(iter(feeds.values())))
        if count >= max_samples:
            break
    if not count:
        raise InputError("calibration data yielded no samples")
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def calibration_feeds(data, names: list[str], max_samples: int = 128) -> dict[str, np.ndarray]:
    """At most ``max_samples`` samples of ``data`` as {input name: array} (see module doc)."""
    if max_samples < 1:
        raise InputError(f"max-samples must be >= 1, got {max_samples}")
    if data is None:
        raise InputError("sensitivity analysis needs calibration data")
    if isinstance(data, np.ndarray):
        if len(names) != 1:
            raise InputError(f"a bare array feeds one input, the model has {len(names)}")
        feeds = {names[0]: data}
    elif isinstance(data, Mapping):
        feeds = _from_mapping(data, names)
    elif isinstance(getattr(data, "inputs", None), Mapping):
        feeds = _from_mapping(data.inputs, names)
    elif hasattr(data, "batches"):
        feeds = _from_batches(data, names, max_samples)
    else:
        raise InputError(f"unsupported calibration data of type {type(data).__name__}")
    lengths = {name: (array.shape[0] if array.ndim else 0) for name, array in feeds.items()}
    if len(set(lengths.values())) != 1 or 0 in lengths.values():
        raise InputError(f"calibration arrays need one common, non-empty sample axis: {lengths}")
    return {name: array[:max_samples] for name, array in feeds.items()}


def check_feeds(model: ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Feeds checked against the model's inputs: rank and static dimensions (the sample axis
    excepted) must match; floating data is cast to the input's floating dtype, any other dtype
    mismatch is an InputError."""
    from onnx.helper import tensor_dtype_to_np_dtype

    checked = {}
    for value in model.graph.input:
        if value.name not in feeds:
            continue
        array = np.asarray(feeds[value.name])
        tensor_type = value.type.tensor_type
        want = np.dtype(tensor_dtype_to_np_dtype(tensor_type.elem_type))
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
        if tensor_type.HasField("shape") and (
            array.ndim != len(dims)
            or any(d is not None and d != n for d, n in zip(dims[1:], array.shape[1:], strict=True))
        ):
            expected = ",".join("?" if d is None else str(d) for d in dims)
            raise InputError(
                f"calibration input '{value.name}' has shape {list(array.shape)}, "
                f"the model expects [{expected}]"
            )
        if array.dtype != want:
            same_kind = np.issubdtype(array.dtype, np.floating) and np.issubdtype(want, np.floating)
            if not same_kind:
                raise InputError(
                    f"calibration input '{value.name}' is {array.dtype}, the model expects {want}"
                )
            array = array.astype(want)
        checked[value.name] = array
    return checked


def _cpu_session(model: ModelProto):
    """A CPU ONNX Runtime session of ``model`` (the single place sessions are made here);
    ZipMap outputs come as the probability tensors they view (measuring, not writing)."""
    from onnxprune.graph.tensor_outputs import tensor_output_model

    model = tensor_output_model(model)
    try:
        from onnxprune.runtime import create_session
    except ImportError:
        create_session = None
    if create_session is not None:
        runner = create_session(model, provider="cpu")
        return runner.input_specs, runner.output_names, runner.run
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # errors come back as exceptions
    try:
        session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:
        raise session_failure(model, error) from None
    specs = [(i.name, None, list(i.shape)) for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    return specs, outputs, lambda feeds: session.run(outputs, feeds)


def run_model(
    model: ModelProto, feeds: dict[str, np.ndarray], batch_size: int = 64
) -> list[np.ndarray]:
    """Outputs of ``model`` on ``feeds``, run in chunks of ``batch_size`` samples (or of the
    model's fixed batch dimension) and concatenated along the sample axis; with a fixed batch dimension the samples beyond the
    last whole batch are left out."""
    specs, _, run = _cpu_session(model)
    first_dims = [shape[0] if shape else None for _, _, shape in specs]
    fixed = [d for d in first_dims if isinstance(d, int) and d > 0]
    step = fixed[0] if fixed else batch_size
    total = len(next(iter(feeds.values())))
    if fixed:
        total -= total % step  # a fixed batch dimension: whole batches only
    if total == 0:
        raise InputError(f"the model's batch dimension is fixed at {step}: too few samples")
    chunks: list[list[np.ndarray]] = []
    for start in range(0, total, step):
        outputs = run({name: array[start : start + step] for name, array in feeds.items()})
        chunks.append([np.asarray(o) for o in outputs])
    return [np.concatenate(parts) for parts in zip(*chunks, strict=True)]
