"""``torch.nn.TransformerEncoder`` exports: ``nn.MultiheadAttention`` computes q, k and v with one
packed in-projection, splits it as [..., 3, E] and picks each part with a Gather; the batch ×
heads entry of its head reshapes is computed at run time. Heads (or head_dim positions) and
feed-forward units must be prunable and mask-equivalent in both layouts (batch first or not),
both norm placements and both exporters (the dynamo export keeps the sequence dynamic)."""

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


def _export(folder, batch_first: bool, norm_first: bool, exporter: str):
    torch.manual_seed(0)
    module = Encoder(batch_first, norm_first).eval()
    with torch.no_grad():  # distinct, non-zero weights in every layer (deepcopy clones them)
        for parameter in module.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    x = torch.randn(2, TOKENS, 8)
    path = folder / f"encoder-{batch_first}-{norm_first}-{exporter}.onnx"
    if exporter == "torchscript":  # traces the sequence length into constants: batch only
        torch.onnx.export(module, (x,), str(path), dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}})  # fmt: skip
    else:
        dims = {0: torch.export.Dim("batch", max=64), 1: torch.export.Dim("tokens", max=64)}
        torch.onnx.export(module, (x,), str(path), dynamo=True, input_names=["x"],
                          output_names=["y"], dynamic_shapes={"x": dims},
                          external_data=False)  # fmt: skip
    return preprocess(load_model(path)).model


CASES = [
    (batch_first, norm_first, exporter)
    for batch_first, norm_first in [(False, False), (True, True)]
    for exporter in ("torchscript", "dynamo")
]


@pytest.mark.parametrize(("batch_first", "norm_first", "exporter"), CASES)
def test_heads_and_feed_forward_units_are_prunable(tmp_path, batch_first, norm_first, exporter):
    model = _export(tmp_path, batch_first, norm_first, exporter)
    for head_dim, attention_units in ((False, HEADS), (True, DIM // HEADS)):
        analysis = analyze(model, allow_norm_stats=False, head_dim=head_dim)
        sizes = sorted(g.size for g in analysis.groups if g.prunable)
        assert sizes == [attention_units] * LAYERS + [FFN] * LAYERS, (head_dim, sizes)
        attention = [g for g in analysis.groups if g.prunable and g.size == attention_units]
        # a unit is q, k and v of one head (or of one head_dim position in every head)
        assert all(g.width == 3 * DIM // attention_units for g in attention)
        assert prove_random_removals(analysis, seeds=2) == "ok"


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
