"""``onnxprune.remove_blocks`` end to end: selection, notes, refit, errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import onnxprune
from onnxprune.blocks import block_candidates, find_units
from onnxprune.errors import InputError
from tests.blocks.graphs import calibration_feeds, residual_model
from tests.oracle import random_feeds, session


@pytest.fixture(scope="module")
def model():
    return residual_model(second_unit=True, small_second=True)


@pytest.fixture(scope="module")
def calibration():
    return calibration_feeds(16)


def test_removes_the_lowest_scored_unit(model, calibration):
    result = onnxprune.remove_blocks(model, 1, calibration=calibration)
    assert result.criterion == "influence"
    assert [result.search.units[i].add for i in result.removed] == ["add2"]
    assert result.macs_after < result.macs_before
    assert result.params_after < result.params_before
    onnx.checker.check_model(result.model, full_check=True)
    feeds = random_feeds(model)
    want = session(model).run(None, feeds)[0]
    got = session(result.model).run(None, feeds)[0]
    assert np.abs(got - want).max() < 1e-2 * np.abs(want).max()  # the removed branch was tiny
    data = result.to_dict()
    assert data["removed_units"] == ["add2"]
    assert data["search"]["removable_mac_share"] > 0


def test_without_data_the_result_says_it_is_weak(model):
    result = onnxprune.remove_blocks(model, 2)
    assert result.criterion == "norm_ratio"
    assert any("weak" in note for note in result.notes)
    assert [n.op_type for n in result.model.graph.node] == ["Conv", "Conv"]


def test_refit_repairs_the_following_layer(model, calibration):
    plain = onnxprune.remove_blocks(model, units=[0], calibration=calibration)
    refitted = onnxprune.remove_blocks(model, units=[0], calibration=calibration, refit=True)
    assert refitted.refitted == 1
    feeds = {"input": calibration["input"]}
    want = session(model).run(None, feeds)[0]

    def error(result):
        return float(np.mean((session(result.model).run(None, feeds)[0] - want) ** 2))

    assert error(refitted) < error(plain)


def test_candidates_are_sorted_by_score(model):
    search = find_units(model)
    candidates = block_candidates(search, np.array([0.5, 0.1]))
    assert [c.unit for c in candidates] == [1, 0]
    assert candidates[0].items == (1,) and candidates[0].macs == search.units[1].macs


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": 3}, "exceeds the 2 removable unit"),
        ({"count": -1}, ">= 0"),
        ({"units": [5]}, "unknown block unit"),
        ({"count": 1, "refit": True}, "needs calibration data"),
        ({"count": 1, "criterion": "nope"}, "unknown block criterion"),
    ],
)
def test_bad_requests_are_input_errors(model, kwargs, message):
    count = kwargs.pop("count", None)
    with pytest.raises(InputError, match=message):
        onnxprune.remove_blocks(model, count, **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "vit_tiny"])
def test_block_kind_applies_after_channel_removal(zoo_onnx, name):
    """Blocks after channels (the plan's build order): constants are re-observed where x lost
    channels, and the result equals the channel-pruned model with those branches constant."""
    import dataclasses

    from onnxprune.analysis import analyze
    from onnxprune.blocks import constant_branch_model
    from onnxprune.blocks.api import block_kind
    from onnxprune.blocks.observe import constants_for
    from onnxprune.passes import preprocess
    from onnxprune.rewrite import apply_removal
    from tests.oracle import random_removal, relative_error

    prepared = preprocess(onnx.load(zoo_onnx(name))).model
    analysis = analyze(prepared)
    channel_pruned = apply_removal(analysis, random_removal(analysis, seed=0, share=0.3))
    data = random_feeds(prepared, batch=6, seed=5)
    kind = block_kind(prepared, calibration=data)
    units = [c.unit for c in kind.candidates[:2]]
    both = kind.apply(channel_pruned, units)
    original_constants = kind.scoring.constants()
    constants = constants_for(kind.search, channel_pruned, units, original_constants, data)
    assert any(constants[u].shape != original_constants[u].shape for u in units)
    reference = constant_branch_model(
        dataclasses.replace(kind.search, model=channel_pruned), units, constants
    )
    feeds = random_feeds(prepared, batch=2, seed=6)
    outputs = session(both).run(None, feeds), session(reference).run(None, feeds)
    for got, want in zip(*outputs, strict=True):
        assert got.shape == want.shape
        assert relative_error(got, want) <= 1e-5
