"""Rules for Gemm and MatMul: dense layers (sources) and activation-activation products."""

from __future__ import annotations

import numpy as np

from onnxprune.analysis.context import ROLE_IN, ROLE_OUT, ROLE_PARAM, AnalysisContext
from onnxprune.analysis.graph_view import NodeView
from onnxprune.analysis.labels import FIXED, axis_labels, pad_rank, varying_axes
from onnxprune.analysis.registry import register


@register("Gemm")
def gemm(node: NodeView, ctx: AnalysisContext) -> None:
    """Gemm: Y[M, N] = A[M, K] · B (B is [K, N], or [N, K] with transB) + C.

    Feature k of A is read by B's row k (column with transB): a consumer slice. Each output
    unit n is a new atom written by B's column n (row with transB) and by C[..., n] when C is
    per-unit. A transposed A or a B computed at run time blocks the input channels.
    """
    a_labels = ctx.labels_of(node.input(0))
    weight_name = node.input(1)
    weight = ctx.weight_shape(weight_name)
    trans_b = int(node.attrs.get("transB", 0))
    if weight is None or len(weight) != 2 or int(node.attrs.get("transA", 0)):
        ctx.block(a_labels, f"Gemm '{node.name}' has a run-time or transposed operand")
        return
    in_axis, out_axis = (1, 0) if trans_b else (0, 1)
    if a_labels is not None:
        if a_labels.shape[0] != 1:
            ctx.block(a_labels, f"Gemm '{node.name}' input labels vary along rows")
        else:
            ctx.request_slice(
                weight_name,
                in_axis,
                np.broadcast_to(a_labels.reshape(-1), (weight[in_axis],)),
                node,
                ROLE_IN,
            )
    out_vector = ctx.new_atoms(node, int(weight[out_axis]))
    ctx.request_slice(weight_name, out_axis, out_vector, node, ROLE_OUT)
    bias_name = node.input(2)
    bias = ctx.weight_shape(bias_name)
    if bias is not None and len(bias) >= 1 and bias[-1] == len(out_vector) > 1:
        ctx.request_slice(bias_name, len(bias) - 1, out_vector, node, ROLE_PARAM)
    elif bias_name and bias is None:
        ctx.block(out_vector, f"Gemm '{node.name}' has a run-time C")
    ctx.set_labels(node.outputs[0], axis_labels(2, 1, out_vector))


@register("MatMul")
def matmul(node: NodeView, ctx: AnalysisContext) -> None:
    """MatMul: a constant right operand W[K, N] makes a dense layer (W[G, K, N]: one per slice,
    :func:`_per_slice_weight`); otherwise both are activations.

    Dense layer (X[..., K] · W[K, N]): feature k is read by row W[k] (consumer); each output
    unit is a new atom written by column W[:, n]. Two activations: see ``_activation_matmul``.
    """
    a_name, b_name = node.input(0), node.input(1)
    weight = ctx.weight_shape(b_name)
    a_labels = ctx.labels_of(a_name)
    if ctx.weight_shape(a_name) is not None:
        ctx.block(ctx.labels_of(b_name), f"MatMul '{node.name}' has a constant left operand")
        return
    if weight is None:
        _activation_matmul(node, ctx)
        return
    out_rank = ctx.rank(node.outputs[0])
    if len(weight) == 3 and out_rank is not None and out_rank >= 3:
        _per_slice_weight(node, ctx, tuple(int(d) for d in weight), out_rank)
        return
    if len(weight) != 2 or out_rank is None:
        ctx.block(a_labels, f"MatMul '{node.name}' has a batched constant weight")
        return
    if a_labels is not None:
        axes = varying_axes(a_labels)
        if axes and axes != [a_labels.ndim - 1]:
            ctx.block(a_labels, f"MatMul '{node.name}' input labels vary outside the feature axis")
        else:
            vector = np.broadcast_to(a_labels.reshape(-1), (weight[0],))
            ctx.request_slice(b_name, 0, vector, node, ROLE_IN)
    out_vector = ctx.new_atoms(node, int(weight[1]))
    ctx.request_slice(b_name, 1, out_vector, node, ROLE_OUT)
    ctx.set_labels(node.outputs[0], axis_labels(out_rank, out_rank - 1, out_vector))


