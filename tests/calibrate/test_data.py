"""Calibration input forms: mappings, .npz paths, dataset objects; casts and sample caps."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.calibrate import iter_feeds, sample_count
from onnxprune.errors import InputError
from tests.calibrate.tiny import gemm_chain


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    return gemm_chain(rng.normal(size=(4, 3)), rng.normal(size=4), rng.normal(size=(4, 2)))


class _Data:
    def __init__(self, n: int) -> None:
        self.x = np.arange(n * 3, dtype=np.float64).reshape(n, 3)

    def __len__(self) -> int:
        return len(self.x)

    def batches(self, batch_size):
        for start in range(0, len(self.x), batch_size):
            yield {"x": self.x[start : start + batch_size]}, None


def test_mapping_batches_are_cut_cast_and_capped(model):
    x = np.arange(30, dtype=np.float64).reshape(10, 3)
    batches = list(iter_feeds({"x": x, "labels": np.zeros(10)}, model, batch_size=4, max_samples=7))
    assert [b["x"].shape[0] for b in batches] == [4, 3]
    assert all(b["x"].dtype == np.float32 and set(b) == {"x"} for b in batches)
    np.testing.assert_array_equal(np.concatenate([b["x"] for b in batches]), x[:7])
    assert sample_count({"x": x, "labels": np.zeros(10)}, 7) == 7
    assert sample_count({"x": x}, None) == 10


def test_single_array_under_another_name_and_npz_path(model, tmp_path):
    x = np.ones((5, 3), np.float32)
    path = tmp_path / "data.npz"
    np.savez(path, images=x, labels=np.arange(5))
    assert [b["x"].shape[0] for b in iter_feeds(str(path), model, batch_size=2)] == [2, 2, 1]
    assert sample_count(str(path)) == 5
    with pytest.raises(InputError, match=r"\.npz"):
        list(iter_feeds(str(tmp_path / "missing.npz"), model))


def test_dataset_objects(model):
    data = _Data(9)
    batches = list(iter_feeds(data, model, batch_size=4, max_samples=6))
    assert [b["x"].shape[0] for b in batches] == [4, 2]
    assert sample_count(data, 100) == 9
    with pytest.raises(InputError, match="unsupported"):
        list(iter_feeds(42, model))
    with pytest.raises(InputError, match="batch size"):
        list(iter_feeds(data, model, batch_size=0))


def test_calibration_files_are_checked_at_the_door(model, tmp_path):
    fake = tmp_path / "calib.npz"
    np.save(tmp_path / "calib.npy", np.zeros((4, 3), np.float32))
    fake.write_bytes((tmp_path / "calib.npy").read_bytes())  # a .npy under an .npz name
    with pytest.raises(InputError, match=r"single \.npy array"):
        sample_count(fake)
    with pytest.raises(InputError, match=r"single \.npy array"):
        list(iter_feeds(str(fake), model))
    bad = np.ones((4, 3), np.float32)
    bad[1, 0] = np.inf
    with pytest.raises(InputError, match=r"array 'x' holds NaN or Inf \(first in sample 1\)"):
        list(iter_feeds({"x": bad}, model))


@pytest.mark.parametrize(("fixed", "expected"), [(1, [1] * 10), (4, [4, 4])])
def test_a_fixed_batch_dimension_sets_the_batch_size(model, fixed, expected):
    """A model exported at batch B gets batches of exactly B (a shorter tail is left out)."""
    from onnx import ModelProto

    from onnxprune.calibrate.data import fixed_batch_size

    fixed_model = ModelProto()
    fixed_model.CopyFrom(model)
    first = fixed_model.graph.input[0].type.tensor_type.shape.dim[0]
    first.Clear()
    first.dim_value = fixed
    assert fixed_batch_size(fixed_model) == fixed and fixed_batch_size(model) is None
    data = {"x": np.zeros((10, 3), dtype=np.float32)}
    sizes = [len(batch["x"]) for batch in iter_feeds(data, fixed_model, batch_size=32)]
    assert sizes == expected
