"""Attention and dense layers written with ``torch.einsum`` reach ONNX as Einsum nodes (both
exporters). After ``lower_einsum`` they are MatMuls: heads (or head_dim positions) and
feed-forward units must be prunable and mask-equivalent, and every einsum's MACs counted."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from onnxprune.analysis import analyze
from onnxprune.io import load_model
from onnxprune.passes import preprocess
from tests.oracle import prove_random_removals

DIM, HEADS, FFN, TOKENS, CLASSES = 32, 4, 64, 16, 10
HEAD_DIM = DIM // HEADS


class EinsumBlock(nn.Module):
    """Per-head projections as [D, H, d] weights (Keras' EinsumDense layout), einsum scores and
    context, an einsum output projection from [H, d] and an einsum feed-forward."""

    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.v = (
            nn.Parameter(torch.randn(DIM, HEADS, HEAD_DIM) * 0.1) for _ in range(3)
        )
        self.o = nn.Parameter(torch.randn(HEADS, HEAD_DIM, DIM) * 0.1)
        self.up = nn.Parameter(torch.randn(DIM, FFN) * 0.1)
        self.down = nn.Parameter(torch.randn(FFN, DIM) * 0.1)
        self.head = nn.Linear(DIM, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = torch.einsum("btd,dhk->bthk", x, self.q)
        k = torch.einsum("btd,dhk->bthk", x, self.k)
        v = torch.einsum("btd,dhk->bthk", x, self.v)
        scores = torch.einsum("bthk,bshk->bhts", q, k) * HEAD_DIM**-0.5
        context = torch.einsum("bhts,bshk->bthk", scores.softmax(-1), v)
        x = x + torch.einsum("bthk,hkd->btd", context, self.o)
        x = x + torch.einsum(
            "btf,fd->btd", torch.relu(torch.einsum("btd,df->btf", x, self.up)), self.down
        )
        return self.head(x.mean(1))


def _export(folder, exporter: str):
    torch.manual_seed(0)
    module = EinsumBlock().eval()
    x = torch.randn(2, TOKENS, DIM)
    path = folder / f"einsum-{exporter}.onnx"
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
