"""Single attention blocks written with ``torch.einsum`` (random weights, nothing downloaded):
the layer patterns the ``lower_einsum`` pass and the per-slice MatMul rule exist for, used by
tests/analysis/test_torch_einsum.py and tools/torch_layers_coverage.py.

* :class:`EinsumBlock` — per-head projections as [D, H, d] weights (Keras' ``EinsumDense``
  layout), einsum scores and context, an einsum output projection and feed-forward.
* :class:`PerHeadWeights` — a fused qkv Linear, einsum attention, then one [d, E] weight per
  head (the heads a batch axis of a constant weight) before the heads merge.

Input [batch, TOKENS, DIM] float32, output [batch, CLASSES].
"""

from __future__ import annotations

import torch
from torch import nn

DIM, HEADS, FFN, TOKENS, CLASSES = 32, 4, 64, 16, 10
HEAD_DIM = DIM // HEADS
PER_HEAD_UNITS = 6


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


class PerHeadWeights(nn.Module):
    """Attention whose context goes through one [head_dim, E] weight per head before the
    heads merge (``einsum("bqnh,nhe->bqne")``, the heads a batch axis of a constant weight:
    Funnel Transformer's relative attention writes this)."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(DIM, 3 * DIM)
        self.per_head = nn.Parameter(torch.randn(HEADS, HEAD_DIM, PER_HEAD_UNITS) * 0.2)
        self.out = nn.Linear(HEADS * PER_HEAD_UNITS, DIM)
        self.head = nn.Linear(DIM, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        q, k, v = self.qkv(x).reshape(batch, TOKENS, 3, HEADS, HEAD_DIM).unbind(2)
        attention = torch.einsum("bqnh,bknh->bnqk", q, k).softmax(-1)
        context = torch.einsum("bnqk,bknh->bqnh", attention, v)
        mixed = torch.einsum("bqnh,nhe->bqne", context, self.per_head)
        return self.head((x + self.out(torch.relu(mixed.reshape(batch, TOKENS, -1)))).mean(1))
