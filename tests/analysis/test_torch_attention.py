"""``torch.nn.TransformerEncoder`` exports: ``nn.MultiheadAttention`` computes q, k and v with one
packed in-projection, splits it as [..., 3, E] and picks each part with a Gather; the batch ×
heads entry of its head reshapes is computed at run time; a padding mask is expanded over the
heads at run time (and shared by every layer in the dynamo export). Heads (or head_dim
positions) and feed-forward units must be prunable and mask-equivalent in both layouts (batch
first or not), both norm placements, with and without a padding mask, and both exporters (the
dynamo export keeps the sequence dynamic)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from onnxprune.analysis import analyze
from onnxprune.io import load_model
from onnxprune.passes import preprocess
from tests.oracle import prove_random_removals

DIM, HEADS, FFN, LAYERS, TOKENS = 32, 4, 48, 2, 6


class MaskedTextEncoder(nn.Module):
    """Token ids and a 0/1 attention mask -> masked mean of the encoder's outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, DIM)
        layer = nn.TransformerEncoderLayer(DIM, HEADS, FFN, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.embed(ids), src_key_padding_mask=mask == 0)
        weights = mask.unsqueeze(-1).to(h.dtype)
        return (h * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class Encoder(nn.Module):
    def __init__(self, batch_first: bool, norm_first: bool) -> None:
        super().__init__()
        self.batch_first = batch_first
        self.embed = nn.Linear(8, DIM)
        layer = nn.TransformerEncoderLayer(
            DIM, HEADS, FFN, dropout=0.0, batch_first=batch_first, norm_first=norm_first
        )
        self.encoder = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
        self.head = nn.Linear(DIM, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x if self.batch_first else x.transpose(0, 1))
        h = self.encoder(h)
        return self.head(h.mean(1 if self.batch_first else 0))


def _export(
    folder, batch_first: bool, norm_first: bool, exporter: str, masked: bool = False, opset=18
):
    torch.manual_seed(0)
    module = (MaskedTextEncoder() if masked else Encoder(batch_first, norm_first)).eval()
    with torch.no_grad():  # distinct, non-zero weights in every layer (deepcopy clones them)
        for parameter in module.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    if masked:
        mask = torch.ones(2, TOKENS, dtype=torch.int64)
        mask[1, TOKENS - 2 :] = 0
        args, names = (torch.randint(0, 50, (2, TOKENS)), mask), ["ids", "mask"]
    else:
        args, names = (torch.randn(2, TOKENS, 8),), ["x"]
    path = folder / f"encoder-{batch_first}-{norm_first}-{masked}-{exporter}-{opset}.onnx"
    if exporter == "torchscript":  # traces the sequence length into constants: batch only
        torch.onnx.export(module, args, str(path), dynamo=False, opset_version=17,
                          input_names=names, output_names=["y"],
                          dynamic_axes={n: {0: "batch"} for n in names})  # fmt: skip
    else:
        dims = {0: torch.export.Dim("batch", max=64), 1: torch.export.Dim("tokens", max=64)}
        torch.onnx.export(module, args, str(path), dynamo=True, input_names=names,
                          output_names=["y"], dynamic_shapes={n: dims for n in names},
                          external_data=False, opset_version=opset)  # fmt: skip
    return preprocess(load_model(path)).model


CASES = [
    (batch_first, norm_first, masked, exporter)
    for batch_first, norm_first, masked in [
        (False, False, False),
        (True, True, False),
        (True, False, True),
    ]
    for exporter in ("torchscript", "dynamo", "dynamo-23")
]


@pytest.mark.parametrize(("batch_first", "norm_first", "masked", "exporter"), CASES)
def test_heads_and_feed_forward_units_are_prunable(
    tmp_path, batch_first, norm_first, masked, exporter
):
    opset = 23 if exporter == "dynamo-23" else 18  # 23: SDPA as one ONNX Attention node
    model = _export(tmp_path, batch_first, norm_first, exporter.split("-")[0], masked, opset)
    for head_dim, attention_units in ((False, HEADS), (True, DIM // HEADS)):
        analysis = analyze(model, allow_norm_stats=False, head_dim=head_dim)
        sizes = sorted(g.size for g in analysis.groups if g.prunable)
        assert sizes == [attention_units] * LAYERS + [FFN] * LAYERS, (head_dim, sizes)
        attention = [g for g in analysis.groups if g.prunable and g.size == attention_units]
        # a unit is q, k and v of one head (or of one head_dim position in every head)
        assert all(g.width == 3 * DIM // attention_units for g in attention)
        assert prove_random_removals(analysis, seeds=2) == "ok"
    if masked:  # the padding-mask broadcast was copied per layer and follows each one's heads
        expands = [n for n in model.graph.node if n.op_type == "Expand"]
        assert len(expands) >= LAYERS


def test_pruned_encoder_keeps_a_dynamic_sequence(tmp_path):
    """The dynamo export's head reshapes read batch × heads at run time: after pruning heads
    the written -1 must resolve at other batch sizes and sequence lengths too."""
    from onnxprune.rewrite import apply_removal
    from tests.oracle import random_removal, session

    model = _export(tmp_path, True, True, "dynamo")
    analysis = analyze(model, allow_norm_stats=False)
    pruned = apply_removal(analysis, random_removal(analysis, seed=3))
    onnx.checker.check_model(pruned, full_check=True)
    for batch, tokens in ((1, 3), (5, 11)):
        x = np.random.default_rng(batch).standard_normal((batch, tokens, 8)).astype(np.float32)
        (y,) = session(pruned).run(None, {"x": x})
        assert y.shape == (batch, 3) and np.isfinite(y).all()


class GroupedQueryAttention(nn.Module):
    """4 query heads sharing 2 key/value heads (``enable_gqa``), then a classifier."""

    def __init__(self, dim: int = 32, q_heads: int = 4, kv_heads: int = 2, head: int = 8):
        super().__init__()
        self.q_heads, self.kv_heads, self.head_size = q_heads, kv_heads, head
        self.q = nn.Linear(dim, q_heads * head)
        self.k = nn.Linear(dim, kv_heads * head)
        self.v = nn.Linear(dim, kv_heads * head)
        self.out = nn.Linear(q_heads * head, dim)
        self.classify = nn.Linear(dim, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        q = self.q(x).view(batch, tokens, self.q_heads, self.head_size).transpose(1, 2)
        k = self.k(x).view(batch, tokens, self.kv_heads, self.head_size).transpose(1, 2)
        v = self.v(x).view(batch, tokens, self.kv_heads, self.head_size).transpose(1, 2)
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=True)
        y = y.transpose(1, 2).reshape(batch, tokens, self.q_heads * self.head_size)
        return self.classify(self.out(y).mean(1))


@pytest.mark.parametrize(("head_dim", "sizes"), [(False, [2, 32]), (True, [8, 8, 32])])
def test_grouped_query_attention_op_prunes_whole_key_value_groups(tmp_path, head_dim, sizes):
    """Dynamo at opset 23 writes grouped-query SDPA as one Attention node (4 query heads, 2
    key/value heads); lowered, a unit is one key/value head with its 2 query heads (or one
    head_dim position of every head), and removals are mask-equivalent."""
    torch.manual_seed(0)
    path = tmp_path / "gqa.onnx"
    torch.onnx.export(GroupedQueryAttention().eval(), (torch.randn(2, 6, 32),), str(path),
                      dynamo=True, opset_version=23, input_names=["x"], output_names=["y"],
                      external_data=False)  # fmt: skip
    original = load_model(path)
    assert any(node.op_type == "Attention" for node in original.graph.node)
    model = preprocess(original).model
    analysis = analyze(model, allow_norm_stats=False, head_dim=head_dim)
    assert sorted(g.size for g in analysis.groups if g.prunable) == sizes
    assert prove_random_removals(analysis, seeds=3) == "ok"
