"""Synthetic inputs respect dtypes and fixed shapes."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.errors import InputError
from onnxprune.evaluate.data import load_data
from onnxprune.evaluate.synthetic import INT_HIGH, synthetic_dataset

SPECS = [
    ("x", np.dtype(np.float32), ["batch", 3, "h"]),
    ("ids", np.dtype(np.int64), ["batch", 4]),
    ("mask", np.dtype(np.bool_), ["batch", 4]),
]


def test_dtypes_shapes_and_seed():
    data = load_data("synthetic:5", SPECS, {"x": [1, 3, 7]}, seed=3)
    assert data.inputs["x"].shape == (5, 3, 7) and data.inputs["x"].dtype == np.float32
    ids = data.inputs["ids"]
    assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < INT_HIGH
    assert data.inputs["mask"].dtype == np.bool_
    assert data.labels is None and data.source == "synthetic:5"
    again = synthetic_dataset(SPECS, 5, {"x": [1, 3, 7]}, seed=3)
    assert np.array_equal(again.inputs["x"], data.inputs["x"])


def test_default_count_and_errors():
    specs = SPECS[1:]
    assert len(load_data("synthetic", specs)) == 64
    with pytest.raises(InputError, match=r"dynamic dimension.*axis 2.*input_shapes="):
        load_data("synthetic:2", SPECS)
    with pytest.raises(InputError, match="synthetic:N"):
        load_data("synthetic:many", specs)
    with pytest.raises(InputError, match=">= 1"):
        load_data("synthetic:0", specs)


def test_integer_inputs_use_the_ranges_read_from_the_model():
    from onnxprune.graph.input_ranges import InputRange

    specs = [
        ("ids", np.dtype(np.int64), ["batch", 6]),
        ("attention_mask", np.dtype(np.int64), ["batch", 6]),
    ]
    ranges = {
        "ids": InputRange(0, 3, "index", "table"),
        "attention_mask": InputRange(0, 2, "mask", "name"),
    }
    data = synthetic_dataset(specs, 40, seed=1, ranges=ranges)
    assert data.inputs["ids"].max() == 2
    mask = data.inputs["attention_mask"]
    assert mask[:, 0].all() and (np.diff(mask, axis=1) <= 0).all()
