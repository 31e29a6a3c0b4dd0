"""Rules for normalization ops."""

from __future__ import annotations

from onnxprune.analysis.context import ROLE_PARAM, AnalysisContext
from onnxprune.analysis.graph_view import NodeView
from onnxprune.analysis.labels import varying_axes, vector_along
from onnxprune.analysis.registry import register
from onnxprune.analysis.rules._common import normalize_axis


def _extra_outputs_used(node: NodeView, ctx: AnalysisContext) -> bool:
    return any(name and ctx.view.consumers.get(name) for name in node.outputs[1:])


def _per_channel(node: NodeView, ctx: AnalysisContext, param_inputs: range) -> None:
    """y[:, c] depends on x[:, c] and parameters p[c] only: pass labels, slice parameters."""
    labels = ctx.labels_of(node.input(0))
    if labels is None:
        return
    shape = ctx.static_shape(node.input(0))
    vector = vector_along(labels, 1, shape[1]) if shape else None
    if vector is None or _extra_outputs_used(node, ctx):
        ctx.block(labels, f"{node.op_type} '{node.name}' is not a per-channel inference op here")
        return
    for index in param_inputs:
        if node.input(index):
            ctx.request_slice(node.input(index), 0, vector, node, ROLE_PARAM)
    ctx.set_labels(node.outputs[0], labels)


@register("BatchNormalization")
def batch_normalization(node: NodeView, ctx: AnalysisContext) -> None:
    """Inference BN: y = (x - mean[c]) / sqrt(var[c] + eps) * scale[c] + B[c]; all four sliced."""
    _per_channel(node, ctx, range(1, 5))


@register("InstanceNormalization")
def instance_normalization(node: NodeView, ctx: AnalysisContext) -> None:
    """InstanceNorm normalizes each channel over space alone: mask-equivalent, scale/B sliced."""
    _per_channel(node, ctx, range(1, 3))


@register("LayerNormalization")
def layer_normalization(node: NodeView, ctx: AnalysisContext) -> None:
    """LayerNorm over axes [axis, rank): with channels inside them the statistics change when
    channels go (valid, not mask-equivalent: recorded); scale/bias are sliced
    (:func:`_normalized_over`)."""
    labels = ctx.labels_of(node.input(0))
    if labels is None:
        return
    axis = normalize_axis(int(node.attrs.get("axis", -1)), labels.ndim)
    _normalized_over(node, ctx, list(range(axis, labels.ndim)), param_inputs=(1, 2))


@register("GroupNormalization", since=18)
def group_normalization(node: NodeView, ctx: AnalysisContext) -> None:
    """GroupNorm: every group must keep the same in-group positions (united across groups);
    statistics change (not mask-equivalent); per-channel scale/bias are sliced."""
    labels = ctx.labels_of(node.input(0))
    if labels is None:
        return
    shape = ctx.static_shape(node.input(0))
    groups = int(node.attrs.get("num_groups", 1))
    vector = vector_along(labels, 1, shape[1]) if shape else None
    if vector is None or shape[1] % groups:
        ctx.block(labels, f"GroupNormalization '{node.name}' channel layout not understood")
        return
    per_group = vector.reshape(groups, -1)
    for g in range(1, groups):
        ctx.union(
            per_group[0], per_group[g], f"GroupNormalization '{node.name}' mixes fixed channels"
        )
    for index in (1, 2):
        param = ctx.weight_shape(node.input(index))
        if param is not None and param[0] == shape[1]:
            ctx.request_slice(node.input(index), 0, vector, node, ROLE_PARAM)
    ctx.mark_stats_coupled(labels, f"GroupNormalization '{node.name}' statistics")
    ctx.set_labels(node.outputs[0], labels)


