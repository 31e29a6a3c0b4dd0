"""ViT-Tiny/16 (Dosovitskiy et al. 2021): attention with a fused qkv Linear laid out as in timm,
with ``torch.nn.MultiheadAttention`` as torchvision's ViT writes it (packed in-projection), or
with ``torch.einsum`` over per-head weights (the [dim, heads, head_dim] kernels of Flax's
``DenseGeneral`` and Keras' ``EinsumDense``, as ports of JAX ViTs keep them)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ._common import scale_depth


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv Linear.

    qkv(x) -> reshape [B, N, 3, heads, head_dim] -> permute [3, B, heads, N, head_dim] -> unbind;
    attn = softmax((q * head_dim**-0.5) @ k^T); out = proj((attn @ v) -> [B, N, C]).
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fused-qkv attention over tokens x: [B, N, C] -> [B, N, C]."""
        batch, tokens, channels = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(batch, tokens, channels)
        return self.proj(x)


class TorchAttention(nn.Module):
    """Self-attention through ``nn.MultiheadAttention`` (batch first, no attention weights
    returned), as torchvision's ViT encoder block calls it. Its export computes q, k and v
    with one in-projection of 3·dim outputs and picks each part with a Gather."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        # torch initialises both biases to zero; a trained model's are not (and zeros equal
        # in every block would make the blocks' biases indistinguishable by value)
        nn.init.normal_(self.attention.in_proj_bias, std=0.02)
        nn.init.normal_(self.attention.out_proj.bias, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, N, C] -> [B, N, C]."""
        out, _ = self.attention(x, x, x, need_weights=False)
        return out


class EinsumAttention(nn.Module):
    """Multi-head self-attention written with ``torch.einsum`` (exported as Einsum nodes).

    q, k, v = einsum("bnd,dhk->bnhk", x, W) (+ b for q and v) with W [dim, heads, head_dim];
    attn = softmax(einsum("bnhk,bmhk->bhnm", q * head_dim**-0.5, k));
    out = einsum("bnhk,hkd->bnd", einsum("bhnm,bmhk->bnhk", attn, v), W_out) + b_out.
    The keys have no bias (as in Whisper): q·b_k is the same for every key, so the softmax over
    the keys cancels it and its gradient is zero. :class:`Attention`'s parameters less dim.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        head_dim = dim // num_heads
        self.scale = head_dim**-0.5
        shape = (dim, num_heads, head_dim)
        self.q, self.k, self.v = (nn.Parameter(torch.randn(shape) * dim**-0.5) for _ in range(3))
        self.q_bias, self.v_bias = (
            nn.Parameter(torch.randn(num_heads, head_dim) * 0.02) for _ in range(2)
        )
        self.out = nn.Parameter(torch.randn(num_heads, head_dim, dim) * dim**-0.5)
        self.out_bias = nn.Parameter(torch.randn(dim) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, N, C] -> [B, N, C]."""
        q = torch.einsum("bnd,dhk->bnhk", x, self.q) + self.q_bias
        k = torch.einsum("bnd,dhk->bnhk", x, self.k)
        v = torch.einsum("bnd,dhk->bnhk", x, self.v) + self.v_bias
        attn = torch.einsum("bnhk,bmhk->bhnm", q * self.scale, k).softmax(dim=-1)
        context = torch.einsum("bhnm,bmhk->bnhk", attn, v)
        return torch.einsum("bnhk,hkd->bnd", context, self.out) + self.out_bias


#: attention implementations by name (:func:`build_vit_tiny`'s ``attention``)
ATTENTION = {"fused": Attention, "torch_mha": TorchAttention, "einsum": EinsumAttention}


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """fc2(gelu(fc1(x)))."""
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + mlp(LN(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, attention: str) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = ATTENTION[attention](dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Two pre-norm residual branches."""
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """Patch-embed conv -> flatten to tokens -> prepend class token -> add position embedding
    -> blocks -> LayerNorm -> head on the class token."""

    def __init__(
        self,
        *,
        image_size: int,
        patch_size: int,
        dim: int,
        depth: int,
        num_heads: int,
        num_classes: int,
        mlp_ratio: float = 4.0,
        attention: str = "fused",
    ) -> None:
        super().__init__()
        grid = image_size // patch_size
        self.patch_embed = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, grid * grid + 1, dim) * 0.02)
        self.blocks = nn.Sequential(
            *(Block(dim, num_heads, mlp_ratio, attention) for _ in range(depth))
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Image [B, 3, H, W] -> logits [B, num_classes] from the class token."""
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat((cls, x), dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def build_vit_tiny(
    *, width: float, num_classes: int, input_size: int, depth: float, attention: str = "fused"
) -> nn.Module:
    """ViT-Tiny/16: dim 192, 12 blocks, 3 heads (5,717,416 parameters at 224, width 1, 1000
    classes). ``width`` scales dim to a multiple of lcm(8, heads); patch 16 (8 below 64 px).
    ``attention``: ``fused`` (timm's qkv Linear), ``torch_mha`` (``nn.MultiheadAttention``,
    torchvision's layout) or ``einsum`` (:class:`EinsumAttention`)."""
    num_heads = 3
    step = math.lcm(8, num_heads)
    dim = max(step, round(192 * width / step) * step)
    patch_size = 16 if input_size >= 64 else 8
    return VisionTransformer(
        image_size=input_size,
        patch_size=patch_size,
        dim=dim,
        depth=scale_depth(12, depth),
        num_heads=num_heads,
        num_classes=num_classes,
        attention=attention,
    )


def build_vit_tiny_mha(
    *, width: float, num_classes: int, input_size: int, depth: float
) -> nn.Module:
    """ViT-Tiny/16 with ``nn.MultiheadAttention`` (torchvision's ViT layout): see
    :func:`build_vit_tiny`."""
    return build_vit_tiny(
        width=width,
        num_classes=num_classes,
        input_size=input_size,
        depth=depth,
        attention="torch_mha",
    )


def build_vit_tiny_einsum(
    *, width: float, num_classes: int, input_size: int, depth: float
) -> nn.Module:
    """ViT-Tiny/16 with ``torch.einsum`` attention over per-head weights: see
    :func:`build_vit_tiny`."""
    return build_vit_tiny(
        width=width, num_classes=num_classes, input_size=input_size, depth=depth, attention="einsum"
    )
