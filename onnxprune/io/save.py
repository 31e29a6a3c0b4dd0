"""Save a model atomically, never over its input, with external data when it is large.

Files are written under temporary names in the destination folder and renamed into place
(``os.replace``), so a crash or error never leaves a half-written model at ``path``: the
external-data file first, then the model that points at it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import ModelProto

from onnxprune.errors import InputError
from onnxprune.io.external_data import external_files, has_external_data, write_tensors
from onnxprune.io.tensors import estimate_model_bytes, is_external, tensor_nbytes

PROTOBUF_LIMIT = 2**31 - 1
DEFAULT_SIZE_THRESHOLD = 2**31 - 2**20
# Tensors smaller than this stay inside the model file when saving with external data.
MIN_EXTERNAL_TENSOR_BYTES = 1024
# Files get the permissions a plain open() would give them (mkstemp creates them 0600).
_UMASK = os.umask(0)
os.umask(_UMASK)


def save_model(
    model: ModelProto,
    path: str | os.PathLike,
    *,
    input_path: str | os.PathLike | None = None,
    force: bool = False,
    external_data: bool | None = None,
    size_threshold: int = DEFAULT_SIZE_THRESHOLD,
) -> Path:
    """Write ``model`` to ``path`` atomically and return the path written.

    External data: with ``external_data=True``, or when ``None`` and the model is larger than
    ``size_threshold`` bytes, initializers of at least 1 KiB go to ``<file name>.data`` next to
    the model (location relative, e.g. ``model.onnx.data``). ``external_data=False`` on a model
    past the 2 GB protobuf limit raises InputError; no > 2 GB protobuf is ever serialized.

    Refuses (InputError): writing over ``input_path`` or any external-data file the input
    model file refers to (same file after resolving symlinks, always, even with ``force``);
    writing over an existing file unless ``force``; an unwritable folder; a model whose external
    data was not loaded. The caller's model is restored to inline data before returning.
    """
    target = Path(os.fspath(path))
    data_target = target.with_name(target.name + ".data")
    protected = _protected_files(input_path)
    for candidate in (target, data_target):
        if _is_protected(candidate, protected):
            raise InputError(f"refusing to write '{candidate}': it is the input model or its data")
    if target.is_dir():
        raise InputError(f"cannot write '{target}': it is a directory")
    if target.exists() and not force:
        raise InputError(f"output '{target}' exists (use --force to overwrite)")
    if has_external_data(model):
        raise InputError(
            "cannot save a model whose external data is not loaded "
            "(load it with load_model(..., load_external_data=True))"
        )
    use_external = _wants_external_data(model, external_data, size_threshold)
    if use_external and data_target.exists() and not force:
        raise InputError(f"output '{data_target}' exists (use --force to overwrite)")
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create folder '{folder}': {error.strerror or error}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"cannot write '{target}': folder '{folder}' is not writable")
    try:
        _write_atomically(model, target, data_target if use_external else None)
    except OSError as error:
        raise InputError(f"cannot write '{target}': {error.strerror or error}") from None
    return target


def _wants_external_data(model: ModelProto, external_data: bool | None, threshold: int) -> bool:
    """Decide on external data; InputError when ``False`` is impossible (model > 2 GB)."""
    size = estimate_model_bytes(model)
    if external_data is False:
        if size > PROTOBUF_LIMIT:
            raise InputError(
                f"the model is {size / 2**30:.2f} GiB, past the 2 GB protobuf limit; "
                "save it with external data"
            )
        return False
    return bool(external_data) or size > threshold


def _protected_files(input_path: str | os.PathLike | None) -> list[Path]:
    """The input model file and the external-data files it refers to (resolved)."""
    if input_path is None:
        return []
    source = Path(os.fspath(input_path))
    protected = [source]
    if source.is_file():
        with contextlib.suppress(OSError, DecodeError, ValueError, RuntimeError):
            skeleton = onnx.load_model(str(source), load_external_data=False)
            protected.extend(external_files(skeleton, source.parent))
    return protected


def _is_protected(candidate: Path, protected: list[Path]) -> bool:
    """True when ``candidate`` is one of ``protected`` (same inode, or same resolved path)."""
    for other in protected:
        if candidate.exists() and other.exists():
            with contextlib.suppress(OSError):
                if os.path.samefile(candidate, other):
                    return True
        if candidate.resolve() == other.resolve():
            return True
    return False


def _temp_file(folder: Path, name: str):
    """Open a new temporary file in ``folder`` (same file system as the destination)."""
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.chmod(descriptor, 0o666 & ~_UMASK)
    return os.fdopen(descriptor, "wb"), Path(temp_name)


def _write_atomically(model: ModelProto, target: Path, data_target: Path | None) -> None:
    """Write model (and data) to temporary files, then rename them; temporaries never remain."""
    temporaries: list[Path] = []
    backups = []
    try:
        if data_target is not None:
            handle, data_temp = _temp_file(target.parent, data_target.name)
            temporaries.append(data_temp)
            with handle:
                large = [
                    t
                    for t in model.graph.initializer
                    if not is_external(t) and tensor_nbytes(t) >= MIN_EXTERNAL_TENSOR_BYTES
                ]
                backups = write_tensors(large, handle, data_target.name)
                handle.flush()
                os.fsync(handle.fileno())
        if estimate_model_bytes(model) > PROTOBUF_LIMIT:
            raise InputError(
                "the model is past the 2 GB protobuf limit even with its initializers stored "
                "as external data (large Constant nodes? normalize the model first)"
            )
        payload = model.SerializeToString()
        handle, model_temp = _temp_file(target.parent, target.name)
        temporaries.append(model_temp)
        with handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        if data_target is not None:
            os.replace(temporaries[0], data_target)
        os.replace(model_temp, target)
        temporaries.clear()
    finally:
        for tensor, backup in backups:
            tensor.CopyFrom(backup)
        for temporary in temporaries:
            with contextlib.suppress(OSError):
                temporary.unlink()
