"""validate(): accuracy of both models and per-output fidelity on tiny linear models."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from onnxprune.errors import InputError
from onnxprune.evaluate import validate
from onnxprune.evaluate.fidelity import kl_divergence, top1_agreement
from tests.evaluate.tiny import linear_model

W = np.eye(3, dtype=np.float32)


def test_accuracy_and_fidelity_values():
    # inputs are one-hot-ish rows: the reference (identity) predicts the hot position
    x = np.array([[3, 1, 0], [0, 2, 1], [0, 1, 2], [1, 0, 0]], dtype=np.float32)
    labels = np.array([0, 1, 2, 1])  # reference correct on 3 of 4
    swap = W[:, [1, 0, 2]]  # candidate swaps classes 0 and 1
    result = validate(linear_model(W), linear_model(swap), {"x": x, "labels": labels})
    assert result.accuracy["reference"]["top1"] == pytest.approx(75.0)
    # candidate scores are x[:, [1, 0, 2]]: predictions [1, 0, 2, 1] -> samples 3 and 4 right
    assert result.accuracy["candidate"]["top1"] == pytest.approx(50.0)
    fidelity = result.fidelity["logits"]
    assert fidelity["top1_agreement"] == pytest.approx(top1_agreement(x @ swap, x @ W))
    assert fidelity["top1_agreement"] == pytest.approx(25.0)  # [0, 1, 2, 0] vs [1, 0, 2, 1]
    assert fidelity["kl"] == pytest.approx(kl_divergence(x @ swap, x @ W))
    data = result.to_dict()
    assert data["units"]["top1"] == "%" and data["data"]["samples"] == 4


def test_selected_metrics_multiple_outputs_and_synthetic_default():
    a, b = linear_model(W, extra_output=True), linear_model(2 * W, extra_output=True)
    result = validate(a, b, metrics=["max_abs_error", "cosine"], max_samples=10)
    assert set(result.fidelity) == {"logits", "double"}
    assert result.fidelity["logits"]["cosine"] == pytest.approx(1.0)
    assert result.fidelity["double"]["cosine"] == pytest.approx(1.0)
    assert result.accuracy == {"reference": {}, "candidate": {}}
    assert result.data["source"].startswith("first 10 of synthetic")
    assert any("synthetic" in n for n in result.notes)


def test_custom_metric_is_reported_per_model():
    x = np.ones((2, 3), np.float32)
    result = validate(
        linear_model(W), linear_model(3 * W), {"x": x}, metrics=[lambda o, y: float(o[0].sum())]
    )
    assert result.accuracy["reference"]["<lambda>"] == pytest.approx(6.0)
    assert result.accuracy["candidate"]["<lambda>"] == pytest.approx(18.0)


def test_bad_inputs():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(InputError, match="needs labels"):
        validate(linear_model(W), linear_model(W), {"x": x}, metrics=["top1"])
    with pytest.raises(InputError, match="different outputs"):
        validate(linear_model(W), linear_model(W, extra_output=True), {"x": x})
    other = linear_model(np.ones((4, 3), np.float32))
    with pytest.raises(InputError, match="axis 1: 3 != 4"):
        validate(other, other, {"x": x})
    with pytest.raises(InputError, match="failed: ZeroDivisionError"):
        validate(linear_model(W), linear_model(W), {"x": x}, metrics=[lambda o, y: 1 / 0])
    with pytest.raises(InputError, match="not a number"):
        validate(linear_model(W), linear_model(W), {"x": x}, metrics=[lambda o, y: "high"])


def _colour_classifier(names: str) -> onnx.ModelProto:
    """Scores = mean R, G, B of a [N, 3, 4, 4] image; ``names`` in metadata 'character'."""
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["scores"]),
        ],
        "colours",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, 4, 4])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["n", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if names:
        entry = model.metadata_props.add()
        entry.key, entry.value = "character", names
    return model


def test_an_image_folder_is_labelled_by_the_models_declared_class_names(tmp_path):
    from PIL import Image

    for name, colour in (("red", (255, 0, 0)), ("green", (0, 255, 0)), ("blue", (0, 0, 255))):
        (tmp_path / name).mkdir()
        Image.new("RGB", (4, 4), colour).save(tmp_path / name / "a.png")
    declared = _colour_classifier("red\ngreen\nblue")
    assert validate(declared, declared, tmp_path).accuracy["reference"]["top1"] == 100.0
    # without the declaration the folders are classes in sorted order (blue, green, red):
    # only green lands on its score
    bare = _colour_classifier("")
    assert validate(bare, bare, tmp_path).accuracy["reference"]["top1"] == pytest.approx(100 / 3)