def _per_slice_weight(
    node: NodeView, ctx: AnalysisContext, weight: tuple[int, int, int], out_rank: int
) -> None:
    """A[..., G, M, K] · W[G, K, N] with a constant W: one dense layer per slice g of the
    batch axis — per-head weights (einsum ``"binh,nhd->bind"`` lowered, Funnel's relative
    attention). Y[..., g, m, n] = Σ_k A[..., g, m, k] W[g, k, n].

    * A's channels do not vary along G (G = 1, or the same features for every slice): W's K
      axis is a consumer slice, and each output unit n is a new atom written by W[:, :, n]
      when G = 1 (a plain dense layer); for G > 1 the output carries no channels.
    * A's channels vary along G (heads): whole heads (default) unite every atom of slice g,
      W is sliced along G, and the output carries the head labels (its N positions stay);
      ``head_dim`` mode unites position k of every slice, W is sliced along K, and the output
      positions n, the same in every slice, are new atoms (W sliced along N).
    Labels that vary outside G and K (the rows M, other batch axes) block the input.
    """
    a_name, w_name = node.input(0), node.input(1)
    la = ctx.labels_of(a_name)
    slices, k_size, n_size = weight
    g_axis, m_axis, k_axis = out_rank - 3, out_rank - 2, out_rank - 1
    if la is not None:
        la = pad_rank(la, out_rank)
        if (
            la.shape[:g_axis] != (1,) * g_axis
            or la.shape[m_axis] > 1
            or la.shape[g_axis] not in (1, slices)
            or la.shape[k_axis] not in (1, k_size)
        ):
            ctx.block(
                la,
                f"MatMul '{node.name}' per-slice weight: input labels vary outside its "
                "slices and features",
            )
            return
    grid = (
        np.broadcast_to(la.reshape(la.shape[g_axis], la.shape[k_axis]), (slices, k_size))
        if la is not None
        else None
    )
    if grid is None or la.shape[g_axis] == 1:
        if grid is not None:
            ctx.request_slice(w_name, 1, grid[0], node, ROLE_IN)
        if slices == 1:
            out_vector = ctx.new_atoms(node, n_size)
            ctx.request_slice(w_name, 2, out_vector, node, ROLE_OUT)
            ctx.set_labels(node.outputs[0], axis_labels(out_rank, out_rank - 1, out_vector))
        return
    reason = f"MatMul '{node.name}' per-slice weight mixes prunable and fixed channels"
    if ctx.head_dim:
        for g in range(1, slices):
            ctx.union(grid[0], grid[g], reason)
        ctx.request_slice(w_name, 1, grid[0], node, ROLE_IN)
        out_vector = ctx.new_atoms(node, n_size)
        ctx.request_slice(w_name, 2, out_vector, node, ROLE_OUT)
        ctx.set_labels(node.outputs[0], axis_labels(out_rank, out_rank - 1, out_vector))
        return
    heads = grid[:, 0].copy()
    for g in range(slices):
        ctx.union(np.full(k_size, heads[g]), grid[g], reason)
    ctx.request_slice(w_name, 0, heads, node, ROLE_IN)
    ctx.set_labels(node.outputs[0], heads.reshape((1,) * g_axis + (slices, 1, 1)))


