"""ONNX ``Attention`` (opset 23+): its operand layout and the MACs of one node.

Shared by the ``lower_attention`` pass (:mod:`onnxprune.passes.lower_attention`), which
rewrites Attention as MatMul/Softmax/MatMul, and the MAC counters, which count an Attention
the pass leaves as it is, or that a report reads from the user's original model.

Operands (``Attention`` inputs): Q, K, V, then the optional attn_mask, past_key, past_value
and (opset 24) nonpad_kv_seqlen. Two layouts: 4-D ``Q [B, Hq, S, d]``, ``K [B, Hkv, T, d]``,
``V [B, Hkv, T, dv]``, or 3-D ``Q [B, S, Hq·d]``, ``K [B, T, Hkv·d]``, ``V [B, T, Hkv·dv]``
with the head counts in the attributes ``q_num_heads`` / ``kv_num_heads``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

Q, K, V, MASK, PAST_KEY, PAST_VALUE, NONPAD_KV_SEQLEN = range(7)


def attention_macs(
    shapes: Sequence[Sequence[int] | None], attrs: Mapping[str, object]
) -> int | None:
    """MACs of the two products Attention computes, Q·Kᵀ and P·V, from static shapes.

    Per batch row and query head: S·T·d for the scores and S·T·dv for the weighted values, with
    T the key length (plus a past cache's length). 4-D: ``B·Hq·S·T·(d + dv)``. 3-D:
    ``B·S·T·(Hq·d + Hq·dv) = B·S·T·(Q[2] + V[2]·Hq/Hkv)``. ``shapes`` are the node's input
    shapes in input order (None: unknown, or an absent optional input); None when Q, K or V is
    unknown or the layout is inconsistent.
    """
    if len(shapes) < 3 or any(shape is None for shape in shapes[:3]):
        return None
    q, k, v = (list(shape) for shape in shapes[:3])  # type: ignore[arg-type]
    past = shapes[PAST_KEY] if len(shapes) > PAST_KEY else None
    if not len(q) == len(k) == len(v) or len(q) not in (3, 4):
        return None
    if len(q) == 4:
        total = k[2] + (past[2] if past is not None and len(past) == 4 else 0)
        return q[0] * q[1] * q[2] * total * (q[3] + v[3])
    q_heads = int(attrs.get("q_num_heads", 0) or 0)  # type: ignore[call-overload]
    kv_heads = int(attrs.get("kv_num_heads", 0) or 0)  # type: ignore[call-overload]
    if q_heads <= 0 or kv_heads <= 0 or v[2] % kv_heads:
        return None
    total = k[1] + (past[2] if past is not None and len(past) == 4 else 0)
    return q[0] * q[1] * total * (q[2] + v[2] // kv_heads * q_heads)
