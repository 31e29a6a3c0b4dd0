"""Channel analysis of real transformer-encoder exports (the zoo BERT, both exporters, eager
and SDPA attention): heads and feed-forward units prunable through run-time shapes, the
hidden size through LayerNorm and the embeddings when allowed, sequence length kept dynamic."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from onnxprune.analysis import analyze
from onnxprune.passes import preprocess
from onnxprune.rewrite import apply_removal, check_model
from tests.oracle import random_feeds, random_removal, session

CASES = [("bert", "torchscript"), ("bert", "dynamo"), ("bert_sdpa", "dynamo")]
_MODELS: dict[tuple[str, str], onnx.ModelProto] = {}


@pytest.fixture
def encoder(zoo_onnx):
    def get(name: str, exporter: str) -> onnx.ModelProto:
        if (name, exporter) not in _MODELS:
            _MODELS[(name, exporter)] = preprocess(onnx.load(zoo_onnx(name, exporter))).model
        return _MODELS[(name, exporter)]

    return get


def _residual_group(analysis):
    return next(g for g in analysis.groups if any("embedding" in s for s in g.sources))


@pytest.mark.parametrize(("name", "exporter"), CASES)
def test_heads_and_feed_forward_are_prunable(encoder, name, exporter):
    analysis = analyze(encoder(name, exporter))
    assert any("measured" in note for note in analysis.notes)
    sizes = sorted(g.size for g in analysis.groups if g.prunable)
    assert sizes == [12, 12, 384, 384]  # whole heads per layer, FFN units per layer
    assert analysis.prunable_macs() >= 0.9 * analysis.total_macs
    residual = _residual_group(analysis)
    assert residual.size == 96 and residual.stats_coupled and not residual.prunable
    assert any("graph output" in reason for reason in residual.reasons)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "exporter"), CASES)
def test_hidden_size_pruned_when_output_change_allowed_runs_at_two_lengths(encoder, name, exporter):
    analysis = analyze(encoder(name, exporter), allow_output_change=True)
    residual = _residual_group(analysis)
    assert residual.prunable and residual.stats_coupled
    removed = random_removal(analysis, seed=1, share=0.4)
    pruned = apply_removal(analysis, removed)
    check_model(pruned)
    kept = residual.size - len(set(residual.clusters.tolist()) & removed)
    dims = [
        [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        for value in pruned.graph.output
    ]
    assert [d[-1] for d in dims] == [kept, kept] and all(isinstance(d[0], str) for d in dims)
    for value in pruned.graph.input:
        assert all(d.dim_param for d in value.type.tensor_type.shape.dim)
    runner = session(pruned)
    for length in (3, 10):
        hidden, pooled = runner.run(None, random_feeds(analysis.model, batch=length, seed=2))
        assert hidden.shape == (length, length, kept) and pooled.shape == (length, kept)
        assert np.isfinite(hidden).all()


def test_norm_statistics_can_be_refused(encoder):
    analysis = analyze(
        encoder("bert", "torchscript"), allow_output_change=True, allow_norm_stats=False
    )
    residual = _residual_group(analysis)
    assert not residual.prunable
    assert any("allow_norm_stats" in reason for reason in residual.reasons)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "exporter"), [("bert", "torchscript"), ("bert_sdpa", "dynamo")])
def test_head_dim_option_prunes_the_same_positions_in_every_head(encoder, name, exporter):
    """head_dim=True: per layer one group of q/k positions and one of v positions (head_dim
    8 each), all 12 heads kept; mask-equivalent and runs at two sequence lengths."""
    from tests.oracle import assert_mask_equivalent

    analysis = analyze(encoder(name, exporter), head_dim=True)
    sizes = sorted(g.size for g in analysis.groups if g.prunable)
    assert sizes == [8, 8, 8, 8, 384, 384]
    removed = random_removal(analysis, seed=3, share=0.4)
    pruned = assert_mask_equivalent(analysis, removed, feeds=random_feeds(analysis.model, 3, 3))
    for length in (2, 7):
        hidden, _ = session(pruned).run(None, random_feeds(analysis.model, batch=length))
        assert hidden.shape == (length, length, 96)


@pytest.mark.parametrize(("name", "head_dim", "sizes"), [
    ("bert_sdpa", False, [12, 12, 384, 384]),
    ("bert_sdpa", True, [8, 8, 8, 8, 384, 384]),
    ("vit_tiny_mha", False, [3, 3, 192, 192]),
])  # fmt: skip
def test_attention_op_exports_prune_like_the_decomposed_ones(zoo_onnx, name, head_dim, sizes):
    """Dynamo at opset 23 writes SDPA as one ONNX ``Attention`` node; after the
    ``lower_attention`` pass the heads (or head_dim positions) and feed-forward units are the
    same groups as in the opset-18 export, count the same MACs and are mask-equivalent."""
    from tests.oracle import prove_random_removals

    original = onnx.load(zoo_onnx(name, "dynamo", opset=23))
    assert "Attention" in {node.op_type for node in original.graph.node}
    model = preprocess(original).model
    assert "Attention" not in {node.op_type for node in model.graph.node}
    analysis = analyze(model, allow_norm_stats=False, head_dim=head_dim)
    assert sorted(g.size for g in analysis.groups if g.prunable) == sizes
    decomposed = analyze(preprocess(onnx.load(zoo_onnx(name, "dynamo", opset=18))).model,
                         allow_norm_stats=False, head_dim=head_dim)  # fmt: skip
    assert analysis.total_macs == decomposed.total_macs
    assert analysis.prunable_macs() == decomposed.prunable_macs()
    assert prove_random_removals(analysis, seeds=2) == "ok"
