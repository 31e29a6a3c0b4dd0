"""Gemm and MatMul.

Gemm: Y = α·A'·B' + β·C with A' = Aᵀ if transA else A (B' likewise) gives
∂A' = α·g·B'ᵀ, ∂B' = α·A'ᵀ·g (transposed back when the operand was), ∂C = unbroadcast(β·g).

MatMul (numpy semantics, batch axes broadcast): ∂A = unbroadcast(g·Bᵀ), ∂B = unbroadcast(Aᵀ·g)
with ᵀ swapping the last two axes; a 1-D operand is treated as a row (A) or column (B) vector
and its gradient reshaped back.
"""

from __future__ import annotations

from onnxprune.autodiff.builder import GradientBuilder
from onnxprune.autodiff.registry import register_vjp


def _scaled(b: GradientBuilder, x: str, factor: float, like: str) -> str:
    return x if factor == 1.0 else b.mul(x, b.scalar(factor, like))


@register_vjp("Gemm", since=7)
def gemm(node, b: GradientBuilder, grads, needed):
    """See the module docstring."""
    a, w, g = node.inputs[0], node.inputs[1], grads[0]
    alpha = float(node.attrs.get("alpha", 1.0))
    beta = float(node.attrs.get("beta", 1.0))
    trans_a = int(node.attrs.get("transA", 0))
    trans_b = int(node.attrs.get("transB", 0))
    result: list[str | None] = [None] * len(node.inputs)
    if needed[0]:
        # ∂A' = g · B'ᵀ; B'ᵀ = B if transB else Bᵀ.
        da = b.node("Gemm", [g, w], transB=1 - trans_b, alpha=alpha)
        result[0] = b.transpose(da, [1, 0]) if trans_a else da
    if needed[1]:
        # ∂B' = A'ᵀ · g; A'ᵀ = A if transA else Aᵀ.
        db = b.node("Gemm", [a, g], transA=1 - trans_a, alpha=alpha)
        result[1] = b.transpose(db, [1, 0]) if trans_b else db
    if len(node.inputs) > 2 and node.inputs[2] and needed[2]:
        result[2] = b.unbroadcast(
            _scaled(b, g, beta, node.outputs[0]), b.dims(node.outputs[0]), node.inputs[2]
        )
    return result


def _swap_last(b: GradientBuilder, x: str, rank: int) -> str:
    perm = list(range(rank))
    perm[-2], perm[-1] = perm[-1], perm[-2]
    return b.transpose(x, perm)


@register_vjp("MatMul", since=1)
def matmul(node, b: GradientBuilder, grads, needed):
    """See the module docstring."""
    a, w, g = node.inputs[0], node.inputs[1], grads[0]
    rank_a, rank_b = b.rank(a), b.rank(w)
    a2, w2, g2 = a, w, g
    if rank_a == 1:
        a2 = b.unsqueeze(a, [0])
        g2 = b.unsqueeze(g2, [-1 if rank_b == 1 else b.rank(node.outputs[0]) - 1])
    if rank_b == 1:
        w2 = b.unsqueeze(w, [1])
        g2 = b.unsqueeze(g2, [-1])
    out_dims = _matmul_out_dims(b.dims(a), b.dims(w))
    result: list[str | None] = [None, None]
    if needed[0]:
        da = b.node("MatMul", [g2, _swap_last(b, w2, max(rank_b, 2))])
        result[0] = _to_operand(b, da, (*out_dims[:-1], b.dims(a)[-1]), a)
    if needed[1]:
        db = b.node("MatMul", [_swap_last(b, a2, max(rank_a, 2)), g2])
        dims_b = b.dims(w)
        last = dims_b[-1] if rank_b > 1 else 1
        result[1] = _to_operand(b, db, (*out_dims[:-2], dims_b[0 if rank_b == 1 else -2], last), w)
    return result


def _matmul_out_dims(dims_a, dims_b) -> tuple:
    """Dims of the 2-D-promoted MatMul result (batch axes broadcast; None = unknown)."""
    a = tuple(dims_a) if len(dims_a) > 1 else (1, dims_a[0])
    w = tuple(dims_b) if len(dims_b) > 1 else (dims_b[0], 1)
    batch_a, batch_b = a[:-2], w[:-2]
    width = max(len(batch_a), len(batch_b))
    batch_a = (1,) * (width - len(batch_a)) + batch_a
    batch_b = (1,) * (width - len(batch_b)) + batch_b
    batch = tuple(
        y if x == 1 else x if y == 1 else (x if x is not None else y)
        for x, y in zip(batch_a, batch_b, strict=False)
    )
    return (*batch, a[-2], w[-1])


def _to_operand(b: GradientBuilder, grad: str, grad_dims: tuple, operand: str) -> str:
    """Sum a broadcast gradient back to the operand's shape."""
    operand_dims = b.dims(operand)
    if len(operand_dims) == 1:
        return b.reshape_like(b.reduce_sum(grad, list(range(len(grad_dims) - 2)), True), operand)
    return b.unbroadcast(grad, grad_dims, operand)
