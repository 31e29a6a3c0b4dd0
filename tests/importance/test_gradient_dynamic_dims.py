"""Gradient criteria on a model whose shapes are computed from a dynamic image size at run
time (a YOLOv8 head's ``view(b, 4, 16, h * w)`` before its DFL convolution): the backward
graph pins one sample's dims, so the scores equal those of the same network exported at a
fixed size."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.analysis import analyze
from onnxprune.importance import score_clusters
from onnxprune.passes.prepare import prepare

torch = pytest.importorskip("torch")


class DflLike(torch.nn.Module):
    """stem conv (its 8 channels prunable, read by ``mid``) → mid conv → view(b, 4, 2, h·w)
    → softmax over the 2 → 1×1 conv over (2, h·w) → flatten: the stem's scores need the
    gradient back through the last conv, whose input dims come from the image size."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.mid = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.head = torch.nn.Conv2d(4, 3, 1)

    def forward(self, x):
        y = self.mid(torch.relu(self.stem(x)))
        b, _, h, w = y.shape
        y = y.view(b, 4, 2, h * w).softmax(2)
        return self.head(y).flatten(1)


def _export(path, dynamic: bool) -> str:
    model = DflLike().eval()
    axes = {"x": {0: "batch", 2: "height", 3: "width"}} if dynamic else {"x": {0: "batch"}}
    torch.onnx.export(
        model,
        torch.zeros(1, 3, 6, 6),
        str(path),
        input_names=["x"],
        output_names=["y"],
        dynamic_axes=axes,
        opset_version=17,
        dynamo=False,
    )
    return str(path)


@pytest.mark.parametrize("criterion", ["taylor", "fisher"])
def test_scores_with_a_dynamic_image_size_equal_the_fixed_sizes(tmp_path, criterion):
    shapes = {"x": [1, 3, 6, 6]}
    data = {"x": np.random.default_rng(0).standard_normal((16, 3, 6, 6)).astype(np.float32)}
    scores = {}
    for dynamic in (False, True):
        path = _export(tmp_path / f"dfl_{dynamic}.onnx", dynamic)
        _, prepared, _ = prepare(path, shapes)
        analysis = analyze(prepared, shapes)
        scores[dynamic] = score_clusters(analysis, criterion, calibration=data)
    assert scores[True].shape == scores[False].shape and scores[True].size > 0
    assert np.ptp(scores[False]) > 0  # measured gradients, not a fallback
    np.testing.assert_allclose(scores[True], scores[False], rtol=1e-5, atol=1e-9)


def test_pin_sample_dims_keeps_the_batch_free_and_fixed_dims_alone():
    import onnx
    from onnx import TensorProto, helper

    from onnxprune.graph.shapes import pin_sample_dims

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, "h", None])],
    )
    model = helper.make_model(graph)
    pinned = pin_sample_dims(model, {"x": (3, 8, 9), "other": (1,)})
    dims = pinned.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "n" and [d.dim_value for d in dims[1:]] == [3, 8, 9]
    assert model.graph.input[0].type.tensor_type.shape.dim[2].dim_param == "h"  # a copy
    assert pin_sample_dims(model, {"x": (3, 8)}).SerializeToString() == model.SerializeToString()
    onnx.checker.check_model(pinned)


def test_weight_gradient_scores_with_a_dynamic_image_size_equal_the_fixed_sizes(tmp_path):
    import onnx

    from onnxprune.importance.weight_gradient import weight_scores

    data = {"x": np.random.default_rng(1).standard_normal((8, 3, 6, 6)).astype(np.float32)}
    scores = [
        weight_scores(onnx.load(_export(tmp_path / f"w_{d}.onnx", d)), data, "weight_taylor")
        for d in (False, True)
    ]
    assert scores[0].keys() == scores[1].keys() and scores[0]
    for name in scores[0]:
        np.testing.assert_allclose(scores[1][name], scores[0][name], rtol=1e-5, atol=1e-9)


def test_distillation_runs_on_a_dynamic_image_size(tmp_path):
    from onnxprune import optimize

    data = {"x": np.random.default_rng(2).standard_normal((96, 3, 6, 6)).astype(np.float32)}
    result = optimize(
        _export(tmp_path / "d.onnx", True),
        "macs=0.8",
        data=data,
        input_shapes={"x": [1, 3, 6, 6]},
        recover="distill",
        steps=1,
        max_drop=100.0,
        round_to=1,
        measure_latency=False,
    )
    assert result.report.macs_ratio < 0.9
    assert "criterion obs, allocation sensitivity, recovery distill" in result.report.notes
