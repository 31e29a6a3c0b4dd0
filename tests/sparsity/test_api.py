"""sparsify(): modes, criteria, whole-model counting, N:M, the per-layer plan."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from onnxprune import sparsify
from onnxprune.errors import InputError
from onnxprune.sparsity.measure import weight_sparsity
from onnxprune.sparsity.targets import find_layers
from tests.sparsity.tiny import calibration, run, weight_zoo


@pytest.fixture(scope="module")
def model():
    return weight_zoo()


@pytest.fixture(scope="module")
def data():
    return calibration()


def _zeros(model, node):
    return next(row for row in weight_sparsity(model) if row.node == node).zeros


@pytest.mark.parametrize("criterion", ["magnitude", "wanda", "obs", "taylor"])
def test_whole_model_sparsity_is_reached_with_skipped_layers_made_up(model, data, criterion):
    result = sparsify(model, 0.5, criterion=criterion, data=data)
    onnx.checker.check_model(result.model, full_check=True)
    assert result.total_weights == find_layers(model).total_weights
    assert result.sparsity >= 0.5
    assert result.total_zeros == sum(row.zeros for row in weight_sparsity(result.model))
    assert all(layer.sparsity_after > 0.5 for layer in result.layers)
    assert _zeros(result.model, "dw") == 0  # depthwise skipped by default
    assert run(result.model, data).shape == (24, 64)


def test_magnitude_zeroes_the_smallest_weights(model):
    result = sparsify(model, 0.3, min_size=0, skip_depthwise=False)
    original = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    for init in result.model.graph.initializer:
        if init.name in ("wa", "wmm"):
            new = onnx.numpy_helper.to_array(init)
            zero = new == 0
            assert np.abs(original[init.name][zero]).max() <= np.abs(new[~zero]).min()
            np.testing.assert_array_equal(new[~zero], original[init.name][~zero])


@pytest.mark.parametrize(
    ("criterion", "weight_criterion"),
    [("gradient", "gradient"), ("taylor", "weight_taylor"), ("fisher", "weight_fisher")],
)
def test_gradient_criteria_zero_the_lowest_scored_weights(model, data, criterion, weight_criterion):
    """The whole-model gradient scores reach each layer in its own layout (Gemm transB=1
    included): every zeroed weight scores no higher than every kept one."""
    from onnxprune.importance.weight_gradient import weight_scores

    scores = weight_scores(model, data, weight_criterion)
    result = sparsify(
        model, 0.3, criterion=criterion, data=data, allocation="uniform", min_size=0,
        skip_depthwise=False,
    )  # fmt: skip
    assert result.criterion == criterion
    for init in result.model.graph.initializer:
        if init.name in ("wa", "wfc", "wmm", "wup"):
            zero = onnx.numpy_helper.to_array(init) == 0
            assert zero.mean() == pytest.approx(0.3, abs=0.01)
            assert scores[init.name][zero].max() <= scores[init.name][~zero].min()


def test_a_gradient_criterion_is_never_called_per_layer() -> None:
    from onnxprune.errors import InternalError
    from onnxprune.sparsity.criteria import resolve_criterion

    with pytest.raises(InternalError, match="bug"):
        resolve_criterion("taylor")(np.ones((2, 2)), None)


def test_obs_fits_calibration_outputs_better_than_magnitude(model, data):
    reference = run(model, data)
    errors = {}
    for criterion in ("magnitude", "obs"):
        result = sparsify(model, 0.5, criterion=criterion, data=data, min_size=0)
        errors[criterion] = float(np.mean((run(result.model, data) - reference) ** 2))
    assert errors["obs"] < errors["magnitude"]


def test_obs_levels_run_from_the_frontier_with_the_same_result(model, data, monkeypatch):
    """Each OBS level runs only the nodes after the previous level's frontier; without that
    memory (budget 0) every level runs from the graph inputs: the same weights."""
    import onnxprune.sparsity.reconstruct as api
    from onnxprune.calibrate.frontier import FrontierRunner

    from_frontier: list[bool] = []

    class Recording(FrontierRunner):
        def run(self, model, wanted, feeds):
            from_frontier.append(self.cache is not None)
            yield from super().run(model, wanted, feeds)

    monkeypatch.setattr(api, "FrontierRunner", Recording)
    frontier = sparsify(model, 0.5, criterion="obs", data=data, min_size=0)
    assert from_frontier.count(True) >= 4  # levels 2-5 of the pruned model (and the reference)
    monkeypatch.setattr(api, "FRONTIER_BYTES", 0)
    from_inputs = sparsify(model, 0.5, criterion="obs", data=data, min_size=0)
    assert len(frontier.model.graph.initializer) == len(from_inputs.model.graph.initializer)
    for mine, theirs in zip(
        frontier.model.graph.initializer, from_inputs.model.graph.initializer, strict=True
    ):
        assert mine.name == theirs.name
        np.testing.assert_allclose(
            onnx.numpy_helper.to_array(mine), onnx.numpy_helper.to_array(theirs), atol=1e-6
        )


@pytest.mark.parametrize("criterion", ["magnitude", "obs"])
def test_two_four_holds_on_every_layer_whose_reduction_allows_it(model, data, criterion):
    result = sparsify(model, pattern="2:4", criterion=criterion, data=data, min_size=0)
    rows = {row.node: row for row in weight_sparsity(result.model)}
    assert {layer.node for layer in result.layers} == {"a", "up", "g", "fc", "mm"}
    for layer in result.layers:
        assert layer.holds_nm and rows[layer.node].holds_nm
        assert layer.sparsity_after == pytest.approx(0.5)


def test_global_ranking_respects_the_cap(model):
    result = sparsify(model, 0.6, global_=True, max_ratio=0.7, min_size=0)
    assert all(layer.sparsity_after <= 0.7 for layer in result.layers)
    assert result.sparsity >= 0.6


def test_threshold_and_keep(model):
    result = sparsify(model, threshold=0.5, min_size=0)
    for init in result.model.graph.initializer:
        if init.name == "wa":
            value = onnx.numpy_helper.to_array(init)
            assert np.all((value == 0) | (np.abs(value) >= 0.5))
    kept = sparsify(model, keep=100, min_size=0)
    assert all(layer.size - layer.zeros_after == 100 for layer in kept.layers)


def test_sparsity_for_overrides_one_layer(model):
    result = sparsify(model, 0.5, sparsity_for=["mm=0.25"], min_size=0)
    layers = {layer.node: layer for layer in result.layers}
    assert layers["mm"].sparsity_after == pytest.approx(0.25, abs=1e-3)
    assert result.sparsity >= 0.5


@pytest.mark.parametrize(
    "options",
    [
        {"sparsity": 1.0},
        {"sparsity": -0.1},
        {"pattern": "3:2"},
        {"threshold": 0.1, "global_": True},
        {"keep": -1},
        {"criterion": "wanda"},
        {"criterion": "no-such"},
        {"sparsity_for": ["a=1.5"]},
    ],
)
def test_bad_options_are_input_errors(model, options):
    with pytest.raises(InputError):
        sparsify(model, **options)


def test_a_plug_in_criterion_by_callable(model):
    result = sparsify(model, 0.5, criterion=lambda matrix, stats: -np.abs(matrix), min_size=0)
    layer = result.layers[0]
    assert layer.criterion == "<lambda>" and layer.sparsity_after >= 0.5


def test_the_plan_reports_which_weights_went_first(model):
    result = sparsify(model, 0.5, min_size=0)
    layer = next(layer for layer in result.layers if layer.node == "mm")
    weight = next(
        onnx.numpy_helper.to_array(i) for i in model.graph.initializer if i.name == "wmm"
    ).reshape(-1)
    first = layer.first_removed
    assert len(first) == 8
    assert list(np.abs(weight[first])) == sorted(np.abs(weight[first]))
    assert np.abs(weight[first[0]]) == np.abs(weight).min()


@pytest.mark.parametrize("allocation", ["error", "output"])
def test_measured_allocations_keep_the_whole_model_zero_count_exact(model, data, allocation):
    result = sparsify(model, 0.55, criterion="obs", data=data, min_size=0, allocation=allocation)
    assert result.total_zeros == -(-55 * result.total_weights // 100)
    assert result.allocation == allocation


@pytest.mark.parametrize(
    "options, message",
    [
        ({"allocation": "nope"}, "unknown sparsity allocation"),
        ({"allocation": "error"}, "needs calibration data"),
        ({"allocation": "output", "pattern": "2:4", "with_data": True}, "does not apply"),
    ],
)
def test_bad_allocations_are_input_errors(model, data, options, message):
    options = dict(options)
    if options.pop("with_data", False):
        options.update(criterion="obs", data=data)
    with pytest.raises(InputError, match=message):
        sparsify(model, **options)


def test_nm_coverage_keeps_the_costliest_layers_dense_down_to_the_share(model, data):
    full = sparsify(model, pattern="2:4", criterion="obs", data=data, min_size=0)
    share = sum(layer.size for layer in full.layers) / full.total_weights
    partial = sparsify(
        model, pattern="2:4", criterion="obs", data=data, min_size=0, nm_coverage=share - 0.2
    )
    kept = {
        node
        for node, reason in partial.skipped.items()
        if reason.startswith("kept dense for coverage")
    }
    assert kept and kept < {layer.node for layer in full.layers}
    held = sum(layer.size for layer in partial.layers) / partial.total_weights
    assert share - 0.2 <= held < share
    assert all(layer.holds_nm for layer in partial.layers)
    assert any("N:M coverage" in note for note in partial.notes)
    unchanged = sparsify(model, pattern="2:4", criterion="obs", data=data, min_size=0,
                         nm_coverage=share + 0.01)  # fmt: skip
    assert {layer.node for layer in unchanged.layers} == {layer.node for layer in full.layers}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pattern": "2:4", "nm_coverage": 1.5}, "nm_coverage must be in"),
        ({"nm_coverage": 0.9}, "applies to an N:M pattern"),
        ({"pattern": "2:4", "nm_coverage": 0.9, "data": None}, "give calibration data"),
    ],
)
def test_nm_coverage_bad_input(model, data, options, message):
    options = {"data": data, **options}
    with pytest.raises(InputError, match=message):
        sparsify(model, **options)


def _weight_behind_a_transpose(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with MatMul mm's weight stored transposed and transposed back by a node (what
    an export without constant folding writes)."""
    changed = onnx.ModelProto()
    changed.CopyFrom(model)
    graph = changed.graph
    stored = next(init for init in graph.initializer if init.name == "wmm")
    value = onnx.numpy_helper.to_array(stored)
    stored.CopyFrom(onnx.numpy_helper.from_array(np.ascontiguousarray(value.T), "wmm_t"))
    transpose = onnx.helper.make_node("Transpose", ["wmm_t"], ["wmm"], name="t", perm=[1, 0])
    graph.node.insert(0, transpose)
    onnx.checker.check_model(changed, full_check=True)
    return changed


