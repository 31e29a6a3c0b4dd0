"""A BERT-style text encoder laid out as Hugging Face's ``BertModel`` (MiniLM-L6 sizes at width 1).

What matters for pruning real exports is kept faithful: token + position + token-type
embeddings where the position ids are sliced from a registered [1, 512] buffer by the input's
sequence length (a shape computation ONNX shape inference cannot follow), post-LN residual
blocks, GELU feed-forward, attention written as Linear q/k/v -> view to heads -> permute ->
matmul / softmax / matmul with an additive mask built from ``attention_mask`` (or the same
through ``scaled_dot_product_attention``), and the tanh pooler over the first token.

Inputs: ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64 [B, L]); outputs:
``last_hidden_state`` [B, L, H] and ``pooler_output`` [B, H].
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ._common import scale_depth

MAX_POSITIONS = 512
TYPE_VOCAB = 2
MIN_VOCAB = 64
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAMES = ("last_hidden_state", "pooler_output")


class Embeddings(nn.Module):
    """word(ids) + position(position_ids[:, :L]) + token_type(type ids), then LayerNorm."""

    def __init__(self, vocab: int, dim: int) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim)
        self.position_embeddings = nn.Embedding(MAX_POSITIONS, dim)
        self.token_type_embeddings = nn.Embedding(TYPE_VOCAB, dim)
        self.LayerNorm = nn.LayerNorm(dim, eps=1e-12)
        self.register_buffer(
            "position_ids", torch.arange(MAX_POSITIONS).expand((1, -1)), persistent=False
        )

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        """Ids [B, L] -> embeddings [B, L, H]."""
        seq_length = input_ids.shape[1]
        position_ids = self.position_ids[:, :seq_length]
        embeddings = (
            self.word_embeddings(input_ids)
            + self.token_type_embeddings(token_type_ids)
            + self.position_embeddings(position_ids)
        )
        return self.LayerNorm(embeddings)


class SelfAttention(nn.Module):
    """HF ``BertSelfAttention`` (eager) or its SDPA form, followed by ``BertSelfOutput``.

    scores = (q k^T) / sqrt(head_dim) + mask; context = softmax(scores) v; heads merged back;
    out = LayerNorm(dense(context) + x).
    """

    def __init__(self, dim: int, num_heads: int, sdpa: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.all_head_size = self.num_heads * self.head_dim
        self.sdpa = sdpa
        self.query = nn.Linear(dim, self.all_head_size)
        self.key = nn.Linear(dim, self.all_head_size)
        self.value = nn.Linear(dim, self.all_head_size)
        self.dense = nn.Linear(dim, dim)
        self.LayerNorm = nn.LayerNorm(dim, eps=1e-12)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L, h*d] -> [B, h, L, d] with a view on run-time sizes, as HF writes it."""
        shape = (*x.size()[:-1], self.num_heads, self.head_dim)
        return x.view(shape).permute(0, 2, 1, 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, L, H], additive mask [B, 1, 1, L] -> [B, L, H]."""
        query = self._heads(self.query(x))
        key = self._heads(self.key(x))
        value = self._heads(self.value(x))
        if self.sdpa:
            context = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        else:
            scores = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(self.head_dim)
            probs = nn.functional.softmax(scores + mask, dim=-1)
            context = torch.matmul(probs, value)
        context = context.permute(0, 2, 1, 3).contiguous()
        context = context.view((*context.size()[:-2], self.all_head_size))
        return self.LayerNorm(self.dense(context) + x)


class Layer(nn.Module):
    """Post-LN encoder layer: attention block, then LayerNorm(x + fc2(gelu(fc1(x))))."""

    def __init__(self, dim: int, num_heads: int, hidden: int, sdpa: bool) -> None:
        super().__init__()
        self.attention = SelfAttention(dim, num_heads, sdpa)
        self.intermediate = nn.Linear(dim, hidden)
        self.output = nn.Linear(hidden, dim)
        self.LayerNorm = nn.LayerNorm(dim, eps=1e-12)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, L, H] -> [B, L, H]."""
        x = self.attention(x, mask)
        return self.LayerNorm(self.output(F.gelu(self.intermediate(x))) + x)


class BertEncoder(nn.Module):
    """Embeddings -> layers -> (last_hidden_state, tanh(pooler(last_hidden_state[:, 0])))."""

    def __init__(
        self, *, vocab: int, dim: int, depth: int, num_heads: int, hidden: int, sdpa: bool
    ) -> None:
        super().__init__()
        self.embeddings = Embeddings(vocab, dim)
        self.layers = nn.ModuleList(Layer(dim, num_heads, hidden, sdpa) for _ in range(depth))
        self.pooler = nn.Linear(dim, dim)
        self.max_sequence = MAX_POSITIONS  # bound of the dynamic sequence axis for torch.export

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids, 0/1 mask and type ids, all [B, L] int64 -> ([B, L, H], [B, H])."""
        x = self.embeddings(input_ids, token_type_ids)
        mask = attention_mask[:, None, None, :].to(x.dtype)
        mask = (1.0 - mask) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, mask)
        return x, torch.tanh(self.pooler(x[:, 0]))


def _build(width: float, depth: float, sdpa: bool) -> BertEncoder:
    num_heads = 12
    step = math.lcm(8, num_heads)
    dim = max(step, round(384 * width / step) * step)
    return BertEncoder(
        vocab=max(MIN_VOCAB, round(30522 * width)),
        dim=dim,
        depth=scale_depth(6, depth),
        num_heads=num_heads,
        hidden=4 * dim,
        sdpa=sdpa,
    )


def build_bert(*, width: float, num_classes: int, input_size: int, depth: float) -> nn.Module:
    """MiniLM-L6-shaped BERT encoder with eager attention (22,713,216 parameters at width 1:
    vocab 30522, hidden 384, 12 heads, 6 layers, FFN 1536). ``width`` scales the hidden size to
    a multiple of 24 and the vocabulary; ``num_classes`` and ``input_size`` (the sequence
    length, any value up to 512) do not change the weights."""
    del num_classes, input_size
    return _build(width, depth, sdpa=False)


def build_bert_sdpa(*, width: float, num_classes: int, input_size: int, depth: float) -> nn.Module:
    """:func:`build_bert` with ``scaled_dot_product_attention`` (the HF default)."""
    del num_classes, input_size
    return _build(width, depth, sdpa=True)
