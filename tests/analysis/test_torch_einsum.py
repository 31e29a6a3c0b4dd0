"""Attention and dense layers written with ``torch.einsum`` reach ONNX as Einsum nodes (both
exporters). After ``lower_einsum`` they are MatMuls: heads (or head_dim positions) and
feed-forward units must be prunable and mask-equivalent, and every einsum's MACs counted."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models.einsum_blocks import (
    CLASSES,
    DIM,
    FFN,
    HEAD_DIM,
    HEADS,
    PER_HEAD_UNITS,
    TOKENS,
    EinsumBlock,
    PerHeadWeights,
)
from onnxprune.analysis import analyze
from onnxprune.io import load_model
from onnxprune.passes import preprocess
from tests.oracle import prove_random_removals


def _export(folder, exporter: str, module: nn.Module | None = None):
    torch.manual_seed(0)
    module = (module or EinsumBlock()).eval()
    x = torch.randn(2, TOKENS, DIM)
    path = folder / f"{type(module).__name__}-{exporter}.onnx"
    if exporter == "torchscript":
        torch.onnx.export(module, (x,), str(path), dynamo=False, opset_version=17,
                          input_names=["x"], dynamic_axes={"x": {0: "batch"}})  # fmt: skip
    else:
        torch.onnx.export(module, (x,), str(path), dynamo=True, input_names=["x"],
                          dynamic_shapes=({0: torch.export.Dim("batch", max=64)},),
                          external_data=False)  # fmt: skip
    original = load_model(path)
    assert "Einsum" in {node.op_type for node in original.graph.node}
    return preprocess(original).model


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_einsum_attention_is_prunable_in_heads_and_counted(tmp_path, exporter):
    model = _export(tmp_path, exporter)
    assert "Einsum" not in {node.op_type for node in model.graph.node}
    # whole heads tie q, k, v and o; head_dim positions of q·k and of v·o are independent
    for head_dim, units in ((False, [HEADS]), (True, [HEAD_DIM, HEAD_DIM])):
        analysis = analyze(model, allow_norm_stats=False, head_dim=head_dim)
        sizes = sorted(group.size for group in analysis.groups if group.prunable)
        assert sizes == sorted([*units, FFN]), (head_dim, sizes)
        assert prove_random_removals(analysis, seeds=2) == "ok"
    per_token = 3 * DIM * DIM + 2 * TOKENS * DIM + DIM * DIM + 2 * DIM * FFN
    assert analysis.total_macs == TOKENS * per_token + DIM * CLASSES


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_per_head_weights_follow_whole_heads_or_head_dim_positions(tmp_path, exporter):
    """Whole heads slice the per-head weight along its heads axis; head_dim positions slice
    its input axis and make its 6 output positions a unit of their own. Mask-equivalent."""
    model = _export(tmp_path, exporter, PerHeadWeights())
    heads = analyze(model, allow_norm_stats=False)
    assert sorted(g.size for g in heads.groups if g.prunable) == [HEADS]
    assert prove_random_removals(heads, seeds=2) == "ok"
    positions = analyze(model, allow_norm_stats=False, head_dim=True)
    assert sorted(g.size for g in positions.groups if g.prunable) == sorted(
        [PER_HEAD_UNITS, HEAD_DIM]
    )
    assert prove_random_removals(positions, seeds=2) == "ok"
