"""Channel permutations on every zoo model, both PyTorch exporters: outputs unchanged.

A random reorder of every group that :func:`permutation_blockers` allows must pass the ONNX
checker and give the original outputs (relative error <= 1e-5); each model must have at least
one group to reorder when it has an ordinary conv or linear stack, and a blocked group must be
refused with a RewriteError.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from models import MODELS
from onnxprune.analysis import analyze
from onnxprune.passes import preprocess
from onnxprune.rewrite import check_model
from onnxprune.rewrite.apply import RewriteError
from onnxprune.rewrite.permute import permutation_blockers, permute_channels
from tests.oracle import random_feeds, relative_error, session

CASES = [(name, exporter) for name in MODELS for exporter in ("torchscript", "dynamo")]


def _random_sources(analysis, reasons, seed: int) -> dict[int, int]:
    rng = np.random.default_rng(seed)
    sources: dict[int, int] = {}
    for group in analysis.groups:
        if reasons[group.index] is None:
            sources.update(
                zip(group.clusters.tolist(), rng.permutation(group.clusters).tolist(), strict=True)
            )
    return sources


@pytest.mark.parametrize(("name", "exporter"), CASES)
def test_random_reorder_keeps_outputs(zoo_onnx, name, exporter):
    analysis = analyze(preprocess(onnx.load(zoo_onnx(name, exporter))).model)
    reasons = permutation_blockers(analysis)
    sources = _random_sources(analysis, reasons, seed=0)
    if not sources:
        pytest.skip(f"{name}: no group may be reordered ({set(reasons.values())})")
    permuted = permute_channels(analysis, sources)
    check_model(permuted)
    feeds = random_feeds(analysis.model, batch=2)
    want = session(analysis.model).run(None, feeds)
    got = session(permuted).run(None, feeds)
    for w, g in zip(want, got, strict=True):
        assert relative_error(g, w) <= 1e-5
    moved = sum(
        not np.array_equal(onnx.numpy_helper.to_array(a), onnx.numpy_helper.to_array(b))
        for a, b in zip(analysis.model.graph.initializer, permuted.graph.initializer, strict=True)
    )
    assert moved > 0


def test_blocked_group_is_refused(zoo_onnx):
    analysis = analyze(preprocess(onnx.load(zoo_onnx("resnet18"))).model)
    reasons = permutation_blockers(analysis)
    blocked = next(g for g in analysis.groups if reasons[g.index] is not None)
    clusters = blocked.clusters[:2].tolist()
    with pytest.raises(RewriteError):
        permute_channels(analysis, {clusters[0]: clusters[1], clusters[1]: clusters[0]})


def test_sources_must_be_a_bijection(zoo_onnx):
    analysis = analyze(preprocess(onnx.load(zoo_onnx("vgg16"))).model)
    group = next(g for g in analysis.groups if g.size > 2)
    a, b, c = group.clusters[:3].tolist()
    with pytest.raises(RewriteError):
        permute_channels(analysis, {a: b, b: c, c: b})
