"""Checks on output paths made before any work, so a bad path fails fast (exit 2)."""

from __future__ import annotations

import os
from pathlib import Path

from onnxprune.errors import InputError


def default_output(model: str | os.PathLike) -> Path:
    """``MODEL`` with ``.onnx`` replaced by ``.pruned.onnx`` (appended when absent)."""
    path = Path(model)
    return path.with_name(path.name.removesuffix(".onnx") + ".pruned.onnx")


def check_writable(path: Path, input_path: Path | None, force: bool) -> None:
    """Raise InputError when ``path`` is the input, a folder, exists without ``force``, or
    cannot be created (nearest existing parent is not a writable folder)."""
    path = Path(path)
    same = input_path is not None and Path(input_path).exists() and path.exists()
    if same and path.resolve() == Path(input_path).resolve():
        raise InputError(f"refusing to write '{path}': it is the input model")
    if path.is_dir():
        raise InputError(f"cannot write '{path}': it is a directory")
    if path.exists() and not force:
        raise InputError(f"output '{path}' exists (use --force to overwrite)")
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write '{path}': '{parent}' is not a writable folder")
