"""Datasets: model inputs (first axis = samples) with optional labels, and ``load_data``.

``load_data`` turns what a user gives (a ``.npz`` path, an ImageFolder-layout folder,
``synthetic:N``, a mapping of arrays, a bare array or a :class:`Dataset`) into a
:class:`Dataset` whose arrays match the model's inputs: one array per input name, the rank of
the input, its static dimensions (or the user's ``input_shapes``) on every axis but the first,
and its dtype. Any mismatch raises :class:`~onnxprune.errors.InputError` naming it.

``input_specs`` are ``(name, dtype, shape)`` triples as given by
``onnxprune.runtime.create_session(...).input_specs`` (dynamic dimensions are ``None`` or a
string); :func:`model_input_specs` reads the same from a ``ModelProto`` without a session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from onnxprune.errors import InputError
from onnxprune.io.arrays import check_array, first_nonfinite_sample, read_npz

LABELS_KEY = "labels"
GROUPS_KEY = "groups"
SYNTHETIC_PREFIX = "synthetic"
DEFAULT_SYNTHETIC_SAMPLES = 64

InputSpec = tuple[str, np.dtype, list]


@dataclass
class Dataset:
    """Model inputs keyed by input name (first axis = samples) and optional labels.

    ``source`` says where the data came from (a path, ``split of PATH``, ``synthetic`` or
    ``in-memory``); ``notes`` collects warnings made while loading (casts, ignored keys).
    ``targets`` keeps extra per-sample arrays that are not model inputs (detection boxes,
    segmentation masks: :mod:`onnxprune.evaluate.targets`); they follow every subset.
    ``groups`` (optional, one id per sample: the photo, video or recording a sample was cut
    from) makes :meth:`split` hold out whole groups, so that crops or frames of one source
    never sit on both sides of a calibration / evaluation split.
    """

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None = None
    source: str = "in-memory"
    notes: list[str] = field(default_factory=list)
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    groups: np.ndarray | None = None

    def __post_init__(self) -> None:
        where = f"data '{self.source}'"
        if not self.inputs:
            raise InputError(f"{where} has no input arrays")
        counts = {name: _samples(name, array, where) for name, array in self.inputs.items()}
        if len(set(counts.values())) > 1:
            detail = ", ".join(f"'{k}': {v}" for k, v in counts.items())
            raise InputError(f"{where}: arrays have different numbers of samples ({detail})")
        n = next(iter(counts.values()))
        if n == 0:
            raise InputError(f"{where} has no samples (array '{next(iter(counts))}' is empty)")
        if self.labels is not None:
            self.labels = np.asarray(self.labels)
            if self.labels.ndim == 0 or self.labels.shape[0] != n:
                got = "a scalar" if self.labels.ndim == 0 else f"{self.labels.shape[0]} entries"
                raise InputError(
                    f"{where}: array 'labels' has {got} but the data has {n} samples; "
                    "give one label per sample"
                )
        for key, array in self.targets.items():
            if np.ndim(array) == 0 or len(array) != n:
                raise InputError(f"{where}: array '{key}' does not have one entry per sample ({n})")
        if self.groups is not None:
            self.groups = np.asarray(self.groups)
            if self.groups.ndim != 1 or self.groups.shape[0] != n:
                raise InputError(
                    f"{where}: array '{GROUPS_KEY}' must hold one source id per sample "
                    f"({n}), got shape {tuple(self.groups.shape)}"
                )
            if self.groups.dtype.kind not in "iuUSb":
                raise InputError(
                    f"{where}: array '{GROUPS_KEY}' must hold integer or string ids, "
                    f"got dtype {self.groups.dtype}"
                )

    def __len__(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    def batches(self, batch_size: int) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray | None]]:
        """Yield ``(feeds, labels)`` for consecutive slices of ``batch_size`` samples (the last
        one may be shorter); ``labels`` is None when the data has none."""
        if batch_size < 1:
            raise InputError(f"batch size must be >= 1, got {batch_size}")
        for start in range(0, len(self), batch_size):
            stop = start + batch_size
            feeds = {name: array[start:stop] for name, array in self.inputs.items()}
            labels = None if self.labels is None else self.labels[start:stop]
            yield feeds, labels

    def subset(self, indices: Sequence[int] | np.ndarray, source: str | None = None) -> Dataset:
        """The samples at ``indices`` (in that order), same notes."""
        index = np.asarray(indices, dtype=np.int64)
        return Dataset(
            {name: array[index] for name, array in self.inputs.items()},
            None if self.labels is None else self.labels[index],
            source or self.source,
            list(self.notes),
            {key: array[index] for key, array in self.targets.items()},
            None if self.groups is None else self.groups[index],
        )

    def take(self, count: int) -> Dataset:
        """The first ``count`` samples (all when ``count >= len``)."""
        if count >= len(self):
            return self
        return self.subset(np.arange(count), f"first {count} of {self.source}")

    def split(self, fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
        """``(calibration, held_out)``: a seeded random ``fraction`` of the samples is held out,
        the rest is calibration. Disjoint, each non-empty, both in original sample order.

        With ``groups``, whole groups are held out: groups are taken in a seeded random order
        until the held-out share first reaches ``fraction`` of the samples (at least one group
        on each side). A single group cannot be split that way: the samples are then split
        one by one and a note says so."""
        if not 0.0 < fraction < 1.0:
            raise InputError(f"eval split must be between 0 and 1 (exclusive), got {fraction}")
        n = len(self)
        if n < 2:
            raise InputError(f"cannot split {n} sample(s) into calibration and evaluation data")
        rng = np.random.default_rng(seed)
        label = f"split of {self.source}"
        names = np.unique(self.groups) if self.groups is not None else np.array([])
        if len(names) >= 2:
            held_mask = np.zeros(n, dtype=bool)
            for name in rng.permutation(names):
                if held_mask.sum() >= fraction * n:
                    break
                candidate = held_mask | (self.groups == name)
                if candidate.all():
                    break
                held_mask = candidate
            held_index = np.flatnonzero(held_mask)
            calib_index = np.flatnonzero(~held_mask)
            held_groups = len(np.unique(self.groups[held_index]))
            label = f"{label} by '{GROUPS_KEY}'"
            return (
                self.subset(calib_index, f"{label} ({len(names) - held_groups} groups calibrate)"),
                self.subset(held_index, f"{label} ({held_groups} groups held out)"),
            )
        held = min(max(round(fraction * n), 1), n - 1)
        order = rng.permutation(n)
        held_index = np.sort(order[:held])
        calib_index = np.sort(order[held:])
        calibration = self.subset(calib_index, f"{label} ({1 - fraction:.0%} calibration)")
        evaluation = self.subset(held_index, f"{label} ({fraction:.0%} held out)")
        if len(names) == 1:
            note = f"'{GROUPS_KEY}' holds one group: the split is by sample, not by group"
            calibration.notes.append(note)
            evaluation.notes.append(note)
        return calibration, evaluation

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary: source, samples, has_labels, classes, inputs (shape, dtype)."""
        info: dict[str, Any] = {
            "source": self.source,
            "samples": len(self),
            "has_labels": self.has_labels,
            "inputs": {
                name: {"shape": list(array.shape[1:]), "dtype": str(array.dtype)}
                for name, array in self.inputs.items()
            },
        }
        if self.labels is not None and self.labels.ndim == 1:
            info["classes"] = int(np.unique(self.labels).size)
        return info


