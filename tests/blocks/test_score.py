"""Block criteria: a branch scaled down 1000x ranks first under every criterion."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.blocks import BLOCK_CRITERIA, BlockScoring, find_units, score_units
from onnxprune.blocks.score import kl_drop
from onnxprune.errors import InputError
from tests.blocks.graphs import residual_model


@pytest.fixture(scope="module")
def search():
    return find_units(residual_model(second_unit=True, small_second=True))


@pytest.fixture(scope="module")
def calibration():
    rng = np.random.default_rng(0)
    return {"input": rng.standard_normal((12, 8, 6, 6)).astype(np.float32)}


@pytest.mark.parametrize("criterion", ["influence", "drop", "norm_ratio"])
def test_small_branch_scores_lowest(search, calibration, criterion):
    scores = score_units(BlockScoring(search, calibration, batch_size=5), criterion)
    assert scores.shape == (2,)
    assert np.all(scores >= 0)
    assert scores[1] < scores[0] * 0.1


def test_drop_criterion_measures_with_the_given_drop_metric(search, calibration):
    from onnxprune.sensitivity.metrics import relative_squared_error

    seen = []

    def drop(reference, outputs):
        seen.append(len(reference))
        return relative_squared_error(reference, outputs)

    scores = score_units(BlockScoring(search, calibration, batch_size=5, drop=drop), "drop")
    assert len(seen) == 2  # one measurement per unit
    assert scores[1] < scores[0] * 0.1


def test_norm_ratio_runs_without_data_and_is_flagged_weak(search):
    scores = score_units(BlockScoring(search), "norm_ratio")
    assert scores[1] < scores[0]
    assert BLOCK_CRITERIA["norm_ratio"].weak and not BLOCK_CRITERIA["influence"].weak


def test_influence_matches_its_definition(search, calibration):
    scoring = BlockScoring(search, calibration, max_samples=4)
    observed = scoring.observations()[0]
    from tests.oracle import session

    unit = search.units[0]
    from onnxprune.calibrate.session import exposed_model

    model = exposed_model(search.model, [unit.identity, unit.branch], {})
    x, o = session(model).run(None, {"input": calibration["input"][:4]})
    x, y = x.reshape(4, -1).astype(np.float64), (x + o).reshape(4, -1).astype(np.float64)
    cos = np.sum(x * y, axis=1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
    assert observed.influence == pytest.approx(np.mean(1 - cos), rel=1e-6)
    np.testing.assert_allclose(observed.mean_branch, o.mean(axis=0), rtol=1e-5, atol=1e-6)


def test_kl_drop_is_zero_for_identical_outputs_and_positive_otherwise():
    a = np.random.default_rng(0).standard_normal((4, 10)).astype(np.float32)
    assert kl_drop([a], [a]) == pytest.approx(0.0, abs=1e-12)
    assert kl_drop([a], [a[::-1]]) > 0


def test_bad_criterion_and_missing_data_are_input_errors(search):
    with pytest.raises(InputError, match="unknown block criterion"):
        score_units(BlockScoring(search), "nope")
    with pytest.raises(InputError, match="needs calibration data"):
        score_units(BlockScoring(search), "influence")
