"""Synthetic random inputs for a model: used when no data is given (accuracy not measured)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from onnxprune.errors import InputError, input_shape_hint
from onnxprune.graph.input_ranges import DEFAULT_HIGH, InputRange, random_integers

# Integer inputs (token ids, indices) get values in [0, INT_HIGH): small enough to be a valid
# index for any embedding table or gather a real model would have.
INT_HIGH = DEFAULT_HIGH


def synthetic_dataset(
    input_specs: Sequence[tuple[str, np.dtype, list]],
    count: int,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    seed: int = 0,
    ranges: Mapping[str, InputRange] | None = None,
):
    """A :class:`~onnxprune.evaluate.data.Dataset` of ``count`` random samples, no labels.

    Per input: float dtypes draw standard normal values, bool a fair coin, integer dtypes
    values in the input's range from ``ranges`` (read from the model by
    :func:`onnxprune.graph.input_ranges.integer_input_ranges`: ``[0, table rows)`` for ids
    indexing an embedding Gather, a 0/1 prefix-of-ones padding mask for masks), otherwise
    uniform integers in ``[0, INT_HIGH)``. The sample shape is the input's shape after the first
    axis, with dynamic dimensions taken from ``input_shapes`` (missing -> InputError).
    """
    from onnxprune.evaluate.data import Dataset, expected_shape

    rng = np.random.default_rng(seed)
    inputs: dict[str, np.ndarray] = {}
    for spec in input_specs:
        name, dtype, _ = spec
        dims = expected_shape(spec, input_shapes)
        if not dims:
            raise InputError(f"model input '{name}' is a scalar: it has no axis of samples")
        dynamic = [axis for axis, d in enumerate(dims) if axis > 0 and d is None]
        if dynamic:
            raise InputError(
                f"model input '{name}' has dynamic dimension(s) at axis "
                f"{', '.join(map(str, dynamic))}: give {input_shape_hint(name)}"
            )
        shape = (count, *dims[1:])
        dtype = np.dtype(dtype)
        if dtype == np.bool_:
            array = rng.random(shape) < 0.5
        elif np.issubdtype(dtype, np.floating):
            array = rng.standard_normal(shape).astype(dtype)
        elif np.issubdtype(dtype, np.integer):
            value_range = (ranges or {}).get(name) or InputRange(0, INT_HIGH, "unknown", "")
            array = random_integers(rng, shape, dtype, value_range)
        else:
            raise InputError(f"model input '{name}': cannot make synthetic data of dtype {dtype}")
        inputs[name] = array
    return Dataset(inputs, None, f"synthetic:{count}")