def _activation_matmul(node: NodeView, ctx: AnalysisContext) -> None:
    """A[..., M, K] · B[..., K, N] with both operands computed at run time (attention).

    * Contraction: position k of A and of B are pruned together (their labels are united) and
      the oracle zeroes A[..., k].
    * Batch axes (attention heads): when labels vary along a batch axis, each batch index must
      stay or go as a whole, so every atom of A[b] and B[b] is united (whole heads).
    * Rows of A (M) and columns of B (N) carry their labels to the output.
    """
    a_name, b_name = node.input(0), node.input(1)
    a_shape, b_shape = ctx.static_shape(a_name), ctx.static_shape(b_name)
    la, lb = ctx.labels_of(a_name), ctx.labels_of(b_name)
    if la is None and lb is None:
        return
    if a_shape is None or b_shape is None or len(a_shape) < 2 or len(b_shape) < 2:
        ctx.block_inputs(node, "MatMul operands of unknown or vector shape")
        return
    ctx.shrinks_with(node, la)
    ctx.shrinks_with(node, lb)
    rank = max(len(a_shape), len(b_shape))
    a_shape = (1,) * (rank - len(a_shape)) + a_shape
    b_shape = (1,) * (rank - len(b_shape)) + b_shape
    la = pad_rank(la, rank) if la is not None else np.full((1,) * rank, FIXED, dtype=np.int64)
    lb = pad_rank(lb, rank) if lb is not None else np.full((1,) * rank, FIXED, dtype=np.int64)
    m_axis, k_axis = rank - 2, rank - 1
    reason = f"MatMul '{node.name}' contracts prunable channels with fixed ones"
    if (la.shape[m_axis] > 1 and la.shape[k_axis] > 1) or (
        lb.shape[m_axis] > 1 and lb.shape[k_axis] > 1
    ):
        ctx.block_inputs(node, "MatMul operand labels vary along two matrix axes")
        return
    contraction = la.shape[k_axis] > 1 or lb.shape[m_axis] > 1
    if contraction:
        ka = np.broadcast_to(la.take([0], axis=m_axis), (*la.shape[:m_axis], 1, a_shape[k_axis]))
        kb = np.broadcast_to(lb.take([0], axis=k_axis), (*lb.shape[:m_axis], b_shape[m_axis], 1))
        ctx.union(ka[..., 0, :], kb[..., :, 0], reason)
        ctx.add_mask_edge(node, 0, np.maximum(ka, np.swapaxes(kb, -1, -2)))
    batch_varies = any(la.shape[i] > 1 or lb.shape[i] > 1 for i in range(m_axis))
    rows = la if la.shape[m_axis] > 1 else None
    cols = lb if lb.shape[k_axis] > 1 else None
    if rows is not None and cols is not None:
        ctx.block_inputs(node, "MatMul output would carry channels on two axes")
        return
    if batch_varies and ctx.head_dim:
        _same_positions_in_every_head(node, ctx, la, lb, m_axis)
        if rows is None and cols is None:
            return
    elif batch_varies:
        batch = np.broadcast_shapes(la.shape[:m_axis], lb.shape[:m_axis])
        flat_a = np.broadcast_to(la, batch + la.shape[m_axis:]).reshape(int(np.prod(batch)), -1)
        flat_b = np.broadcast_to(lb, batch + lb.shape[m_axis:]).reshape(int(np.prod(batch)), -1)
        members = np.concatenate([flat_a, flat_b], axis=1)
        heads = np.full(members.shape[0], FIXED, dtype=np.int64)
        for index, row in enumerate(members):
            atoms = row[row >= 0]
            if atoms.size == 0:
                continue
            if (row < 0).any():
                ctx.block(
                    atoms, f"MatMul '{node.name}' batch slice mixes prunable and fixed channels"
                )
            ctx.union(np.full(atoms.size, atoms[0]), atoms, reason)
            heads[index] = atoms[0]
        if rows is None and cols is None:
            ctx.set_labels(node.outputs[0], heads.reshape((*batch, 1, 1)))
            return
    if rows is not None:
        ctx.set_labels(node.outputs[0], rows[..., :, :1])
    elif cols is not None:
        ctx.set_labels(node.outputs[0], cols[..., :1, :])


def _same_positions_in_every_head(
    node: NodeView, ctx: AnalysisContext, la: np.ndarray, lb: np.ndarray, m_axis: int
) -> None:
    """head_dim mode: position j of every head (batch slice) is united with position j of
    the first head, for each operand that carries channels along the batch axes, so every
    head keeps the same head_dim positions (rectangular [heads, head_dim] keep masks). The
    batch axes then carry no channel of their own: the product's heads all stay."""
    for labels in (la, lb):
        if not any(labels.shape[i] > 1 for i in range(m_axis)):
            continue
        flat = labels.reshape(int(np.prod(labels.shape[:m_axis])), -1)
        for row in flat[1:]:
            ctx.union(flat[0], row, f"MatMul '{node.name}' head_dim positions differ per head")
