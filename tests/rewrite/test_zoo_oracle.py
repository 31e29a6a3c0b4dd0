"""The mask-equivalence oracle on every zoo model, both PyTorch exporters.

For random channel subsets (hypothesis) of every prunable group, the pruned model must pass the
ONNX checker and give the outputs of the original model whose consumers of the removed channels
read zeros (relative error <= 1e-5). Groups feeding LayerNorm/GroupNorm statistics are not
mask-equivalent by construction: models where such a group is pruned are checked for validity,
output names, dtypes and shapes instead.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import MODELS
from onnxprune.analysis import analyze
from onnxprune.passes import preprocess
from onnxprune.rewrite import apply_removal, check_model
from tests.oracle import assert_mask_equivalent, random_feeds, session

EXPORTERS = ("torchscript", "dynamo")
CASES = [(name, exporter) for name in MODELS for exporter in EXPORTERS]
_ANALYSES: dict[tuple[str, str], object] = {}


@pytest.fixture
def zoo_analysis(zoo_onnx):
    def get(name: str, exporter: str):
        key = (name, exporter)
        if key not in _ANALYSES:
            path = zoo_onnx(name, exporter)
            _ANALYSES[key] = analyze(preprocess(onnx.load(path)).model)
        return _ANALYSES[key]

    return get


def _draw_removal(data, analysis, equivalent_only: bool) -> set[int]:
    removed: set[int] = set()
    for group in analysis.groups:
        if not group.prunable or (equivalent_only and group.stats_coupled):
            continue
        free = [int(c) for c in group.clusters[~group.blocked]]
        limit = min(len(free), group.size - 1)
        count = data.draw(st.integers(0, limit), label=f"count[{group.index}]")
        chosen = data.draw(st.permutations(free), label=f"order[{group.index}]")[:count]
        removed.update(chosen)
    for clusters in analysis.min_keep:
        if clusters.size and all(int(c) in removed for c in clusters):
            removed.discard(int(clusters[0]))
    return removed


@pytest.mark.parametrize(("name", "exporter"), CASES)
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(data=st.data())
def test_pruned_equals_masked_original(zoo_analysis, name, exporter, data):
    analysis = zoo_analysis(name, exporter)
    removed = _draw_removal(data, analysis, equivalent_only=True)
    assert_mask_equivalent(analysis, removed)


@pytest.mark.parametrize(("name", "exporter"), CASES)
def test_half_of_every_group_removed_is_valid(zoo_analysis, name, exporter):
    """Ratio 0.5 on every group (statistics-coupled ones included): checker, ORT, same I/O."""
    analysis = zoo_analysis(name, exporter)
    removed = set()
    for group in analysis.groups:
        if group.prunable:
            free = group.clusters[~group.blocked]
            removed.update(int(c) for c in free[: min(len(free), group.size // 2)])
    pruned = apply_removal(analysis, removed)
    check_model(pruned)
    original_outputs = [(o.name, o.type.tensor_type.elem_type) for o in analysis.model.graph.output]
    assert [(o.name, o.type.tensor_type.elem_type) for o in pruned.graph.output] == original_outputs
    feeds = random_feeds(analysis.model, batch=3)
    got = session(pruned).run(None, feeds)
    want = session(analysis.model).run(None, feeds)
    assert [g.shape for g in got] == [w.shape for w in want]
    assert all(np.isfinite(g).all() for g in got)
    macs_after = sum(analyze(pruned).node_macs.values())
    assert macs_after < analysis.total_macs
