"""Per-weight gradient scores against the closed-form gradient of a linear classifier."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprune.errors import InputError
from onnxprune.importance.weight_gradient import WEIGHT_CRITERIA, layer_weights, weight_scores


def _linear(w: np.ndarray):
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc")],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", w.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", w.shape[1]])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_scores_follow_the_batch_gradients() -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 3)).astype(np.float32)
    x = rng.standard_normal((16, 5)).astype(np.float32)
    labels = rng.integers(0, 3, size=16)
    model = _linear(w)
    assert layer_weights(model) == ["w"]
    data = {"x": x, "labels": labels}
    batch_grads = []
    for start in (0, 8):
        xb = x[start : start + 8].astype(np.float64)
        onehot = np.eye(3)[labels[start : start + 8]]
        batch_grads.append(xb.T @ (_softmax(xb @ w) - onehot) / 8)
    expected = {
        "gradient": np.mean([np.abs(g) for g in batch_grads], axis=0),
        "weight_taylor": np.mean([np.abs(w * g) for g in batch_grads], axis=0),
        "weight_fisher": np.mean([(w * g) ** 2 for g in batch_grads], axis=0) / 2,
    }
    assert set(expected) <= set(WEIGHT_CRITERIA)
    for name, want in expected.items():
        got = weight_scores(model, data, name, batch_size=8)["w"]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)


def test_unknown_weight_criterion_and_missing_data() -> None:
    model = _linear(np.ones((2, 2), dtype=np.float32))
    with pytest.raises(InputError, match="unknown weight criterion"):
        weight_scores(model, {"x": np.ones((2, 2), np.float32)}, "nope")
    with pytest.raises(InputError, match="needs calibration data"):
        weight_scores(model, None)


def test_probe_targets_give_the_batch_gradient_of_random_output_directions() -> None:
    """Under ``probe`` targets the batch gradient is xᵀ(ε/σ): the seeded draws of
    :func:`probe_offsets`, replayed here."""
    from onnxprune.importance.gradient import PROBE_SEED, probe_offsets

    rng = np.random.default_rng(1)
    w = rng.standard_normal((5, 3)).astype(np.float32)
    x = rng.standard_normal((16, 5)).astype(np.float32)
    replay = np.random.default_rng(PROBE_SEED)
    batch_grads = []
    for start in (0, 8):
        xb = x[start : start + 8]
        offsets = probe_offsets((xb @ w).astype(np.float32), None, replay)
        batch_grads.append(xb.astype(np.float64).T @ offsets.astype(np.float64))
    got = weight_scores(_linear(w), {"x": x}, "gradient", targets="probe", batch_size=8)["w"]
    want = np.mean([np.abs(g) for g in batch_grads], axis=0)
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-6)
