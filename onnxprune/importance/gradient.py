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
zero gradient (the model is its own optimum), so every score would be 0. Instead the targets
are the unpruned model's own hard predictions (argmax over the class axis, axis 1), smoothed
with ``smoothing`` (default 0): the gradient then measures how much each channel supports the
model's decisions, the quantity a pruned model must keep. ``targets="labels" | "predictions"``
forces one of the two; ``max_samples`` (default 256) and ``batch_size`` bound the cost: one
forward and one gradient run per batch, in one ONNX Runtime session each.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onnxprune.analysis import ChannelAnalysis
from onnxprune.autodiff import (
    GradientSession,
    build_gradient_model,
    cross_entropy,
    expose_edges,
    gradient_name,
    target_name,
)
from onnxprune.calibrate import ConsumerLayer, consumer_layers
from onnxprune.calibrate.labelled import Samples, batch_starts, fixed_batch, load_samples
from onnxprune.calibrate.session import make_session
from onnxprune.errors import InputError
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


def _per_feature(layer: ConsumerLayer, x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Σ over positions of x·g per sample and input feature: [N, features]."""
    product = x.astype(np.float64) * g.astype(np.float64)
    if layer.feature_axis == 1:
        return product.reshape(product.shape[0], product.shape[1], -1).sum(axis=2)
    return product.reshape(product.shape[0], -1, product.shape[-1]).sum(axis=1)


def mask_gradients(
    analysis: ChannelAnalysis,
    samples: Samples,
    *,
    targets: str = "auto",
    smoothing: float = 0.0,
    batch_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """s_{n,c} for every sample and cluster ([samples, clusters], see the module docstring)
    and the mask of clusters some supported consumer reads."""
    layers = consumer_layers(analysis)
    model = analysis.model
    node_inputs = {node.name: list(node.input) for node in model.graph.node}
    edges = [(layer.node, node_inputs[layer.node].index(layer.input)) for layer in layers]
    exposed, edge_names = expose_edges(model, edges)
    outputs = [value.name for value in model.graph.output]
    use_labels = targets == "labels" or (targets == "auto" and samples.labels is not None)
    if use_labels and samples.labels is None:
        raise InputError("criterion targets 'labels' need labels in the calibration data")
    if targets not in ("auto", "labels", "predictions"):
        raise InputError(f"unknown gradient targets '{targets}'; known: auto, labels, predictions")
    loss = cross_entropy(exposed, outputs=outputs[:1] if use_labels else outputs)
    gradient = GradientSession(
        build_gradient_model(exposed, loss, edge_names, keep_outputs=edge_names)
    )
    forward = make_session(model)
    n = analysis.n_clusters
    saliency = np.zeros((len(samples), n))
    hit = np.zeros(n, dtype=bool)
    for layer in layers:
        hit[analysis.component_of[layer.labels[layer.labels >= 0]]] = True
    batches = batch_starts(len(samples), batch_size, fixed_batch(model))
    if not batches:
        raise InputError(f"fewer calibration samples than the model's fixed batch ({len(samples)})")
    for start, stop in batches:
        index = np.arange(start, stop)
        feeds = samples.take(index)
        predicted = forward.run(outputs, feeds)
        feeds = dict(feeds)
        for name, value in zip(outputs, predicted, strict=True):
            if use_labels and name != outputs[0]:
                continue
            feeds[target_name(name)] = (
                label_targets(samples.labels[index], value, smoothing)
                if use_labels
                else hard_targets(value, smoothing)
            )
        result = gradient.run(feeds)
        per_sample = saliency[index]
        for layer, edge in zip(layers, edge_names, strict=True):
            # The loss is a mean over the batch: N·∂L/∂x is the per-sample gradient.
            s = _per_feature(layer, result[edge], result[gradient_name(edge)]) * len(index)
            valid = layer.labels >= 0
            clusters = analysis.component_of[layer.labels[valid]]
            np.add.at(per_sample, (slice(None), clusters), s[:, valid])
        saliency[index] = per_sample
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
