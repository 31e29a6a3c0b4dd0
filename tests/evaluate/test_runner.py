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


def test_a_sequence_first_output_is_refused_naming_its_batch_axis():
    """A CTC-style output [T, B, C] (the batch on axis 1): the error says so and how to fix."""
    from onnx import TensorProto, helper, numpy_helper

    model = linear_model(W)
    model.graph.node[0].output[0] = "scores"
    model.graph.initializer.append(numpy_helper.from_array(np.array([0], np.int64), "axis"))
    model.graph.node.extend(
        [
            helper.make_node("Unsqueeze", ["scores", "axis"], ["steps"]),
            helper.make_node("Concat", ["steps", "steps", "steps", "steps"], ["logits"], axis=0),
        ]
    )
    del model.graph.output[:]
    model.graph.output.append(
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, [4, "batch", 3])
    )
    with pytest.raises(InputError, match=r"shape \[4, 2, 3\].*batch looks like axis 1"):
        run_dataset(model, _data(2))
