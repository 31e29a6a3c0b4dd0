"""Gradient criteria: the mask derivative s_{n,c} against finite differences, and the scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from onnxprune.analysis import analyze
from onnxprune.calibrate import consumer_layers
from onnxprune.calibrate.labelled import load_samples
from onnxprune.errors import InputError
from onnxprune.importance import score_clusters
from onnxprune.importance.gradient import hard_targets, mask_gradients
from onnxprune.passes.prepare import prepare

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"
SHAPES = {"input": [1, 1, 32, 32]}


@pytest.fixture(scope="module")
def vgg():
    _, prepared, _ = prepare(DIGITS / "digits_vgg.onnx", SHAPES)
    analysis = analyze(prepared, SHAPES)
    data = dict(np.load(DIGITS / "digits_calib.npz"))
    return analysis, {"input": data["input"][:24], "labels": data["labels"][:24]}


def _mean_cross_entropy(model, feeds, targets) -> float:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    logits = session.run(None, feeds)[0].astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_q = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-(targets * log_q).sum(axis=1).mean())


def _scaled_reads(analysis, cluster: int, factor: float):
    """The analysed model with every consumer's reads of ``cluster`` scaled by ``factor``."""
    model = type(analysis.model)()
    model.CopyFrom(analysis.model)
    inits = {init.name: init for init in model.graph.initializer}
    for layer in consumer_layers(analysis):
        features = np.flatnonzero(
            (layer.labels >= 0) & (analysis.component_of[np.maximum(layer.labels, 0)] == cluster)
        )
        if not len(features):
            continue
        weight = numpy_helper.to_array(inits[layer.weight]).copy()
        index = [slice(None)] * weight.ndim
        index[layer.in_axis] = features
        weight[tuple(index)] *= factor
        inits[layer.weight].CopyFrom(numpy_helper.from_array(weight, layer.weight))
    return model


@pytest.mark.slow
def test_mask_derivative_matches_finite_differences(vgg) -> None:
    analysis, data = vgg
    samples = load_samples({"input": data["input"]}, analysis.model, max_samples=None)
    saliency, hit = mask_gradients(analysis, samples, targets="predictions")
    assert saliency.shape == (24, analysis.n_clusters) and hit.any()
    assert not saliency[:, ~hit].any()
    session = ort.InferenceSession(
        analysis.model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    targets = hard_targets(session.run(None, samples.feeds)[0], 0.0).astype(np.float64)
    derivative = saliency.mean(axis=0)
    for cluster in np.argsort(-np.abs(derivative))[:3]:
        eps = 1e-2
        plus = _mean_cross_entropy(
            _scaled_reads(analysis, cluster, 1 + eps), samples.feeds, targets
        )
        minus = _mean_cross_entropy(
            _scaled_reads(analysis, cluster, 1 - eps), samples.feeds, targets
        )
        numeric = (plus - minus) / (2 * eps)
        assert numeric == pytest.approx(derivative[cluster], rel=3e-2, abs=1e-6)


@pytest.mark.slow
def test_taylor_and_fisher_scores(vgg) -> None:
    analysis, data = vgg
    taylor = score_clusters(analysis, "taylor", calibration=data)
    fisher = score_clusters(analysis, "fisher", calibration=data)
    assert taylor.shape == fisher.shape == (analysis.n_clusters,)
    assert (taylor >= 0).all() and (fisher >= 0).all() and taylor.max() > 0
    # Same saliencies: the two rankings agree far more than chance.
    assert np.corrcoef(np.argsort(np.argsort(taylor)), np.argsort(np.argsort(fisher)))[0, 1] > 0.5
    unlabelled = score_clusters(analysis, "taylor", calibration={"input": data["input"]})
    assert unlabelled.shape == taylor.shape


def test_gradient_criteria_need_data(vgg) -> None:
    analysis, _ = vgg
    with pytest.raises(InputError, match="needs calibration data"):
        score_clusters(analysis, "taylor")
    with pytest.raises(InputError, match="labels"):
        score_clusters(
            analysis, "fisher", calibration={"input": np.zeros((2, 1, 32, 32))}, targets="labels"
        )


def test_hard_targets_smoothing() -> None:
    logits = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]], dtype=np.float32)
    targets = hard_targets(logits, 0.3)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-6)
    assert targets[0].argmax() == 1 and targets[1].argmax() == 0
    assert targets[0, 0] == pytest.approx(0.1)


def test_probe_targets_estimate_the_scaled_output_change(dense_model) -> None:
    """E[s²] under probe targets = ‖diag(1/σ) J_c‖² (module docstring), J_c by central
    differences of the outputs along the cluster's mask."""
    from onnxprune.importance.gradient import resolve_targets

    shapes = {"x": [1, 2, 6, 6]}
    _, prepared, _ = prepare(dense_model, shapes)
    analysis = analyze(prepared, shapes)
    x = np.random.default_rng(4).standard_normal((8, 2, 6, 6)).astype(np.float32)
    samples = load_samples({"x": x}, analysis.model, max_samples=None)
    assert resolve_targets("auto", samples, [4]) == "probe"
    assert resolve_targets("auto", samples, [2]) == "predictions"
    saliency, hit = mask_gradients(analysis, samples, targets="probe", probes=400, batch_size=8)
    assert saliency.shape == (400 * 8, analysis.n_clusters) and hit.sum() == 8
    estimate = np.square(saliency).mean(axis=0)

    def outputs(model):
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        return session.run(None, {"x": x})[0].astype(np.float64)

    y = outputs(analysis.model)
    spread = y.transpose(0, 2, 3, 1).reshape(-1, 3).std(axis=0)
    eps = 1e-3
    for cluster in np.flatnonzero(hit):
        jacobian = (
            outputs(_scaled_reads(analysis, cluster, 1 + eps))
            - outputs(_scaled_reads(analysis, cluster, 1 - eps))
        ) / (2 * eps)
        exact = np.square(jacobian / spread.reshape(1, 3, 1, 1)).sum(axis=(1, 2, 3)).mean()
        assert estimate[cluster] == pytest.approx(exact, rel=0.15)