def _samples(name: str, array: np.ndarray, where: str = "data") -> int:
    if not isinstance(array, np.ndarray) or array.ndim == 0:
        raise InputError(f"{where}: array '{name}' must have a first axis of samples")
    return int(array.shape[0])


# -- model input specs -----------------------------------------------------------------------


def model_input_specs(model) -> list[InputSpec]:
    """``(name, numpy dtype, shape)`` of a ModelProto's real inputs (initializers excluded);
    dynamic dimensions (named, empty, or written as 0 or -1 as some exporters do) are their
    symbolic name or None."""
    from onnx import helper

    initializers = {i.name for i in model.graph.initializer}
    specs: list[InputSpec] = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type))
        shape: list = []
        for dim in tensor.shape.dim:
            if dim.HasField("dim_value") and dim.dim_value > 0:
                shape.append(int(dim.dim_value))
            else:
                shape.append(dim.dim_param or None)
        specs.append((value.name, dtype, shape))
    return specs


def shapes_from_data(
    input_specs: Sequence[InputSpec],
    dataset: Dataset,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, list[int]]:
    """``input_shapes`` completed from ``dataset``: every input with a dynamic dimension after
    the first (batch) axis that the caller did not fix gets ``[1, *sample shape]`` from the
    data's array (the data were conformed, so static dimensions agree)."""
    shapes = {name: list(dims) for name, dims in (input_shapes or {}).items()}
    for spec in input_specs:
        name, _, dims = spec
        if name in shapes or name not in dataset.inputs:
            continue
        if any(not (isinstance(d, int) and d > 0) for d in dims[1:]):
            shapes[name] = [1, *(int(d) for d in dataset.inputs[name].shape[1:])]
    return shapes


