"""Recovery: exact least-squares refits, exact bias compensation, levels, errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from onnxprune.errors import InputError
from onnxprune.recover import make_recovery, refit_targets
from onnxprune.recover.targets import levels
from onnxprune.rewrite import apply_removal
from tests.calibrate.tiny import (
    analysed,
    conv_chain,
    conv_stack,
    gemm_chain,
    run,
    source_clusters,
)


def _max_error(model_a, model_b, x):
    return float(np.abs(run(model_a, x) - run(model_b, x)).max())


def _prune_and_recover(model, shapes, source, channels, method, calibration, **options):
    analysis = analysed(model, shapes)
    removed = source_clusters(analysis, source)[channels]
    pruned = apply_removal(analysis, removed)
    recovered = make_recovery(method, analysis, calibration, **options)(analysis, removed, pruned)
    onnx.checker.check_model(recovered, full_check=True)
    return analysis, pruned, recovered


def test_lsq_is_exact_when_pruned_conv_channels_are_scaled_copies():
    """Channels 3-5 of conv a are positive multiples of channels 0-2 (ReLU keeps that), so the
    refit of conv b reproduces the original output."""
    rng = np.random.default_rng(0)
    w1, b1 = 0.4 * rng.normal(size=(6, 3, 3, 3)), 0.3 * rng.normal(size=6)
    for copy, (source, factor) in enumerate([(0, 2.0), (1, 0.5), (2, 3.0)], start=3):
        w1[copy], b1[copy] = factor * w1[source], factor * b1[source]
    model = conv_chain(w1, b1, 0.3 * rng.normal(size=(4, 6, 3, 3)), 0.1 * rng.normal(size=4))
    calib = rng.normal(size=(16, 3, 8, 8)).astype(np.float32)
    test = rng.normal(size=(8, 3, 8, 8)).astype(np.float32)
    _, pruned, recovered = _prune_and_recover(
        model, {"x": [1, 3, 8, 8]}, "a", [3, 4, 5], "lsq", {"x": calib}, ridge=1e-9, positions=None
    )
    assert _max_error(model, pruned, test) > 0.1
    assert _max_error(model, recovered, test) < 1e-4


@pytest.mark.parametrize("matmul", [False, True])
def test_lsq_is_exact_when_pruned_gemm_features_are_linear_combinations(matmul):
    rng = np.random.default_rng(1)
    w1, b1 = rng.normal(size=(6, 4)), rng.normal(size=6)
    w1[4], b1[4] = w1[0] + 2 * w1[1], b1[0] + 2 * b1[1]
    w1[5], b1[5] = w1[2] - w1[3] + 0.5 * w1[0], b1[2] - b1[3] + 0.5 * b1[0]
    model = gemm_chain(w1, b1, rng.normal(size=(6, 3)), matmul=matmul)
    calib = rng.normal(size=(32, 4)).astype(np.float32)
    test = rng.normal(size=(10, 4)).astype(np.float32)
    _, pruned, recovered = _prune_and_recover(
        model, {"x": [1, 4]}, "a", [4, 5], "lsq", {"x": calib}, ridge=1e-10
    )
    assert _max_error(model, pruned, test) > 0.1
    assert _max_error(model, recovered, test) < 1e-4


def test_bias_compensation_is_exact_for_constant_conv_channels():
    rng = np.random.default_rng(2)
    w1, b1 = rng.normal(size=(5, 2, 3, 3)), rng.normal(size=5)
    w1[1], b1[1] = 0.0, 1.5  # relu(1.5): constant 1.5
    w1[3], b1[3] = 0.0, 0.25
    model = conv_chain(w1, b1, rng.normal(size=(3, 5, 3, 3)), None, pad2=0)  # b has no bias
    calib = {"x": rng.normal(size=(4, 2, 8, 8)).astype(np.float32)}
    test = rng.normal(size=(6, 2, 8, 8)).astype(np.float32)
    _, pruned, recovered = _prune_and_recover(
        model, {"x": [1, 2, 8, 8]}, "a", [1, 3], "bias", calib
    )
    assert _max_error(model, pruned, test) > 0.1
    assert _max_error(model, recovered, test) < 1e-5


def test_bias_compensation_adds_a_bias_to_a_matmul():
    rng = np.random.default_rng(3)
    w1, b1 = rng.normal(size=(5, 3)), rng.normal(size=5)
    w1[2], b1[2] = 0.0, -0.7
    model = gemm_chain(w1, b1, rng.normal(size=(5, 2)), matmul=True)
    calib = {"x": rng.normal(size=(8, 3)).astype(np.float32)}
    test = rng.normal(size=(5, 3)).astype(np.float32)
    _, pruned, recovered = _prune_and_recover(model, {"x": [1, 3]}, "a", [2], "bias", calib)
    assert [node.op_type for node in recovered.graph.node] == ["Gemm", "MatMul", "Add"]
    assert _max_error(model, pruned, test) > 0.1
    assert _max_error(model, recovered, test) < 1e-5


def test_sequential_levels_and_lsq_beats_no_recovery():
    rng = np.random.default_rng(4)
    weights = [
        rng.normal(size=(8, 2, 3, 3)) * 0.5,
        rng.normal(size=(8, 8, 3, 3)) * 0.2,
        rng.normal(size=(3, 8, 3, 3)) * 0.2,
    ]
    biases = [rng.normal(size=8) * 0.1, rng.normal(size=8) * 0.1, rng.normal(size=3) * 0.1]
    model = conv_stack(weights, biases)
    analysis = analysed(model, {"x": [1, 2, 8, 8]})
    removed = np.concatenate(
        [source_clusters(analysis, "c0")[[1, 5]], source_clusters(analysis, "c1")[[0, 2, 7]]]
    )
    targets = refit_targets(analysis, removed)
    assert [[t.layer.node for t in level] for level in levels(analysis, targets)] == [
        ["c1"],
        ["c2"],
    ]
    c1 = targets[0]
    np.testing.assert_array_equal(c1.kept_features, [1, 0, 1, 1, 1, 0, 1, 1])
    np.testing.assert_array_equal(c1.kept_rows, [0, 1, 0, 1, 1, 1, 1, 0])
    assert c1.weight.shape == (5, 72)
    pruned = apply_removal(analysis, removed)
    calib = {"x": rng.normal(size=(24, 2, 8, 8)).astype(np.float32)}
    test = rng.normal(size=(8, 2, 8, 8)).astype(np.float32)
    messages = []
    recovered = make_recovery("lsq", analysis, calib, progress=messages.append)(
        analysis, removed, pruned
    )
    onnx.checker.check_model(recovered, full_check=True)
    assert len(messages) == 2
    names = {init.name for init in recovered.graph.initializer}
    assert "w1" not in names and "c1__recovered_w" in names
    stats = make_recovery("lsq", analysis, calib, stats_correction=True)(analysis, removed, pruned)
    bias = make_recovery("bias", analysis, calib)(analysis, removed, pruned)
    errors = {
        name: _max_error(model, candidate, test)
        for name, candidate in [
            ("none", pruned),
            ("bias", bias),
            ("lsq", recovered),
            ("stats", stats),
        ]
    }
    assert errors["lsq"] < errors["none"], errors
    assert errors["bias"] < errors["none"], errors
    assert errors["stats"] < errors["none"], errors
    # Level 2 runs from the tensors level 1 left behind; without that memory (frontier_mb=0)
    # both models run from the graph inputs every level: the same refit.
    import onnxprune.recover.lsq as lsq
    from onnxprune.calibrate.frontier import FrontierRunner

    from_frontier: list[bool] = []

    class Recording(FrontierRunner):
        def run(self, model, wanted, feeds):
            from_frontier.append(self.cache is not None)
            yield from super().run(model, wanted, feeds)

    original_runner, lsq.FrontierRunner = lsq.FrontierRunner, Recording
    try:
        again = make_recovery("lsq", analysis, calib)(analysis, removed, pruned)
    finally:
        lsq.FrontierRunner = original_runner
    assert from_frontier == [False, False, True, True]  # level 2 of both models
    assert again.SerializeToString() == recovered.SerializeToString()
    from_inputs = make_recovery("lsq", analysis, calib, frontier_mb=0)(analysis, removed, pruned)
    for mine, theirs in zip(
        recovered.graph.initializer, from_inputs.graph.initializer, strict=True
    ):
        assert mine.name == theirs.name
        np.testing.assert_allclose(
            numpy_helper.to_array(mine), numpy_helper.to_array(theirs), rtol=1e-6, atol=1e-7
        )


def test_make_recovery_checks_its_inputs():
    rng = np.random.default_rng(5)
    model = gemm_chain(rng.normal(size=(5, 3)), rng.normal(size=5), rng.normal(size=(5, 2)))
    analysis = analysed(model, {"x": [1, 3]})
    with pytest.raises(InputError, match="unknown recovery"):
        make_recovery("magic", analysis, {})
    with pytest.raises(InputError, match="calibration"):
        make_recovery("lsq", analysis, None)
    removed = source_clusters(analysis, "a")[[0]]
    pruned = apply_removal(analysis, removed)
    assert make_recovery("none", analysis, None)(analysis, removed, pruned) is pruned
    assert make_recovery("lsq", analysis, {"x": np.zeros((2, 3))})(analysis, [], pruned) is pruned


def test_lsq_is_exact_for_a_scaled_transposed_gemm():
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(6)
    w1, b1 = rng.normal(size=(5, 3)), rng.normal(size=5)
    w1[3], b1[3] = w1[0] - w1[2], b1[0] - b1[2]
    w2 = rng.normal(size=(5, 2))
    model = gemm_chain(w1, b1, w2)
    consumer = model.graph.node[1]
    consumer.attribute.extend(
        [helper.make_attribute("alpha", 0.5), helper.make_attribute("transB", 1)]
    )
    for index, init in enumerate(model.graph.initializer):
        if init.name == "w2":
            model.graph.initializer[index].CopyFrom(
                numpy_helper.from_array(w2.T.astype(np.float32), "w2")
            )
    calib = {"x": rng.normal(size=(20, 3)).astype(np.float32)}
    test = rng.normal(size=(6, 3)).astype(np.float32)
    _, pruned, recovered = _prune_and_recover(
        model, {"x": [1, 3]}, "a", [3], "lsq", calib, ridge=1e-10
    )
    assert _max_error(model, pruned, test) > 0.1
    assert _max_error(model, recovered, test) < 1e-4


def test_statistics_correction_matches_target_mean_and_std():
    from onnxprune.recover.lsq import NormalEquations, match_statistics

    rng = np.random.default_rng(7)
    kept = rng.normal(size=(200, 4))
    y = rng.normal(size=(200, 3)) * [1.0, 2.0, 3.0] + [0.5, -1.0, 2.0]
    normal = NormalEquations.empty(4, 3)
    normal.add(kept, y)
    theta = rng.normal(size=(5, 3))
    corrected = match_statistics(theta, normal)
    predicted = np.hstack([kept, np.ones((200, 1))]) @ corrected
    np.testing.assert_allclose(predicted.mean(axis=0), y.mean(axis=0), atol=1e-10)
    np.testing.assert_allclose(predicted.std(axis=0), y.std(axis=0), rtol=1e-10)


def test_lsq_falls_back_to_bias_for_layers_wider_than_max_columns():
    rng = np.random.default_rng(8)
    w1, b1 = rng.normal(size=(5, 2, 3, 3)), rng.normal(size=5)
    model = conv_chain(w1, b1, rng.normal(size=(3, 5, 3, 3)), None, pad2=0)
    analysis = analysed(model, {"x": [1, 2, 8, 8]})
    removed = source_clusters(analysis, "a")[[1, 3]]
    pruned = apply_removal(analysis, removed)
    calib = {"x": rng.normal(size=(6, 2, 8, 8)).astype(np.float32)}
    test = rng.normal(size=(4, 2, 8, 8)).astype(np.float32)
    messages = []
    narrow = make_recovery("lsq", analysis, calib, max_columns=27, progress=messages.append)
    wide = narrow(analysis, removed, pruned)
    bias = make_recovery("bias", analysis, calib)(analysis, removed, pruned)
    np.testing.assert_allclose(run(wide, test), run(bias, test), atol=1e-6)
    assert any("bias only" in message for message in messages)
    refit = make_recovery("lsq", analysis, calib, max_columns=28)(analysis, removed, pruned)
    assert np.abs(run(refit, test) - run(bias, test)).max() > 1e-3
