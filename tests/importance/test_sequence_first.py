"""Gradient criteria on sequence-first layers ([T, B, C]: nn.MultiheadAttention's projections
in a TorchScript export): per-sample sums are the same as on the batch-first model, and the
per-weight criteria build their gradient model through run-time Reshape targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from onnxprune.analysis import analyze
from onnxprune.importance import score_clusters
from onnxprune.importance.weight_gradient import weight_scores
from onnxprune.io import load_model
from onnxprune.passes import preprocess

TOKENS = 5


def _mlp(sequence_first: bool, pooled: bool):
    """x [N, T, 4] -> (Transpose to [T, N, 4]) -> MatMul -> Relu -> MatMul -> (back) -> y
    [N, T, 3] (probe targets), or its mean over T [N, 3] (the model's own predictions)."""
    rng = np.random.default_rng(4)
    inits = [
        numpy_helper.from_array(rng.normal(size=(4, 6)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(size=(6, 3)).astype(np.float32), "w2"),
    ]
    node = helper.make_node
    source, result = ("xt", "yt") if sequence_first else ("x", "tokens")
    nodes = [
        node("MatMul", [source, "w1"], ["h"], name="a"),
        node("Relu", ["h"], ["r"], name="relu"),
        node("MatMul", ["r", "w2"], [result], name="b"),
    ]
    if sequence_first:
        nodes.insert(0, node("Transpose", ["x"], ["xt"], name="to_seq", perm=[1, 0, 2]))
        nodes.append(node("Transpose", ["yt"], ["tokens"], name="to_batch", perm=[1, 0, 2]))
    if pooled:
        nodes.append(node("ReduceMean", ["tokens"], ["y"], name="pool", axes=[1], keepdims=0))
    else:
        nodes.append(node("Identity", ["tokens"], ["y"], name="out"))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", TOKENS, 4])],
        [
            helper.make_tensor_value_info(
                "y", TensorProto.FLOAT, ["N", 3] if pooled else ["N", TOKENS, 3]
            )
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return preprocess(model).model


@pytest.mark.parametrize("pooled", [False, True], ids=["probe", "predictions"])
@pytest.mark.parametrize("criterion", ["taylor", "fisher"])
def test_sequence_first_scores_equal_the_batch_first_ones(criterion, pooled):
    """Batches of 8 with a last batch of 3 (T = 5 never equals the batch size)."""
    data = {"x": np.random.default_rng(0).normal(size=(19, TOKENS, 4)).astype(np.float32)}
    scores = [
        score_clusters(analyze(_mlp(first, pooled)), criterion, calibration=data, batch_size=8)
        for first in (False, True)
    ]
    assert np.all(scores[0] > 0)
    np.testing.assert_allclose(scores[1], scores[0], rtol=1e-4)


class _SequenceFirstEncoder(nn.Module):
    """[B, T, E] in and out; a sequence-first nn.TransformerEncoder inside."""

    def __init__(self) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(16, 2, 24, dropout=0.0)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.transpose(0, 1)).transpose(0, 1)


@pytest.mark.parametrize("criterion", ["gradient", "taylor", "fisher"])
def test_weight_criteria_build_through_run_time_reshape_targets(tmp_path, criterion):
    """The TorchScript export's head reshapes read targets built from Shape, Slice and Mod of
    constants: without folding them the rank of a Squeeze was unknown and the gradient model
    could not be built ("give fixed input shapes")."""
    torch.manual_seed(0)
    module = _SequenceFirstEncoder().eval()
    path = tmp_path / "encoder.onnx"
    torch.onnx.export(module, (torch.randn(2, TOKENS, 16),), str(path), dynamo=False,
                      opset_version=17, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}})  # fmt: skip
    data = {"x": np.random.default_rng(1).normal(size=(12, TOKENS, 16)).astype(np.float32)}
    names = {"gradient": "gradient", "taylor": "weight_taylor", "fisher": "weight_fisher"}
    scores = weight_scores(load_model(path), data, names[criterion], batch_size=5)
    assert any("in_proj" in name or "MatMul" in name for name in scores)
    assert all(np.isfinite(value).all() and value.shape for value in scores.values())