def expected_shape(spec: InputSpec, input_shapes: Mapping[str, Sequence[int]] | None) -> list:
    """The input's shape with the user's fixed shape (``input_shapes``) applied; entries that
    stay dynamic are None."""
    name, _, shape = spec
    fixed = (input_shapes or {}).get(name)
    if fixed is not None:
        if len(fixed) != len(shape):
            raise InputError(
                f"input_shapes[{name!r}]: {len(fixed)} dimensions given, the model input has "
                f"{len(shape)}"
            )
        return [int(d) for d in fixed]
    return [d if isinstance(d, int) and d > 0 else None for d in shape]


def _format_shape(shape: Sequence) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


# -- conforming arrays to the model ----------------------------------------------------------


def conform(
    dataset: Dataset,
    input_specs: Sequence[InputSpec],
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> Dataset:
    """Check ``dataset`` against the model inputs and return it with arrays in the model's
    dtypes. Names: every model input needs an array; for a single-input model a single array
    of another name is accepted. Shapes: the rank of the input, and on axes after the first
    the static (or ``input_shapes``) dimension. Dtypes: same kind (float/int/bool) is cast
    with a note, another kind is an error."""
    arrays = dict(dataset.inputs)
    notes = list(dataset.notes)
    names = [spec[0] for spec in input_specs]
    if len(input_specs) == 1 and names[0] not in arrays and len(arrays) == 1:
        only = next(iter(arrays))
        arrays = {names[0]: arrays[only]}
        notes.append(
            f"data array '{only}' is used as model input '{names[0]}' "
            "(the file's only array, the model's only input)"
        )
    missing = [name for name in names if name not in arrays]
    if missing:
        raise InputError(
            f"data has no array for model input(s) {', '.join(repr(m) for m in missing)} "
            f"(data arrays: {', '.join(repr(k) for k in dataset.inputs) or 'none'})"
        )
    extra = [key for key in arrays if key not in names]
    if extra:
        notes.append(f"data arrays not used by the model: {', '.join(extra)}")
    conformed: dict[str, np.ndarray] = {}
    for spec in input_specs:
        name, dtype, _ = spec
        array = np.asarray(arrays[name])
        check_array(name, array, dataset.source)
        _check_shape(name, array, expected_shape(spec, input_shapes))
        conformed[name] = _cast(name, array, np.dtype(dtype), notes)
        check_array(name, conformed[name], dataset.source)  # a cast can overflow to Inf
    if dataset.targets:
        from onnxprune.evaluate.targets import check_targets

        check_targets(dataset.targets, conformed, input_specs)
    return Dataset(
        conformed,
        _labels(dataset.labels, dataset.source),
        dataset.source,
        notes,
        dataset.targets,
        dataset.groups,
    )


def _check_shape(name: str, array: np.ndarray, expected: list) -> None:
    sample_shape = [None, *expected[1:]]
    if array.ndim != len(expected):
        raise InputError(
            f"data '{name}' has shape {tuple(array.shape)} (rank {array.ndim}) but model input "
            f"'{name}' has rank {len(expected)}: expected {_format_shape(sample_shape)} with "
            "samples on the first axis"
        )
    for axis in range(1, array.ndim):
        want = expected[axis]
        if want is not None and array.shape[axis] != want:
            raise InputError(
                f"data '{name}' has shape {tuple(array.shape)} but model input '{name}' expects "
                f"{_format_shape(sample_shape)} (axis {axis}: {array.shape[axis]} != {want})"
            )


def _kind(dtype: np.dtype) -> str:
    if dtype == np.bool_:
        return "bool"
    if np.issubdtype(dtype, np.floating):
        return "float"
    if np.issubdtype(dtype, np.integer):
        return "int"
    return str(dtype)


def _cast(name: str, array: np.ndarray, dtype: np.dtype, notes: list[str]) -> np.ndarray:
    if array.dtype == dtype:
        return array
    if _kind(array.dtype) != _kind(dtype):
        raise InputError(
            f"data '{name}' has dtype {array.dtype} but model input '{name}' expects {dtype}"
        )
    if _kind(dtype) in ("int", "float") and array.size:
        info = np.iinfo(dtype) if _kind(dtype) == "int" else np.finfo(dtype)
        finite = array[np.isfinite(array)] if _kind(dtype) == "float" else array
        if finite.size and (finite.min() < info.min or finite.max() > info.max):
            raise InputError(
                f"data '{name}': values up to {float(np.abs(finite).max()):.3g} do not fit the "
                f"model's dtype {dtype}"
            )
    notes.append(f"data '{name}' cast from {array.dtype} to {dtype}")
    return array.astype(dtype)


def _labels(labels: np.ndarray | None, source: str = "in-memory") -> np.ndarray | None:
    """Integer class labels stay; float labels holding whole numbers become int64; one-hot or
    soft labels (float, rank >= 2) stay as given. Class indices must be >= 0."""
    if labels is None:
        return None
    where = f"data '{source}': array 'labels'"
    labels = np.asarray(labels)
    if labels.dtype == np.bool_:
        return labels.astype(np.int64)
    if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)):
        raise InputError(f"{where} must be numeric, got dtype {labels.dtype}")
    if np.issubdtype(labels.dtype, np.floating):
        bad = first_nonfinite_sample(labels)
        if bad is not None:
            raise InputError(f"{where} holds NaN or Inf (first in sample {bad})")
    if np.issubdtype(labels.dtype, np.floating) and labels.ndim == 1:
        if not np.all(labels == np.round(labels)):
            raise InputError(f"{where} must hold integer class indices, got fractions")
        labels = labels.astype(np.int64)
    if labels.ndim == 1 and labels.size and labels.min() < 0:
        first = int(np.flatnonzero(labels < 0)[0])
        raise InputError(f"{where}: negative class index {labels[first]} in sample {first}")
    return labels


