"""rank_units: optimize's ranking of channels and blocks without the guarded loop."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from onnxprune.errors import InputError
from onnxprune.pipeline.plan import merge_units
from onnxprune.pipeline.ranked import rank_units
from onnxprune.rewrite import check_model
from onnxprune.stats import count_macs
from tests.blocks.graphs import calibration_feeds, residual_model
from tests.oracle import session

SHAPES = {"input": [1, 8, 6, 6]}


@pytest.fixture(scope="module")
def model():
    return residual_model(second_unit=True, small_second=True)


@pytest.fixture(scope="module")
def calibration():
    return calibration_feeds(24)


@pytest.fixture(scope="module")
def ranked(model, calibration):
    return rank_units(model, calibration, units="channels,blocks", recover="none", round_to=1)


def test_both_kinds_ranked_together_by_drop_per_mac(ranked):
    kinds = [unit.kind for unit in ranked.units]
    assert set(kinds) == {"channels", "blocks"}
    assert ranked.units == merge_units([setup.units for setup in ranked.setups])
    scores = [unit.score for unit in ranked.units]
    assert scores == sorted(scores)
    assert (ranked.criterion, ranked.allocation, ranked.recovery) == ("obs", "sensitivity", "none")
    assert "sensitivity" in ranked.seconds


def test_prefixes_build_checked_models_with_fewer_macs(ranked, calibration):
    macs = [count_macs(ranked.build(n), SHAPES).total for n in range(len(ranked.units) + 1)]
    assert macs[0] == count_macs(ranked.prepared, SHAPES).total
    assert all(later <= earlier for earlier, later in itertools.pairwise(macs))
    assert macs[-1] < macs[0]
    model = ranked.build(len(ranked.units))
    check_model(model)
    assert [o.name for o in model.graph.output] == [o.name for o in ranked.original.graph.output]
    assert ranked.items(2) == frozenset(i for u in ranked.units[:2] for i in u.items)
    with pytest.raises(InputError, match="count must be"):
        ranked.items(len(ranked.units) + 1)


def test_with_recovery_repairs_only_the_channels(ranked, calibration):
    from onnxprune.recover import make_recovery

    count = next(i for i, u in enumerate(ranked.units, 1) if u.kind == "channels")
    plain = ranked.build(count)
    same = ranked.build(count, plan=ranked.with_recovery(None))
    feeds = {"input": calibration["input"][:4]}
    expected, got = (session(m).run(None, feeds)[0] for m in (plain, same))
    assert np.allclose(expected, got, atol=1e-6)
    lsq = make_recovery("lsq", ranked.analysis, ranked.calibration)
    repaired = ranked.build(count, plan=ranked.with_recovery(lsq))
    check_model(repaired)
    assert count_macs(repaired, SHAPES).total == count_macs(plain, SHAPES).total
    assert [k.name for k in ranked.with_recovery(lsq).kinds] == ["channels", "blocks"]


def test_of_kinds_keeps_the_measurements(ranked):
    for setup in ranked.setups:
        alone = ranked.of_kinds(setup.kind.name)
        assert alone.units == setup.units and alone.plan is ranked.plan
    assert ranked.of_kinds("channels", "blocks").units == ranked.units
    with pytest.raises(InputError, match="no kind"):
        ranked.of_kinds("sparsity")


@pytest.mark.parametrize("kind", ["channels", "blocks"])
def test_one_kind_alone(model, calibration, kind):
    ranked = rank_units(model, calibration, units=kind, recover="none", round_to=1)
    assert ranked.units and {unit.kind for unit in ranked.units} == {kind}


def test_needs_data(model):
    with pytest.raises(InputError, match="calibration data"):
        rank_units(model, None)
