"""gradient_ready: old-opset models are differentiated on a converted copy (same function)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from onnxprune.autodiff import prepare
from onnxprune.autodiff.prepare import CONVERT_TO, gradient_ready
from onnxprune.errors import InputError
from onnxprune.importance.weight_gradient import weight_scores
from onnxprune.passes import preprocess


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_recent_opsets_come_back_unchanged(zoo_onnx):
    model = onnx.load(str(zoo_onnx("resnet18")))  # opset 17
    assert gradient_ready(model) is model


def test_ir3_opset8_model_is_converted_with_the_same_function_and_names(zoo_onnx):
    model = onnx.load(str(zoo_onnx("resnet18", opset=8, keep_batchnorm=True)))
    assert model.ir_version == 3
    ready = gradient_ready(model)
    assert prepare.default_opset(ready) == CONVERT_TO and ready.ir_version >= 4
    assert {t.name for t in ready.graph.initializer} == {t.name for t in model.graph.initializer}
    weights = {t.name for t in ready.graph.initializer}
    assert not weights & {v.name for v in ready.graph.input}
    assert prepare.default_opset(model) == 8 and model.ir_version == 3  # argument untouched
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(_run(ready, x), _run(model, x), rtol=1e-5, atol=1e-6)


def test_a_failed_conversion_fails_closed_below_opset_13(zoo_onnx, monkeypatch):
    from onnx import version_converter

    def refuse(model, target):
        raise RuntimeError("no adapter for this op")

    monkeypatch.setattr(version_converter, "convert_version", refuse)
    old = onnx.load(str(zoo_onnx("resnet18", opset=11)))
    with pytest.raises(InputError, match=r"opset-11 model to 17 failed \(no adapter"):
        gradient_ready(old)
    recent = onnx.load(str(zoo_onnx("resnet18", opset=13)))
    assert gradient_ready(recent) is recent  # differentiated as it is


@pytest.mark.parametrize("opset", [8, 13])
def test_weight_gradients_through_an_overlapping_maxpool_at_old_opsets(zoo_onnx, opset):
    """The stem weight's gradient crosses ResNet's 3×3/2 MaxPool, whose rule needs
    ScatterElements-add (opset 16): it used to fail at opsets below 16."""
    model = preprocess(onnx.load(str(zoo_onnx("resnet18", opset=opset)))).model
    data = {"input": np.random.default_rng(1).standard_normal((8, 3, 32, 32)).astype(np.float32)}
    scores = weight_scores(model, data, "weight_taylor")
    stem = next(n.input[1] for n in model.graph.node if n.op_type == "Conv")
    assert np.isfinite(scores[stem]).all() and scores[stem].max() > 0


def test_an_adapter_that_renames_its_output_gets_the_source_name_back(zoo_onnx):
    """Upsample (opset 9) becomes Resize, whose output the converter names anew; the readers
    say which tensor it became, so the source name comes back and gradient criteria run."""
    from onnxprune.analysis import analyze
    from onnxprune.importance import score_clusters

    model = preprocess(onnx.load(str(zoo_onnx("unet", opset=9)))).model
    upsampled = [n.output[0] for n in model.graph.node if n.op_type == "Upsample"]
    ready = gradient_ready(model)
    resized = [n.output[0] for n in ready.graph.node if n.op_type == "Resize"]
    assert upsampled and resized == upsampled
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(_run(ready, x), _run(model, x), rtol=1e-5, atol=1e-5)
    scores = score_clusters(analyze(model), "taylor", calibration={"input": x})
    assert np.isfinite(scores).all() and scores.max() > 0
