"""Dataset and load_data: npz, arrays, mappings, split, batches and bad data."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.errors import InputError
from onnxprune.evaluate.data import Dataset, load_data, model_input_specs

SPECS = [("x", np.dtype(np.float32), ["batch", 3, 4])]
TWO = [("a", np.dtype(np.float32), [None, 2]), ("ids", np.dtype(np.int64), [None, 5])]


def _arrays(n=6):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 3, 4)).astype(np.float32), np.arange(n) % 3


def test_npz_with_labels(tmp_path):
    x, y = _arrays()
    path = tmp_path / "d.npz"
    np.savez(path, x=x, labels=y)
    data = load_data(path, SPECS)
    assert np.array_equal(data.inputs["x"], x)
    assert np.array_equal(data.labels, y)
    assert len(data) == 6
    info = data.describe()
    assert info == {
        "source": str(path),
        "samples": 6,
        "has_labels": True,
        "inputs": {"x": {"shape": [3, 4], "dtype": "float32"}},
        "classes": 3,
    }


def test_single_input_model_accepts_any_single_key_and_custom_labels_key(tmp_path):
    x, y = _arrays()
    path = tmp_path / "d.npz"
    np.savez(path, images=x, target=y)
    data = load_data(path, SPECS, labels_key="target")
    assert list(data.inputs) == ["x"] and np.array_equal(data.labels, y)
    with pytest.raises(InputError, match="no 'target' array"):
        load_data({"images": x}, SPECS, labels_key="target")


def test_wrong_name_is_named(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, a=np.zeros((2, 2), np.float32), b=np.zeros((2, 5), np.float32))
    with pytest.raises(InputError, match=r"no array for model input.*'ids'.*data arrays: 'a', 'b'"):
        load_data(path, TWO)


def test_wrong_shape_and_rank_are_named():
    with pytest.raises(InputError, match=r"axis 2: 5 != 4"):
        load_data({"x": np.zeros((2, 3, 5), np.float32)}, SPECS)
    with pytest.raises(InputError, match="rank 3"):
        load_data({"x": np.zeros((2, 12), np.float32)}, SPECS)


def test_input_shapes_fix_dynamic_dimensions():
    specs = [("x", np.dtype(np.float32), ["batch", 3, "h"])]
    assert load_data({"x": np.zeros((2, 3, 7), np.float32)}, specs).inputs["x"].shape[2] == 7
    with pytest.raises(InputError, match="7 != 8"):
        load_data({"x": np.zeros((2, 3, 7), np.float32)}, specs, {"x": [1, 3, 8]})


def test_dtype_same_kind_is_cast_with_note_other_kind_is_an_error():
    data = load_data({"x": np.zeros((2, 3, 4), np.float64)}, SPECS)
    assert data.inputs["x"].dtype == np.float32
    assert any("cast from float64 to float32" in n for n in data.notes)
    with pytest.raises(InputError, match="dtype int64 but model input 'x' expects float32"):
        load_data({"x": np.zeros((2, 3, 4), np.int64)}, SPECS)
    with pytest.raises(InputError, match="do not fit"):
        load_data(
            {"a": np.zeros((1, 2), np.float32), "ids": np.full((1, 5), 2**40)},
            [TWO[0], ("ids", np.dtype(np.int32), [None, 5])],
        )


def test_two_inputs_mapping_and_extra_arrays_noted():
    arrays = {
        "a": np.zeros((3, 2), np.float32),
        "ids": np.ones((3, 5), np.int64),
        "extra": np.zeros(3),
        "labels": np.array([0, 1, 0]),
    }
    data = load_data(arrays, TWO)
    assert set(data.inputs) == {"a", "ids"}
    assert any("not used by the model: extra" in n for n in data.notes)


def test_labels_checks():
    x, _ = _arrays(4)
    with pytest.raises(InputError, match="'labels' has 3 entries but the data has 4 samples"):
        load_data((x, np.arange(3)), SPECS)
    with pytest.raises(InputError, match="integer class indices"):
        load_data((x, np.array([0.5, 1, 2, 3])), SPECS)
    assert load_data((x, np.array([0.0, 1, 2, 3])), SPECS).labels.dtype == np.int64


def test_sample_counts_must_agree():
    with pytest.raises(InputError, match="different numbers of samples"):
        load_data({"a": np.zeros((3, 2), np.float32), "ids": np.ones((4, 5), np.int64)}, TWO)


def test_bad_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_data(tmp_path / "missing.npz", SPECS)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match=r"bad\.npz' is not an \.npz archive"):
        load_data(bad, SPECS)
    other = tmp_path / "data.csv"
    other.write_text("1,2")
    with pytest.raises(InputError, match=r"expected a \.npz file"):
        load_data(other, SPECS)
    with pytest.raises(InputError, match="cannot use"):
        load_data(42, SPECS)


def test_bare_array_and_dataset_objects():
    x, y = _arrays()
    assert np.array_equal(load_data(x, SPECS).inputs["x"], x)
    dataset = Dataset({"x": x}, y)
    assert load_data(dataset, SPECS).labels is not None


def test_batches_cover_every_sample_in_order():
    x, y = _arrays(5)
    data = Dataset({"x": x}, y)
    batches = list(data.batches(2))
    assert [len(b[1]) for b in batches] == [2, 2, 1]
    assert np.array_equal(np.concatenate([b[0]["x"] for b in batches]), x)
    with pytest.raises(InputError):
        list(data.batches(0))


def test_split_is_disjoint_seeded_and_complete():
    x = np.arange(20, dtype=np.float32).reshape(20, 1)
    data = Dataset({"x": x}, np.arange(20))
    calib, held = data.split(0.3, seed=1)
    assert len(held) == 6 and len(calib) == 14
    held_ids, calib_ids = set(held.labels.tolist()), set(calib.labels.tolist())
    assert held_ids.isdisjoint(calib_ids) and held_ids | calib_ids == set(range(20))
    again = data.split(0.3, seed=1)[1]
    assert np.array_equal(again.labels, held.labels)
    assert not np.array_equal(data.split(0.3, seed=2)[1].labels, held.labels)
    assert "split of" in held.source
    with pytest.raises(InputError, match="between 0 and 1"):
        data.split(1.0)
    with pytest.raises(InputError, match="cannot split"):
        Dataset({"x": x[:1]}).split(0.5)


def test_split_with_groups_holds_out_whole_groups(tmp_path):
    x = np.arange(30, dtype=np.float32).reshape(30, 1)
    groups = np.repeat(["astronaut", "coffee", "retina", "hubble", "cells"], 6)
    path = tmp_path / "crops.npz"
    np.savez(path, x=x, groups=groups)
    data = load_data(path, [("x", np.dtype(np.float32), [None, 1])])
    assert "x" in data.inputs and "groups" not in data.inputs
    calib, held = data.split(0.3, seed=0)
    assert set(held.groups).isdisjoint(set(calib.groups))
    assert len(held) == 12  # two groups of 6: the first share >= 30 % of 30 samples
    assert set(held.inputs["x"][:, 0].tolist()) | set(calib.inputs["x"][:, 0].tolist()) == set(
        range(30)
    )
    assert "by 'groups'" in held.source and "2 groups held out" in held.source
    again = data.split(0.3, seed=0)[1]
    assert np.array_equal(again.groups, held.groups)
    # one group cannot be split by group: by sample, with a note
    single = Dataset({"x": x}, groups=np.zeros(30, dtype=int))
    calib, held = single.split(0.3)
    assert len(held) == 9 and any("one group" in note for note in held.notes)
    # a group as large as the data never leaves calibration empty
    two = Dataset({"x": x[:4]}, groups=np.array([0, 0, 0, 1]))
    calib, held = two.split(0.9)
    assert len(calib) >= 1 and len(held) >= 1


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        (np.zeros((30, 2)), "one source id per sample"),
        (np.zeros(29), "one source id"),
        (np.linspace(0, 1, 30), "integer or string ids"),
    ],
)
def test_bad_groups_are_input_errors(groups, message):
    with pytest.raises(InputError, match=message):
        Dataset({"x": np.zeros((30, 1), dtype=np.float32)}, groups=groups)


def test_model_input_specs_skip_initializers():
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        [numpy_helper.from_array(np.zeros(3, np.float32), "w")],
    )
    specs = model_input_specs(helper.make_model(graph))
    assert specs == [("x", np.dtype(np.float32), ["n", 3])]


def test_non_finite_inputs_name_the_key_and_sample(tmp_path):
    x, y = _arrays()
    x[4, 0, 1] = np.nan
    path = tmp_path / "nan.npz"
    np.savez(path, x=x, labels=y)
    with pytest.raises(
        InputError, match=r"nan\.npz': array 'x' holds NaN or Inf \(first in sample 4\)"
    ):
        load_data(path, SPECS)


def test_values_that_overflow_the_model_dtype():
    with pytest.raises(InputError, match=r"do not fit the model's dtype float32"):
        load_data({"x": np.full((2, 3, 4), 1e300)}, SPECS)


def test_empty_and_wrongly_typed_arrays():
    with pytest.raises(InputError, match="has no samples"):
        load_data({"x": np.zeros((0, 3, 4), np.float32)}, SPECS)
    with pytest.raises(InputError, match="dtype complex64"):
        load_data({"x": np.zeros((2, 3, 4), np.complex64)}, SPECS)


def test_negative_and_non_finite_labels():
    x, _ = _arrays(4)
    with pytest.raises(InputError, match="negative class index -1 in sample 2"):
        load_data((x, np.array([0, 1, -1, 2])), SPECS)
    with pytest.raises(InputError, match=r"'labels' holds NaN or Inf \(first in sample 1\)"):
        load_data((x, np.array([0.0, np.nan, 1, 2])), SPECS)


def test_a_single_array_for_a_single_input_is_mapped_and_noted():
    import numpy as np

    from onnxprune.evaluate.data import Dataset, conform

    specs = [("x", np.dtype(np.float32), ["N", 3])]
    data = conform(Dataset({"pixels": np.zeros((4, 3), np.float32)}), specs)
    assert list(data.inputs) == ["x"]
    assert any("'pixels' is used as model input 'x'" in note for note in data.notes)
