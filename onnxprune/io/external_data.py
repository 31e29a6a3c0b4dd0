"""External tensor data (weights in ``<name>.onnx.data`` files): checking, loading, writing.

Locations are checked before any byte is read: a location must be a relative path that stays
inside the model's folder (no absolute path, no ``..`` component, no symlink that resolves
outside), the rule current onnx releases enforce since CVE-2022-25882.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from onnx import ModelProto, TensorProto, numpy_helper

from onnxprune.errors import ModelLoadError
from onnxprune.io.tensors import is_external, iter_model_tensors, tensor_nbytes

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
_TYPED_FIELDS = (
    "float_data",
    "int32_data",
    "string_data",
    "int64_data",
    "double_data",
    "uint64_data",
)


@dataclass(frozen=True)
class ExternalRef:
    """Where one tensor's data lives: ``location`` relative to the model folder, byte range."""

    location: str
    offset: int
    length: int | None


def external_ref(tensor: TensorProto) -> ExternalRef:
    """Parse the ``external_data`` key/value entries of an external tensor."""
    entries = {entry.key: entry.value for entry in tensor.external_data}
    try:
        offset = int(entries.get("offset", 0) or 0)
        length = int(entries["length"]) if entries.get("length") else None
    except ValueError:
        raise ModelLoadError(
            f"tensor '{tensor.name}' has a malformed external-data offset or length"
        ) from None
    return ExternalRef(entries.get("location", ""), offset, length)


def check_location(location: str, base_dir: Path, model_label: str) -> Path:
    """Return the file ``location`` names inside ``base_dir``; ModelLoadError if it escapes.

    Refused: empty locations, absolute paths (POSIX, UNC or drive letters), any ``..``
    component, and paths whose symlink-resolved target lies outside ``base_dir``.
    """
    prefix = f"cannot load model '{model_label}'"
    if not location:
        raise ModelLoadError(f"{prefix}: a tensor has external data without a location")
    if (
        os.path.isabs(location)
        or location.startswith(("/", "\\"))
        or _WINDOWS_DRIVE.match(location)
    ):
        raise ModelLoadError(
            f"{prefix}: external-data location '{location}' is an absolute path (refused)"
        )
    if ".." in re.split(r"[\\/]", location):
        raise ModelLoadError(
            f"{prefix}: external-data location '{location}' points outside the model's folder "
            "(refused)"
        )
    root = base_dir.resolve()
    target = (root / location).resolve()
    if target != root and root not in target.parents:
        raise ModelLoadError(
            f"{prefix}: external-data location '{location}' resolves outside the model's folder "
            "(refused)"
        )
    return target


def check_external_locations(model: ModelProto, base_dir: Path, model_label: str) -> None:
    """Check every external tensor's location with :func:`check_location` (no file is read)."""
    for tensor in iter_model_tensors(model):
        if is_external(tensor):
            check_location(external_ref(tensor).location, base_dir, model_label)


def has_external_data(model: ModelProto) -> bool:
    """True when at least one tensor keeps its data in an external file."""
    return any(is_external(tensor) for tensor in iter_model_tensors(model))


def external_files(model: ModelProto, base_dir: Path) -> set[Path]:
    """Resolved paths of the external-data files a model refers to (escaping ones skipped)."""
    files: set[Path] = set()
    for tensor in iter_model_tensors(model):
        if is_external(tensor):
            location = external_ref(tensor).location
            try:
                files.add(check_location(location, base_dir, ""))
            except ModelLoadError:
                continue
    return files


def model_files(path: str | os.PathLike) -> list[Path]:
    """A model file followed by the external-data files its tensors refer to (each once,
    sorted; the graph is read without the data). A file that cannot be parsed stands alone
    (callers ask about files the loader has already checked, or that onnxprune wrote)."""
    import onnx

    path = Path(os.fspath(path))
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:
        return [path]
    return [path, *sorted(f for f in external_files(proto, path.parent) if f.is_file())]


def model_file_bytes(path: str | os.PathLike) -> int:
    """Bytes on disk of a model file plus its external-data files (:func:`model_files`)."""
    return sum(f.stat().st_size for f in model_files(path))


def load_external_tensors(model: ModelProto, base_dir: Path, model_label: str) -> None:
    """Read every external tensor's bytes into ``raw_data`` (in place), after checking locations.

    Each tensor is read on its own, so the model never passes through one serialized protobuf.
    A missing data file or a byte range past its end raises ModelLoadError.
    """
    prefix = f"cannot load model '{model_label}'"
    tensors = [t for t in iter_model_tensors(model) if is_external(t)]
    refs = [external_ref(t) for t in tensors]
    targets = [check_location(ref.location, base_dir, model_label) for ref in refs]
    handles: dict[Path, BinaryIO] = {}
    try:
        for tensor, ref, target in zip(tensors, refs, targets, strict=True):
            if target not in handles:
                if not target.is_file():
                    raise ModelLoadError(
                        f"{prefix}: external-data file '{ref.location}' is missing"
                    )
                try:
                    handles[target] = open(target, "rb")  # noqa: SIM115 - closed in finally
                except OSError as error:
                    raise ModelLoadError(
                        f"{prefix}: cannot read external-data file '{ref.location}': "
                        f"{error.strerror}"
                    ) from None
            expected = ref.length if ref.length is not None else tensor_nbytes(tensor)
            handle = handles[target]
            handle.seek(ref.offset)
            data = handle.read(expected)
            if len(data) != expected:
                raise ModelLoadError(
                    f"{prefix}: external-data file '{ref.location}' is truncated "
                    f"(tensor '{tensor.name}' needs bytes {ref.offset}..{ref.offset + expected})"
                )
            tensor.raw_data = data
            del tensor.external_data[:]
            tensor.data_location = TensorProto.DEFAULT
    finally:
        for handle in handles.values():
            handle.close()


def tensor_bytes(tensor: TensorProto) -> bytes:
    """The tensor's data in ONNX raw (little-endian) layout, from raw_data or typed fields."""
    if tensor.HasField("raw_data"):
        return tensor.raw_data
    return numpy_helper.tobytes_little_endian(numpy_helper.to_array(tensor))


def make_external(tensor: TensorProto, location: str, offset: int, length: int) -> None:
    """Point ``tensor`` at ``length`` bytes at ``offset`` of ``location`` and drop inline data."""
    for field in ("raw_data", *_TYPED_FIELDS):
        tensor.ClearField(field)
    del tensor.external_data[:]
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key = key
        entry.value = value
    tensor.data_location = TensorProto.EXTERNAL


def write_tensors(
    tensors: Iterable[TensorProto], handle: BinaryIO, location: str
) -> list[tuple[TensorProto, TensorProto]]:
    """Append each tensor's bytes to ``handle`` and turn it into an external reference.

    Offsets are aligned to 4096 bytes for tensors of 1 MiB and more (page-aligned for memory
    mapping) and to 64 bytes otherwise. Returns (tensor, backup) pairs so that the caller can
    restore the inline data with ``tensor.CopyFrom(backup)``.
    """
    backups: list[tuple[TensorProto, TensorProto]] = []
    position = handle.tell()
    for tensor in tensors:
        data = tensor_bytes(tensor)
        alignment = 4096 if len(data) >= 2**20 else 64
        padding = -position % alignment
        if padding:
            handle.write(b"\0" * padding)
            position += padding
        handle.write(data)
        backup = TensorProto()
        backup.CopyFrom(tensor)
        backups.append((tensor, backup))
        make_external(tensor, location, position, len(data))
        position += len(data)
    return backups