@register("LRN")
def local_response_normalization(node: NodeView, ctx: AnalysisContext) -> None:
    """LRN over the channel axis 1: y_c = x_c / (bias + α/size · Σ_{c'} x_{c'}²)^β, the sum
    over the ``size`` channels around c (⌊(size−1)/2⌋ before, ⌈(size−1)/2⌉ after). A removed
    channel leaves the windows of its neighbours, and the channels after it move into them:
    pruning is valid (the pruned model normalizes its kept channels by their kept
    neighbours), not mask-equivalent, so the channels are statistics-coupled like a
    LayerNorm's (pruned with ``allow_norm_stats``, repaired by recovery, judged by the
    guard). There are no parameters to slice."""
    labels = ctx.labels_of(node.input(0))
    if labels is None:
        return
    shape = ctx.static_shape(node.input(0))
    vector = vector_along(labels, 1, shape[1]) if shape else None
    if vector is None:
        ctx.block(labels, f"LRN '{node.name}' input channels are not on axis 1")
        return
    ctx.mark_stats_coupled(labels, f"LRN '{node.name}' cross-channel window")
    ctx.set_labels(node.outputs[0], labels)


def _normalized_over(
    node: NodeView, ctx: AnalysisContext, axes: list[int], param_inputs: tuple[int, ...] = ()
) -> None:
    """A normalization whose statistics are taken over ``axes`` (already normalized). With no
    channel axis among them every channel is normalized by its own values: labels pass and
    removal is mask-equivalent. With one, removing a channel changes the statistics of the
    others: valid (the pruned model normalizes its kept channels together), not
    mask-equivalent — statistics-coupled like a LayerNorm's; parameters aligned to the input's
    trailing axes are sliced along it. Several channel axes among them block."""
    labels = ctx.labels_of(node.input(0))
    if labels is None:
        return
    if _extra_outputs_used(node, ctx):
        ctx.block(labels, f"{node.op_type} '{node.name}' statistics outputs are used")
        return
    inside = [a for a in varying_axes(labels) if a in axes]
    if len(inside) > 1:
        ctx.block(labels, f"{node.op_type} '{node.name}' over several channel axes")
        return
    if inside:
        vector = labels.reshape(-1)
        for index in param_inputs:
            if not node.input(index):
                continue
            param = ctx.weight_shape(node.input(index))
            if param is None:
                ctx.block(labels, f"{node.op_type} '{node.name}' has run-time parameters")
                return
            param_axis = inside[0] - (labels.ndim - len(param))
            if param_axis >= 0 and param[param_axis] > 1:
                ctx.request_slice(node.input(index), param_axis, vector, node, ROLE_PARAM)
        ctx.mark_stats_coupled(labels, f"{node.op_type} '{node.name}' statistics")
    ctx.set_labels(node.outputs[0], labels)


@register("LpNormalization")
def lp_normalization(node: NodeView, ctx: AnalysisContext) -> None:
    """y = x / ‖x‖_p along ``axis`` (default −1; p 1 or 2): see :func:`_normalized_over`
    (L2-normalized embeddings and SSD's conv4_3 norm normalize over the channel axis)."""
    labels = ctx.labels_of(node.input(0))
    if labels is None:
        return
    _normalized_over(node, ctx, [normalize_axis(int(node.attrs.get("axis", -1)), labels.ndim)])


@register("MeanVarianceNormalization", since=9)
def mean_variance_normalization(node: NodeView, ctx: AnalysisContext) -> None:
    """y = (x − E_A[x]) / sqrt(E_A[x²] − E_A[x]²) over ``axes`` A (default 0, 2, 3: per
    channel): see :func:`_normalized_over`."""
    labels = ctx.labels_of(node.input(0))
    if labels is None:
        return
    axes = [normalize_axis(int(a), labels.ndim) for a in node.attrs.get("axes", [0, 2, 3])]
    _normalized_over(node, ctx, axes)


@register("RMSNormalization", since=23)
def rms_normalization(node: NodeView, ctx: AnalysisContext) -> None:
    """y = x / sqrt(E_A[x²] + ε) · scale over A = [axis, rank) (default axis −1); the scale
    broadcasts over A's trailing axes: see :func:`_normalized_over`."""
    labels = ctx.labels_of(node.input(0))
    if labels is None:
        return
    axis = normalize_axis(int(node.attrs.get("axis", -1)), labels.ndim)
    _normalized_over(node, ctx, list(range(axis, labels.ndim)), param_inputs=(1,))
