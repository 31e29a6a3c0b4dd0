"""Gradient criteria: first-order Taylor and Fisher scores of channel clusters.

Pruning a cluster zeroes its channels where the consumers read them (the mask-equivalence
oracle). With a mask m_c on those reads (m = 1 in the model), the loss of sample n changes to
first order by −s_{n,c} with

    s_{n,c} = ∂L_n/∂m_c = Σ_{consumers} Σ_{positions} x · ∂L_n/∂x

summed over every consumer edge that reads the cluster's channels (x the consumer's input,
∂L/∂x the gradient of that *edge* alone: :func:`onnxprune.autodiff.expose_edges`), so the
sum runs over the group's members inside the absolute value or square:

* ``taylor`` (Molchanov et al. 2017): mean_n |s_{n,c}|;
* ``fisher`` (the empirical Fisher of the mask, Theis et al. 2018 / Liu et al. 2021):
  mean_n s_{n,c}² / 2, the second-order estimate of the loss increase.

Both are in loss units, comparable across groups without per-layer normalization. Clusters no
supported consumer reads get the ``l1`` score rescaled to the mean gradient score.

The loss. With labels in the calibration data: cross-entropy to the labels. Without labels,
the natural loss — KL divergence to the unpruned model — is zero at the unpruned model with a
zero gradient (the model is its own optimum), so every score would be 0. Instead:

* ``predictions`` (the default when every output is [N, classes]): the targets are the
  unpruned model's own hard predictions (argmax over axis 1), smoothed with ``smoothing``
  (default 0): the gradient measures how much each channel supports the model's decisions.
* ``probe`` (the default for any other output: hidden states, landmarks, boxes, dense maps,
  where an argmax over axis 1 means nothing): random output directions (Gauss–Newton, as in
  Hutchinson's estimator). The loss is ½‖y − t‖² with t = y − ε/σ, ε ~ N(0, I) drawn per
  element, σ the spread of each output channel over the batch (axis 1; the last axis of a
  token output [N, T, H]); so ∂L/∂y = ε/σ and s_{n,c} = εᵀ diag(1/σ) J_c with J_c the
  output's derivative along the cluster's mask. Over the draws E[s²] = ‖diag(1/σ) J_c‖²: the
  first-order squared change of the outputs, each channel in units of its own spread (the
  ``std_mse`` drop), when the cluster goes. Padding tokens (the attention mask,
  :mod:`onnxprune.calibrate.padding`) get ε = 0. ``probes`` draws per sample (default 4);
  the draws are seeded, so scores are deterministic. ``taylor`` under probes reads
  E|s| = √(2/π)·‖diag(1/σ) J_c‖, the same order.

``targets="labels" | "predictions" | "probe"`` forces one; ``max_samples`` (default 256) and
``batch_size`` bound the cost: one forward and one gradient run per batch (and per probe), in
one ONNX Runtime session each.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import ModelProto

from onnxprune.analysis import ChannelAnalysis
from onnxprune.autodiff import (
    GradientSession,
    build_gradient_model,
    cross_entropy,
    expose_edges,
    gradient_name,
    mean_squared_error,
    target_name,
)
from onnxprune.autodiff.precision import float32_feeds
from onnxprune.autodiff.prepare import gradient_ready
from onnxprune.calibrate import ConsumerLayer, consumer_layers
from onnxprune.calibrate.labelled import Samples, batch_starts, fixed_batch, load_samples
from onnxprune.calibrate.padding import real_positions
from onnxprune.calibrate.session import make_session
from onnxprune.errors import InputError
from onnxprune.graph.mask_input import mask_input
from onnxprune.graph.tensor_outputs import (
    differentiable_outputs,
    output_rank,
    tensor_output_model,
)
from onnxprune.importance.norms import l1, register_criterion


def hard_targets(outputs: np.ndarray, smoothing: float) -> np.ndarray:
    """One-hot of argmax over axis 1 (any rank), smoothed: (1 − ε)·onehot + ε/K."""
    classes = outputs.shape[1]
    picked = np.argmax(outputs, axis=1)
    onehot = np.moveaxis(np.eye(classes, dtype=np.float64)[picked], -1, 1)
    return ((1.0 - smoothing) * onehot + smoothing / classes).astype(outputs.dtype)


def label_targets(labels: np.ndarray, outputs: np.ndarray, smoothing: float) -> np.ndarray:
    """One-hot labels for a [N, classes] output, smoothed: (1 − ε)·onehot + ε/K."""
    if outputs.ndim != 2:
        raise InputError("labels need a classification output of shape [N, classes]")
    classes = outputs.shape[1]
    if labels.min() < 0 or labels.max() >= classes:
        raise InputError(f"labels must lie in [0, {classes}), got {labels.min()}..{labels.max()}")
    onehot = np.eye(classes, dtype=np.float64)[labels]
    return ((1.0 - smoothing) * onehot + smoothing / classes).astype(outputs.dtype)


TARGETS = ("auto", "labels", "predictions", "probe")
PROBE_SEED = 0
SPREAD_FLOOR = 1e-3  # a constant output channel weighs as one of spread 1e-3 × the mean spread


def probe_offsets(
    value: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator
) -> np.ndarray:
    """ε/σ of the ``probe`` targets (module docstring) for one output of a batch: ε ~ N(0, I)
    per element, σ each channel's spread over the batch (floored), ε = 0 at padding tokens."""
    real = real_positions(mask, value.shape[1]) if value.ndim == 3 else None
    channel_axis = value.ndim - 1 if real is not None else min(1, value.ndim - 1)
    moved = np.moveaxis(value.astype(np.float64), channel_axis, -1)
    rows = moved.reshape(-1, moved.shape[-1])
    if real is not None:
        rows = rows[real.reshape(-1)] if real.any() else rows
    spread = rows.std(axis=0) if rows.shape[0] > 1 else np.abs(rows).mean(axis=0)
    floor = SPREAD_FLOOR * max(float(spread.mean()), 1e-12)
    spread = np.maximum(spread, floor)
    shape = [1] * value.ndim
    shape[channel_axis] = spread.size
    offsets = rng.standard_normal(value.shape) / spread.reshape(shape)
    if real is not None:
        offsets = offsets * real[:, :, None]
    return offsets.astype(value.dtype)