# -- loading ---------------------------------------------------------------------------------


def load_data(
    spec: Any,
    input_specs: Sequence[InputSpec],
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    preprocess: Any = None,
    *,
    labels_key: str | None = None,
    seed: int = 0,
    input_ranges: Mapping[str, Any] | None = None,
    augment_to: int | None = None,
    pixel_scales: Mapping[str, tuple[float, str]] | None = None,
    classify: Any = None,
    class_names: Any = None,
) -> Dataset:
    """Load ``spec`` as a :class:`Dataset` conformed to the model inputs (see module doc).

    ``class_names`` (:func:`onnxprune.graph.class_names.declared_class_names` of the model):
    an ImageFolder's class folders named after the model's declared classes are labelled by
    them, not by sorted order (:func:`onnxprune.evaluate.imagefolder.class_labels`).

    ``pixel_scales`` (:func:`onnxprune.graph.input_affine.image_pixel_scales` of the model):
    an image folder's pixel scale when its preprocessing spec sets no scale, mean or std and
    the model's graph normalizes raw pixels itself. ``classify``
    (:func:`onnxprune.evaluate.normalization_probe.photo_classifier` of the model): an image
    folder whose spec sets no normalization is probed with it, and a note names a clearly
    better one (:mod:`onnxprune.evaluate.normalization_probe`).

    ``augment_to`` (calibration data only): an image folder with fewer images is brought to
    about this many samples by random resized crops of each image, grouped by image
    (:mod:`onnxprune.evaluate.imagefolder`).

    ``input_ranges`` (:func:`onnxprune.graph.input_ranges.integer_input_ranges` of the model)
    keeps synthetic integer inputs valid (token ids below the table size, 0/1 masks).

    ``spec``: a :class:`Dataset`; a path to a ``.npz`` (arrays keyed by input name, optional
    ``labels`` or ``labels_key``; ``boxes``/``box_labels``/``masks`` become ``targets``); a
    folder of images with a COCO JSON or a ``masks/`` folder
    (:mod:`onnxprune.evaluate.annotated_folder`); a folder in ImageFolder layout (``preprocess``: a
    :class:`~onnxprune.evaluate.preprocess.Preprocess`, a mapping or a config path; else the
    folder's ``preprocess.toml|yaml|yml|json`` or defaults from the model input);
    ``"synthetic"`` / ``"synthetic:N"`` (random inputs, seeded by ``seed``); a mapping of
    arrays (``labels`` key optional); a bare array for a single-input model.
    """
    key = labels_key or LABELS_KEY
    if isinstance(spec, Dataset):
        raw = spec
    elif isinstance(spec, str | os.PathLike):
        raw = _load_path(
            spec,
            input_specs,
            input_shapes,
            preprocess,
            key,
            seed,
            input_ranges,
            augment_to,
            pixel_scales,
            classify,
            class_names,
        )
    elif isinstance(spec, Mapping):
        raw = _from_mapping(dict(spec), key, "in-memory")
    elif isinstance(spec, np.ndarray):
        raw = Dataset({"input": spec}, None, "in-memory")
    elif isinstance(spec, tuple) and len(spec) == 2:
        inputs, labels = spec
        if isinstance(inputs, np.ndarray):
            inputs = {"input": inputs}
        raw = Dataset(dict(inputs), labels, "in-memory")
    else:
        raise InputError(f"cannot use {type(spec).__name__} as data")
    return conform(raw, input_specs, input_shapes)


