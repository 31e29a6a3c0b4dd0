"""run_dataset: batching, static-batch padding, outputs per sample."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.errors import InputError
from onnxprune.evaluate.data import Dataset
from onnxprune.evaluate.runner import run_dataset, static_batch
from tests.evaluate.tiny import linear_model

W = np.arange(12, dtype=np.float32).reshape(4, 3) / 10


def _data(n):
    return Dataset({"x": np.random.default_rng(0).standard_normal((n, 4)).astype(np.float32)})


@pytest.mark.parametrize("batch_size", [1, 2, 64])
def test_outputs_concatenated_in_sample_order(batch_size):
    data = _data(5)
    out = run_dataset(linear_model(W), data, batch_size=batch_size)
    assert out.names == ["logits"] and out.provider == "CPUExecutionProvider"
    assert np.allclose(out.arrays[0], data.inputs["x"] @ W, atol=1e-5)


def test_static_batch_is_padded_and_trimmed():
    data = _data(5)
    out = run_dataset(linear_model(W, batch=2), data, batch_size=64)
    assert out.arrays[0].shape == (5, 3)
    assert np.allclose(out.arrays[0], data.inputs["x"] @ W, atol=1e-5)
    assert any("static batch of 2" in n for n in out.notes)


def test_static_batch_of_specs():
    assert static_batch([("x", None, [None, 3])]) is None
    assert static_batch([("x", None, [4, 3]), ("y", None, ["n"])]) == 4
    with pytest.raises(InputError, match="different static batch"):
        static_batch([("x", None, [4, 3]), ("y", None, [2])])


def test_by_name_and_progress():
    calls = []
    out = run_dataset(
        linear_model(W, extra_output=True),
        _data(3),
        batch_size=2,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(2, 3), (3, 3)]
    assert np.allclose(out.by_name()["double"], 2 * out.by_name()["logits"])


def test_an_output_without_its_batch_axis_is_refused_with_the_fix():
    """A batch-1 export that squeezed its class scores to (C,): outputs cannot be collected."""
    from onnx import TensorProto, helper, numpy_helper

    model = linear_model(W, batch=1)
    model.graph.node[0].output[0] = "scores"
    model.graph.initializer.append(numpy_helper.from_array(np.array([0], np.int64), "axis"))
    model.graph.node.append(helper.make_node("Squeeze", ["scores", "axis"], ["logits"]))
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, [3]))
    with pytest.raises(InputError, match=r"shape \[3\].*keeps the batch axis"):
        run_dataset(model, _data(2))


def _sequence_first_model(steps: int):
    """logits [steps, batch, 3]: the linear model's scores repeated over ``steps`` time steps
    on a leading axis (a CTC recognizer's layout)."""
    from onnx import TensorProto, helper, numpy_helper

    model = linear_model(W)
    model.graph.node[0].output[0] = "scores"
    model.graph.initializer.append(numpy_helper.from_array(np.array([0], np.int64), "axis"))
    model.graph.node.extend([
        helper.make_node("Unsqueeze", ["scores", "axis"], ["step"]),
        helper.make_node("Concat", ["step"] * steps, ["logits"], axis=0),
    ])  # fmt: skip
    del model.graph.output[:]
    model.graph.output.append(
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, [steps, "batch", 3])
    )
    return model


def test_a_sequence_first_output_is_collected_along_its_batch_axis():
    """[T, B, C]: collected per sample along axis 1, returned batch-first, with a note; the
    last, smaller batch checks the axis again."""
    data = _data(5)
    out = run_dataset(_sequence_first_model(4), data, batch_size=2)
    logits = out.by_name()["logits"]
    assert logits.shape == (5, 4, 3)
    want = data.inputs["x"] @ W
    assert np.allclose(logits, np.repeat(want[:, None, :], 4, axis=1), atol=1e-6)
    assert any("batch on axis 1" in note for note in out.notes)


def test_an_output_whose_batch_axis_cannot_be_told_is_refused():
    """[T, B, 3] with T = 2: on batches of 2 and 1 only axis 1 follows the batch size; an output
    where two axes follow it but not the first cannot be read."""
    out = run_dataset(_sequence_first_model(2), _data(5), batch_size=2)
    assert out.by_name()["logits"].shape == (5, 2, 3)
    from onnx import TensorProto, helper, numpy_helper

    model = _sequence_first_model(3)  # [3, B, 3] → [3, B, B, 3]: two axes follow the batch
    model.graph.node[-1].output[0] = "steps"
    model.graph.initializer.append(numpy_helper.from_array(np.array([2], np.int64), "two"))
    model.graph.node.extend([
        helper.make_node("Unsqueeze", ["steps", "two"], ["wide"]),
        helper.make_node("Shape", ["x"], ["x_shape"]),
        helper.make_node("Slice", ["x_shape", "axis", "one"], ["b"]),
        helper.make_node("Concat", ["ones_a", "b", "ones_b"], ["reps"], axis=0),
        helper.make_node("Tile", ["wide", "reps"], ["logits"]),
    ])  # fmt: skip
    model.graph.initializer.extend([
        numpy_helper.from_array(np.array([1], np.int64), "one"),
        numpy_helper.from_array(np.array([1, 1], np.int64), "ones_a"),
        numpy_helper.from_array(np.array([1], np.int64), "ones_b"),
    ])  # fmt: skip
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, None))
    with pytest.raises(InputError, match="several axes have the batch size"):
        run_dataset(model, _data(5), batch_size=2)