def resolve_targets(targets: str, samples: Samples, output_ranks: list[int]) -> str:
    """The targets ``auto`` stands for: labels when the data has them, ``predictions`` when
    every output is [N, classes], else ``probe``."""
    if targets not in TARGETS:
        raise InputError(f"unknown gradient targets '{targets}'; known: {', '.join(TARGETS)}")
    if targets == "labels" and samples.labels is None:
        raise InputError("criterion targets 'labels' need labels in the calibration data")
    if targets != "auto":
        return targets
    if samples.labels is not None:
        return "labels"
    return "predictions" if all(rank == 2 for rank in output_ranks) else "probe"


def target_loss(model: ModelProto, outputs: list[str], mode: str):
    """The loss of resolved targets ``mode``: squared error for probes, else cross-entropy
    (of the first output only with labels)."""
    if mode == "probe":
        return mean_squared_error(model, outputs)
    return cross_entropy(model, outputs=outputs[:1] if mode == "labels" else outputs)


def batch_targets(
    mode: str,
    predicted: dict[str, np.ndarray],
    *,
    labels: np.ndarray | None,
    smoothing: float,
    mask: np.ndarray | None,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Target feeds of one batch for :func:`target_loss` (``predicted``: the unpruned
    model's outputs by name). Probe targets are scaled so that ∂L/∂y = ε/σ per sample
    (mean_squared_error's ∂/∂y is 2(y − t)/size)."""
    feeds = {}
    for position, (name, value) in enumerate(predicted.items()):
        if mode == "probe":
            offsets = probe_offsets(value, mask, rng)
            feeds[target_name(name)] = value - offsets * (value.size / 2)
        elif mode == "labels":
            if position == 0:
                feeds[target_name(name)] = label_targets(labels, value, smoothing)
        else:
            feeds[target_name(name)] = hard_targets(value, smoothing)
    return feeds


def _per_feature(
    layer: ConsumerLayer, x: np.ndarray, g: np.ndarray, one_sample: bool = False
) -> np.ndarray:
    """Σ over positions of x·g per sample and input feature: [N, features] (axis 0 is the
    batch); with ``one_sample`` (a run of one sample) every axis but the features is summed,
    whatever the layout: [1, features]."""
    product = x.astype(np.float64) * g.astype(np.float64)
    if one_sample:
        moved = np.moveaxis(product, 1 if layer.feature_axis == 1 else -1, -1)
        return moved.reshape(-1, moved.shape[-1]).sum(axis=0)[None]
    if layer.feature_axis == 1:
        return product.reshape(product.shape[0], product.shape[1], -1).sum(axis=2)
    return product.reshape(product.shape[0], -1, product.shape[-1]).sum(axis=1)


def _edges_batch_first(gradient, feeds: dict, edge_names: list[str], size: int) -> bool:
    """True when axis 0 of every exposed edge is the batch: size ``size`` in the batch's run
    and 1 in a run of its first sample alone. A sequence-first edge ([T, B, C], or [T·B, C]:
    the projections of ``nn.MultiheadAttention`` in a TorchScript export) fails one of them
    for any T, so its per-sample sums need one run per sample."""
    whole = gradient.run(feeds)
    first = gradient.run({k: v[:1] for k, v in feeds.items()})
    return all(whole[e].shape[0] == size and first[e].shape[0] == 1 for e in edge_names)


def mask_gradients(
    analysis: ChannelAnalysis,
    samples: Samples,
    *,
    targets: str = "auto",
    smoothing: float = 0.0,
    batch_size: int = 32,
    probes: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """s_{n,c} for every sample and cluster ([samples, clusters]; under ``probe`` targets
    [probes × samples, clusters], one row per draw: see the module docstring) and the mask
    of clusters some supported consumer reads."""
    layers = consumer_layers(analysis)
    # one sample's dims pinned: a YOLOv8 head's anchor count, computed from the image size at
    # run time, then resolves for the backward rules
    model = gradient_ready(tensor_output_model(analysis.model), samples.feeds)
    node_inputs = {node.name: list(node.input) for node in model.graph.node}
    edges = [(layer.node, node_inputs[layer.node].index(layer.input)) for layer in layers]
    exposed, edge_names = expose_edges(model, edges)
    outputs = differentiable_outputs(model, "a gradient criterion")
    mode = resolve_targets(targets, samples, [output_rank(model, name) for name in outputs])
    loss = target_loss(exposed, outputs, mode)
    gradient = GradientSession(
        build_gradient_model(exposed, loss, edge_names, keep_outputs=edge_names)
    )
    forward = make_session(model)
    n = analysis.n_clusters
    draws = probes if mode == "probe" else 1
    saliency = np.zeros((draws, len(samples), n))
    hit = np.zeros(n, dtype=bool)
    for layer in layers:
        hit[analysis.component_of[layer.labels[layer.labels >= 0]]] = True
    batches = batch_starts(len(samples), batch_size, fixed_batch(model))
    if not batches:
        raise InputError(f"fewer calibration samples than the model's fixed batch ({len(samples)})")
    mask_name = mask_input(model)
    rng = np.random.default_rng(PROBE_SEED)
    batch_first: bool | None = None
    for start, stop in batches:
        index = np.arange(start, stop)
        feeds = float32_feeds(samples.take(index))
        predicted = forward.run(outputs, feeds)
        for draw in range(draws):
            feeds.update(
                batch_targets(
                    mode,
                    dict(zip(outputs, predicted, strict=True)),
                    labels=None if samples.labels is None else samples.labels[index],
                    smoothing=smoothing,
                    mask=feeds.get(mask_name) if mask_name else None,
                    rng=rng,
                )
            )
            if batch_first is None and len(index) > 1:
                batch_first = _edges_batch_first(gradient, feeds, edge_names, len(index))
            if len(index) == 1 or batch_first:
                runs = [(gradient.run(feeds), len(index) == 1)]
            else:  # an edge is not batch-first ([T, B, C]): one run per sample
                runs = [
                    (gradient.run({k: v[i : i + 1] for k, v in feeds.items()}), True)
                    for i in range(len(index))
                ]
            per_sample = saliency[draw, index]
            # Cross-entropy is a mean over the batch: N·∂L/∂x is the per-sample gradient (the
            # probe targets are scaled to per-sample gradients of the batch's loss already). A
            # run of one sample out of N: its cross-entropy is per-sample already, while its
            # mean squared error averages N times fewer elements than the targets assumed.
            if len(runs) > 1:
                per_batch = 1 / len(index) if mode == "probe" else 1
            else:
                per_batch = 1 if mode == "probe" else len(index)
            for layer, edge in zip(layers, edge_names, strict=True):
                s = np.concatenate(
                    [
                        _per_feature(layer, result[edge], result[gradient_name(edge)], single)
                        for result, single in runs
                    ]
                )
                s = s * per_batch
                valid = layer.labels >= 0
                clusters = analysis.component_of[layer.labels[valid]]
                np.add.at(per_sample, (slice(None), clusters), s[:, valid])
            saliency[draw, index] = per_sample
    # Draws are extra samples of the same expectation: [draws × samples, clusters].
    saliency = saliency.reshape(-1, n)
    return saliency, hit


def _scores(analysis, calibration, options: dict, which: str) -> np.ndarray:
    if calibration is None:
        raise InputError(f"criterion '{which}' needs calibration data (give --data)")
    samples = load_samples(calibration, analysis.model, max_samples=options.get("max_samples", 256))
    saliency, hit = mask_gradients(
        analysis,
        samples,
        targets=options.get("targets", "auto"),
        smoothing=float(options.get("smoothing", 0.0)),
        batch_size=int(options.get("batch_size", 32)),
        probes=int(options.get("probes", 4)),
    )
    if which == "taylor":
        scores = np.abs(saliency).mean(axis=0)
    else:
        scores = np.square(saliency).mean(axis=0) / 2
    missing = ~hit
    if missing.any():
        fallback = l1(analysis)
        reference = scores[hit].mean() if hit.any() else 1.0
        scale = fallback[missing].mean()
        scores[missing] = fallback[missing] / scale * reference if scale > 0 else 0.0
    return scores


@register_criterion("taylor")
def taylor(analysis: ChannelAnalysis, *, calibration: Any = None, **options) -> np.ndarray:
    """mean_n |Σ_{members, positions} x·∂L_n/∂x| per cluster (see the module docstring)."""
    return _scores(analysis, calibration, options, "taylor")


@register_criterion("fisher")
def fisher(analysis: ChannelAnalysis, *, calibration: Any = None, **options) -> np.ndarray:
    """mean_n (Σ_{members, positions} x·∂L_n/∂x)² / 2 per cluster (module docstring)."""
    return _scores(analysis, calibration, options, "fisher")
