"""Calibration input: turn what the user gives into a stream of ONNX Runtime feed dicts.

Accepted forms (first axis = samples everywhere):

* an object with ``batches(batch_size)`` yielding ``(feeds, labels)`` (a dataset object);
* a mapping of arrays by input name (extra keys such as ``labels`` or ``groups`` are ignored;
  a single array is matched to a single-input model whatever its key);
* a path to an ``.npz`` file holding such arrays.

Batches are cut at ``max_samples`` samples in total; floating arrays are cast to the dtype the
model input declares. Nothing is copied beyond the current batch. A model whose inputs fix the
batch dimension (an export at batch 1, say) gets batches of exactly that size: the batch size
asked for is replaced by it and a shorter last batch is left out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from onnx import ModelProto, helper

from onnxprune.errors import InputError
from onnxprune.io.arrays import check_array, read_npz

Feeds = dict[str, np.ndarray]


def input_dtypes(model: ModelProto) -> dict[str, np.dtype]:
    """Numpy dtype of every graph input that is not an initializer."""
    initializers = {init.name for init in model.graph.initializer}
    dtypes = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        elem = value.type.tensor_type.elem_type
        dtypes[value.name] = np.dtype(helper.tensor_dtype_to_np_dtype(elem)) if elem else None
    return dtypes


def _load(calibration: Any) -> Any:
    if isinstance(calibration, (str, os.PathLike)):
        path = Path(calibration)
        if path.suffix != ".npz" or not path.is_file():
            raise InputError(f"calibration data must be an existing .npz file, got '{path}'")
        arrays = read_npz(path, "calibration data")
        for key, array in arrays.items():
            if key != "labels":
                check_array(key, array, str(path))
        return arrays
    return calibration


def _match_inputs(arrays: Mapping[str, Any], names: list[str]) -> dict[str, np.ndarray]:
    found = {name: np.asarray(arrays[name]) for name in names if name in arrays}
    if len(found) == len(names):
        for name, array in found.items():
            check_array(name, array, "calibration data")
        return found
    candidates = [key for key in arrays if key not in ("labels", "groups")]
    if len(names) == 1 and len(candidates) == 1:
        array = np.asarray(arrays[candidates[0]])
        check_array(candidates[0], array, "calibration data")
        return {names[0]: array}
    missing = ", ".join(n for n in names if n not in arrays)
    raise InputError(f"calibration data has no array for model input(s): {missing}")


def _cast(feeds: Mapping[str, Any], dtypes: dict[str, np.dtype | None]) -> Feeds:
    out = {}
    for name, value in feeds.items():
        if name not in dtypes:
            continue
        array = np.asarray(value)
        dtype = dtypes[name]
        if dtype is not None and array.dtype != dtype:
            array = array.astype(dtype)
        out[name] = array
    missing = [name for name in dtypes if name not in out]
    if missing:
        raise InputError(f"calibration batch lacks model input(s): {', '.join(missing)}")
    return out


def _batch_len(feeds: Mapping[str, np.ndarray]) -> int:
    return int(next(iter(feeds.values())).shape[0]) if feeds else 0


def fixed_batch_size(model: ModelProto) -> int | None:
    """The batch size the model's inputs fix (a static first dimension > 0 shared by every
    input that has one), None when the batch dimension is free."""
    initializers = {init.name for init in model.graph.initializer}
    sizes = {
        value.type.tensor_type.shape.dim[0].dim_value
        for value in model.graph.input
        if value.name not in initializers
        and value.type.tensor_type.shape.dim
        and value.type.tensor_type.shape.dim[0].HasField("dim_value")
        and value.type.tensor_type.shape.dim[0].dim_value > 0
    }
    return sizes.pop() if len(sizes) == 1 else None


def iter_feeds(
    calibration: Any,
    model: ModelProto,
    *,
    batch_size: int = 32,
    max_samples: int | None = None,
) -> Iterator[Feeds]:
    """Yield feed dicts for ``model`` from ``calibration`` (see module docstring)."""
    if calibration is None:
        raise InputError("calibration data is required (give data=...)")
    if batch_size < 1:
        raise InputError(f"batch size must be >= 1, got {batch_size}")
    dtypes = input_dtypes(model)
    source = _load(calibration)
    fixed = fixed_batch_size(model)
    batch_size = fixed or batch_size
    left = np.inf if max_samples is None else int(max_samples)
    if hasattr(source, "batches"):
        stream = (feeds for feeds, _labels in source.batches(batch_size))
    elif isinstance(source, Mapping):
        arrays = _match_inputs(source, list(dtypes))
        total = min(int(a.shape[0]) for a in arrays.values()) if arrays else 0
        stream = (
            {name: a[start : start + batch_size] for name, a in arrays.items()}
            for start in range(0, total, batch_size)
        )
    else:
        raise InputError(
            f"unsupported calibration data of type {type(source).__name__}: give a .npz path, "
            "a mapping of arrays or an object with batches(batch_size)"
        )
    produced = 0
    for feeds in stream:
        if left <= 0:
            break
        batch = _cast(feeds, dtypes)
        size = _batch_len(batch)
        if size > left:
            batch = {name: value[: int(left)] for name, value in batch.items()}
            size = int(left)
        if size == 0 or (fixed is not None and size != fixed):
            continue
        left -= size
        produced += size
        yield batch
    if produced == 0:
        raise InputError("calibration data holds no samples")


def sample_count(calibration: Any, max_samples: int | None = None) -> int | None:
    """Samples :func:`iter_feeds` will yield when it can be told without reading the data
    (mappings, ``.npz`` paths, objects with ``len``), capped by ``max_samples``; else
    ``max_samples`` (None when neither is known)."""
    count = None
    if isinstance(calibration, (str, os.PathLike)):
        path = Path(calibration)
        if path.suffix == ".npz" and path.is_file():
            arrays = read_npz(path, "calibration data")
            sizes = [np.shape(a)[0] for k, a in arrays.items() if k != "labels" and np.ndim(a)]
            count = min(sizes) if sizes else None
    elif isinstance(calibration, Mapping):
        sizes = [np.shape(v)[0] for k, v in calibration.items() if k != "labels" and np.ndim(v)]
        count = min(sizes) if sizes else None
    elif hasattr(calibration, "__len__"):
        count = len(calibration)
    if count is None:
        return max_samples
    return count if max_samples is None else min(count, max_samples)
