"""Calibration statistics against numpy on the whole data, cache, and a memory bound."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from onnxprune.calibrate import collect_statistics, consumer_layers
from onnxprune.calibrate.im2col import CHUNK_ELEMENTS
from tests.calibrate.tiny import analysed, conv_chain, gemm_chain


def _conv_model(rng, size=8):
    w1 = rng.normal(size=(6, 3, 3, 3))
    w1[2] = 0  # channel 2: relu(-1) = 0 everywhere (APoZ 1)
    b1 = rng.normal(size=6)
    b1[2] = -1.0
    return conv_chain(w1, b1, rng.normal(size=(4, 6, 3, 3)), size=size), w1, b1


def _relu_conv(x, w, b):
    """Reference 3x3 pad-1 conv + ReLU in numpy."""
    padded = np.pad(x, [(0, 0), (0, 0), (1, 1), (1, 1)])
    out = np.zeros((x.shape[0], w.shape[0], x.shape[2], x.shape[3]))
    for i in range(3):
        for j in range(3):
            patch = padded[:, :, i : i + x.shape[2], j : j + x.shape[3]]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return np.maximum(out + b[None, :, None, None], 0)


def test_feature_statistics_and_gram_equal_numpy_over_all_data():
    rng = np.random.default_rng(0)
    model, w1, b1 = _conv_model(rng)
    analysis = analysed(model, {"x": [1, 3, 8, 8]})
    x = rng.normal(size=(10, 3, 8, 8)).astype(np.float32)
    stats = collect_statistics(analysis, {"x": x}, batch_size=3, positions=None)
    assert [layer.node for layer in stats.consumers] == ["b"]
    assert stats.samples == 10
    h = _relu_conv(x.astype(np.float64), w1, b1)
    features = stats.features["b"]
    np.testing.assert_allclose(features.mean, h.mean(axis=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(features.mean_abs, np.abs(h).mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(features.var, h.var(axis=(0, 2, 3)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        features.zero_fraction, (h == 0).mean(axis=(0, 2, 3)), atol=0.02
    )  # float32 rounding may flip a near-zero pre-activation
    assert features.zero_fraction[2] == 1.0
    padded = np.pad(h, [(0, 0), (0, 0), (1, 1), (1, 1)])
    rows = np.stack(
        [
            padded[n, :, i : i + 3, j : j + 3].reshape(-1)
            for n in range(10)
            for i in range(8)
            for j in range(8)
        ]
    )
    assert stats.grams["b"].rows == 640
    np.testing.assert_allclose(stats.hessian("b"), rows.T @ rows / 640, rtol=1e-4, atol=1e-5)


def test_gemm_and_matmul_consumers_and_npz_input(tmp_path):
    rng = np.random.default_rng(1)
    for matmul in (False, True):
        w1, b1 = rng.normal(size=(6, 5)), rng.normal(size=6)
        model = gemm_chain(w1, b1, rng.normal(size=(6, 3)), matmul=matmul)
        analysis = analysed(model, {"x": [1, 5]})
        layers = consumer_layers(analysis)
        assert [(layer.node, layer.op_type, layer.in_axis) for layer in layers] == [
            ("b", "MatMul" if matmul else "Gemm", 0)
        ]
        x = rng.normal(size=(7, 5)).astype(np.float32)
        path = tmp_path / "calib.npz"
        np.savez(path, images=x, labels=np.zeros(7))
        stats = collect_statistics(analysis, str(path), batch_size=2, max_samples=5)
        h = x[:5].astype(np.float64) @ w1.T + b1
        assert stats.samples == 5
        assert stats.grams["b"].rows == 5
        np.testing.assert_allclose(stats.hessian("b"), h.T @ h / 5, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(stats.features["b"].mean, h.mean(axis=0), rtol=1e-5, atol=1e-6)


def test_results_are_cached_per_analysis_and_data():
    rng = np.random.default_rng(2)
    model, _, _ = _conv_model(rng)
    analysis = analysed(model, {"x": [1, 3, 8, 8]})
    data = {"x": rng.normal(size=(4, 3, 8, 8)).astype(np.float32)}
    first = collect_statistics(analysis, data)
    assert collect_statistics(analysis, data) is first
    assert collect_statistics(analysis, data, positions=8) is not first
    assert collect_statistics(analysis, dict(data)) is not first


class _Stream:
    """Generates its samples batch by batch: the data itself is never held."""

    def __init__(self, total: int, shape: tuple[int, ...]) -> None:
        self.total = total
        self.shape = shape

    def batches(self, batch_size: int):
        rng = np.random.default_rng(0)
        for start in range(0, self.total, batch_size):
            size = min(batch_size, self.total - start)
            yield {"x": rng.normal(size=(size, *self.shape)).astype(np.float32)}, None


def test_statistics_of_large_activations_stay_under_memory_bound():
    """64 samples of a 16×128×128 float32 activation (64 MiB if held) must be processed
    within: 3 batches of activations + 3 float64 chunks + accumulators + 4 MiB."""
    rng = np.random.default_rng(3)
    model = conv_chain(
        rng.normal(size=(16, 2, 3, 3)),
        rng.normal(size=16),
        rng.normal(size=(4, 16, 3, 3)),
        size=128,
    )
    analysis = analysed(model, {"x": [1, 2, 128, 128]})
    batch = 4
    activation = batch * 16 * 128 * 128 * 4
    held = 64 * 16 * 128 * 128 * 4
    d = 16 * 9
    bound = 3 * activation + 3 * CHUNK_ELEMENTS * 8 + d * d * 8 + 4 * 2**20
    assert bound < held
    tracemalloc.start()
    try:
        stats = collect_statistics(
            analysis, _Stream(64, (2, 128, 128)), batch_size=batch, positions=256
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stats.samples == 64
    assert stats.grams["b"].rows == 64 * 256
    assert peak < bound, f"peak {peak / 2**20:.1f} MiB >= bound {bound / 2**20:.1f} MiB"


def test_missing_or_bad_data_is_an_input_error():
    from onnxprune.errors import InputError

    rng = np.random.default_rng(4)
    model, _, _ = _conv_model(rng)
    analysis = analysed(model, {"x": [1, 3, 8, 8]})
    with pytest.raises(InputError):
        collect_statistics(analysis, None)
    with pytest.raises(InputError):
        collect_statistics(analysis, {"a": np.zeros((2, 3, 8, 8)), "b": np.zeros((2, 1))})
    with pytest.raises(InputError):
        collect_statistics(analysis, {"x": np.zeros((0, 3, 8, 8), np.float32)})