def calibration_data(
    spec: Any,
    model,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    *,
    seed: int = 0,
    batch_size: int = 32,
) -> Any:
    """Calibration data given to ``prune`` or ``sparsify``, at their door: a path (``.npz``,
    image folder, ``synthetic:N``) is loaded and checked against ``model``'s inputs once, an
    image folder of few photos with random crops (``defaults.PHOTO_CALIBRATION_SAMPLES``, as
    ``optimize``); any other form (a Dataset, a mapping, an object with ``batches``) is kept
    as it is. Whatever the form, the input ``model`` must run on the first ``batch_size``
    samples (:func:`onnxprune.calibrate.session.check_runs_on`): statistics passes run
    truncated copies of the graph, which can accept data the whole model refuses. None stays
    None."""
    if spec is None:
        return None
    if isinstance(spec, str | os.PathLike):
        from onnxprune.defaults import PHOTO_CALIBRATION_SAMPLES
        from onnxprune.evaluate.normalization_probe import photo_classifier
        from onnxprune.graph.class_names import declared_class_names
        from onnxprune.graph.input_affine import image_pixel_scales

        spec = load_data(
            spec,
            model_input_specs(model),
            input_shapes,
            seed=seed,
            augment_to=PHOTO_CALIBRATION_SAMPLES,
            pixel_scales=image_pixel_scales(model),
            classify=photo_classifier(model),
            class_names=declared_class_names(model),
        )
    from onnxprune.calibrate.session import check_runs_on

    check_runs_on(model, spec, batch_size=batch_size)
    return spec


def _load_path(
    spec,
    input_specs,
    input_shapes,
    preprocess,
    key,
    seed,
    ranges=None,
    augment_to=None,
    pixel_scales=None,
    classify=None,
    class_names=None,
) -> Dataset:
    text = os.fspath(spec)
    if text == SYNTHETIC_PREFIX or text.startswith(SYNTHETIC_PREFIX + ":"):
        from onnxprune.evaluate.synthetic import synthetic_dataset

        count = _synthetic_count(text)
        return synthetic_dataset(input_specs, count, input_shapes, seed=seed, ranges=ranges)
    path = Path(text)
    if not path.exists():
        raise InputError(f"data '{path}' does not exist")
    if path.is_dir():
        from onnxprune.evaluate.annotated_folder import is_annotated_folder, load_annotated_folder
        from onnxprune.evaluate.imagefolder import load_image_folder

        if is_annotated_folder(path):
            return load_annotated_folder(
                path, input_specs, input_shapes, preprocess, pixel_scales=pixel_scales
            )

        return load_image_folder(
            path,
            input_specs,
            input_shapes,
            preprocess,
            augment_to=augment_to,
            seed=seed,
            pixel_scales=pixel_scales,
            classify=classify,
            class_names=class_names,
        )
    if path.suffix.lower() == ".npz":
        return _load_npz(path, key)
    raise InputError(
        f"data '{path}': expected a .npz file, an image folder or synthetic:N "
        f"(got a '{path.suffix or 'no-extension'}' file)"
    )


def _synthetic_count(text: str) -> int:
    _, _, count = text.partition(":")
    if not count:
        return DEFAULT_SYNTHETIC_SAMPLES
    try:
        value = int(count)
    except ValueError:
        raise InputError(f"data '{text}': expected synthetic:N with an integer N") from None
    if value < 1:
        raise InputError(f"data '{text}': N must be >= 1")
    return value


def _load_npz(path: Path, key: str) -> Dataset:
    return _from_mapping(read_npz(path), key, str(path))


def _from_mapping(arrays: dict[str, Any], key: str, source: str) -> Dataset:
    from onnxprune.evaluate.targets import TARGET_KEYS

    targets = {name: np.asarray(arrays.pop(name)) for name in TARGET_KEYS if name in arrays}
    groups = arrays.pop(GROUPS_KEY, None)
    labels = arrays.pop(key, None)
    if key != LABELS_KEY and labels is None:
        raise InputError(f"data '{source}' has no '{key}' array for labels")
    inputs = {str(name): np.asarray(value) for name, value in arrays.items()}
    if not inputs:
        raise InputError(f"data '{source}' has no input arrays")
    return Dataset(
        inputs, None if labels is None else np.asarray(labels), source, [], targets, groups
    )
