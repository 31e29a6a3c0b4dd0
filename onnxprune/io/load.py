"""Load an ONNX model from a path or a ModelProto, with its external data, safely.

Every way a file can fail to be a usable model (missing, directory, empty, truncated, not ONNX,
newer IR or opset than the installed onnx supports, external data escaping the model's folder or
missing) raises :class:`~onnxprune.errors.ModelLoadError` with one line naming the file; then
:func:`onnxprune.io.validate.validate_model` checks the graph itself (once, at the door).
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import ModelProto

from onnxprune.errors import ModelLoadError
from onnxprune.io.explicit_defaults import write_explicit_defaults
from onnxprune.io.external_data import (
    check_external_locations,
    has_external_data,
    load_external_tensors,
)
from onnxprune.io.legacy_ops import lower_legacy_ops
from onnxprune.io.provenance import first_line, register_input_model
from onnxprune.io.validate import validate_model, validate_text

ModelSource = str | os.PathLike | ModelProto


def load_model(
    source: ModelSource,
    *,
    load_external_data: bool = True,
    base_dir: str | os.PathLike | None = None,
) -> ModelProto:
    """Return the model at ``source`` (a path, or a ModelProto that is copied, never mutated).

    With ``load_external_data`` every tensor stored in an external file (``<name>.onnx.data``)
    is read into the returned model tensor by tensor, so models over 2 GB load without ever
    forming a > 2 GB serialized protobuf. External locations are checked first and must stay in
    the model's folder (relative, no ``..``, no symlink out). For a ModelProto with external
    references, ``base_dir`` is the folder they are relative to (required to load them).
    Without ``load_external_data`` the references are kept (locations still checked).
    Experimental ops of ONNX's first opsets that ``onnx.defs`` no longer knows are rewritten
    to standard ops before validation (:mod:`onnxprune.io.legacy_ops`), and attribute defaults
    onnx's own inference needs spelled out are written (:mod:`onnxprune.io.explicit_defaults`).

    Raises ModelLoadError (one line naming the file) for a missing file, a directory, an empty,
    truncated or non-ONNX file, an IR version or default-domain opset newer than the installed
    onnx supports, and for external data that escapes the folder, is missing or is truncated.
    """
    if isinstance(source, ModelProto):
        label = "<in-memory model>"
        model = ModelProto()
        model.CopyFrom(source)
        folder = Path(base_dir) if base_dir is not None else None
    elif isinstance(source, (str, os.PathLike)):
        path = Path(os.fspath(source))
        label = str(path)
        model = _read_model_file(path)
        folder = Path(base_dir) if base_dir is not None else path.parent
    else:
        raise TypeError(f"load_model expects a path or an onnx.ModelProto, got {type(source)!r}")
    validate_model_proto(model, label)
    if has_external_data(model):
        if folder is None:
            if load_external_data:
                raise ModelLoadError(
                    f"cannot load model '{label}': it references external data; "
                    "pass base_dir (the folder of its data files)"
                )
        elif load_external_data:
            load_external_tensors(model, folder, label)
        else:
            check_external_locations(model, folder, label)
    lower_legacy_ops(model)
    write_explicit_defaults(model)
    validate_model(model, label)
    _inline_local_functions(model, label)
    _decode_stored_weights(model, label)
    register_input_model(model, label, None if isinstance(source, ModelProto) else label)
    return model


def _inline_local_functions(model: ModelProto, label: str) -> None:
    """Calls of the model's local functions become the nodes they stand for, in place.

    Exporters may wrap modules as ONNX local functions (PyTorch's
    ``export_modules_as_functions``, onnxscript): every Conv inside such a call is invisible to
    MAC counting, the channel analysis and sparsity (a call is an op of its own domain), and
    rewriting the graph failed on them. ``onnx.inliner`` expands the calls (same outputs); the
    result is validated again like any input, and written inlined.
    """
    if not model.functions:
        return
    import onnx.inliner

    try:
        inlined = onnx.inliner.inline_local_functions(model)
    except Exception as error:  # the inliner raises C++ errors of several types
        raise ModelLoadError(
            f"cannot load model '{label}': its local functions could not be inlined "
            f"({first_line(error)})"
        ) from None
    model.CopyFrom(inlined)
    validate_model(model, label)


def _decode_stored_weights(model: ModelProto, label: str) -> None:
    """Weights onnxprune wrote as bitmask + non-zeros (:mod:`onnxprune.io.bitmask`) become
    dense initializers again, so every later step sees ordinary constant weights."""
    from onnxprune.io.bitmask import decode_bitmask

    try:
        decode_bitmask(model.graph)
    except (KeyError, ValueError, IndexError) as error:
        raise ModelLoadError(
            f"cannot load model '{label}': its bitmask-stored weights are incomplete ({error})"
        ) from None


def check_model_files(sources) -> None:
    """Validate every model path in ``sources`` once (external weights not read) for commands
    that hand paths straight to ONNX Runtime; ModelProtos are skipped (already loaded)."""
    for source in sources:
        if isinstance(source, (str, os.PathLike)):
            load_model(source, load_external_data=False)


def _read_model_file(path: Path) -> ModelProto:
    """Parse the protobuf in ``path``; ModelLoadError for anything that is not a readable file."""
    prefix = f"cannot load model '{path}'"
    if not path.exists():
        raise ModelLoadError(f"{prefix}: no such file")
    if path.is_dir():
        raise ModelLoadError(f"{prefix}: is a directory, not an ONNX file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ModelLoadError(f"{prefix}: {error.strerror or error}") from None
    if not data:
        raise ModelLoadError(f"{prefix}: the file is empty")
    model = ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError):
        raise ModelLoadError(
            f"{prefix}: not an ONNX model, or the file is truncated or corrupt "
            f"({len(data):,} bytes could not be parsed)"
        ) from None
    return model


def validate_model_proto(model: ModelProto, label: str) -> None:
    """Reject protos that parsed but are not usable ONNX models.

    Checks: a graph is present; the IR version is set and not newer than ``onnx.IR_VERSION``;
    opset imports are present (IR >= 3) and the default-domain opset is not newer than the
    installed onnx knows; the graph has outputs. A truncated or foreign file fails one of these
    even when its prefix happened to parse; the graph itself is checked by
    :func:`onnxprune.io.validate.validate_model` once external data is in.
    """
    prefix = f"cannot load model '{label}'"
    if not model.HasField("graph") or not model.ir_version:
        raise ModelLoadError(f"{prefix}: not an ONNX model (no graph or IR version)")
    validate_text(model, label)
    if model.ir_version > onnx.IR_VERSION:
        raise ModelLoadError(
            f"{prefix}: IR version {model.ir_version} is newer than the installed onnx "
            f"{onnx.__version__} supports (IR {onnx.IR_VERSION}); upgrade onnx"
        )
    if model.ir_version >= 3 and not model.opset_import:
        raise ModelLoadError(f"{prefix}: no opset import (truncated or not an ONNX model)")
    newest = onnx.defs.onnx_opset_version()
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version > newest:
            raise ModelLoadError(
                f"{prefix}: opset {opset.version} is newer than the installed onnx "
                f"{onnx.__version__} supports (opset {newest}); upgrade onnx"
            )
    if not model.graph.output:
        raise ModelLoadError(f"{prefix}: the graph has no outputs (truncated or corrupt)")