@pytest.mark.parametrize("criterion", ["magnitude", "obs"])
def test_weights_computed_from_constants_are_folded_and_sparsified(model, data, criterion):
    from onnxprune.sparsity.targets import computed_weights

    unfolded = _weight_behind_a_transpose(model)
    assert computed_weights(unfolded) == ["mm"] and computed_weights(model) == []
    assert find_layers(unfolded).total_weights < find_layers(model).total_weights
    assert weight_sparsity(unfolded) == weight_sparsity(model)  # inspect reads it folded
    expected = sparsify(model, 0.5, criterion=criterion, data=data)
    result = sparsify(unfolded, 0.5, criterion=criterion, data=data)
    assert result.total_weights == expected.total_weights
    assert result.total_zeros == expected.total_zeros
    assert _zeros(result.model, "mm") == _zeros(expected.model, "mm") > 0
    assert "Transpose" not in {node.op_type for node in result.model.graph.node}
    assert any("folded" in note for note in result.notes)
    np.testing.assert_allclose(run(result.model, data), run(expected.model, data), atol=1e-4)


def test_a_float16_weight_cast_to_float_is_not_folded(model):
    """Folding the Cast would store the weight as float32: the file would grow."""
    from onnxprune.sparsity.targets import computed_weights

    changed = onnx.ModelProto()
    changed.CopyFrom(model)
    stored = next(init for init in changed.graph.initializer if init.name == "wmm")
    value = onnx.numpy_helper.to_array(stored).astype(np.float16)
    stored.CopyFrom(onnx.numpy_helper.from_array(value, "wmm_half"))
    cast = onnx.helper.make_node("Cast", ["wmm_half"], ["wmm"], name="c", to=1)
    changed.graph.node.insert(0, cast)
    assert computed_weights(changed) == []
