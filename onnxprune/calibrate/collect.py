"""Collect calibration statistics of an analysed model (streaming, float64, cached).

For every supported consumer (see :mod:`~onnxprune.calibrate.consumers`) of a prunable channel,
the analysed model is run in ONNX Runtime with the consumer inputs as outputs, batch by batch:

* per input feature: mean, mean |x|, variance and zero fraction over every sample and position;
* when ``gram`` is set: the Gram matrix G = Σ rowᵀ·row of its input rows (im2col rows of
  kh×kw×C_in for convs; only for layers with at most ``max_columns`` columns, so no single
  matrix exceeds max_columns² float64 — 288 MiB at the default 6144) at no more than ``positions`` sampled output positions per sample, and
  the number of rows; H = G / rows is the layer's input second moment (its Hessian up to a
  factor 2 for the squared reconstruction error).

Memory: one batch of the exposed activations, im2col chunks of at most ``CHUNK_ELEMENTS``
values, and the accumulators (Σ_layers d² float64 for the Gram matrices, d = C_in·∏k).
Results are cached per (analysis object, calibration object, settings).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from onnxprune.analysis import ChannelAnalysis
from onnxprune.calibrate.accumulate import FeatureStats, GramAccumulator, MomentAccumulator
from onnxprune.calibrate.consumers import ConsumerLayer, consumer_layers
from onnxprune.calibrate.data import iter_feeds
from onnxprune.calibrate.im2col import sample_positions
from onnxprune.calibrate.padding import real_positions
from onnxprune.calibrate.session import run_exposed
from onnxprune.graph.mask_input import mask_input

Progress = Callable[[str], None]


@dataclass
class CalibrationStats:
    """Statistics of every supported consumer's input (see module docstring)."""

    consumers: list[ConsumerLayer]
    features: dict[str, FeatureStats]  # consumer node -> stats of its input features
    grams: dict[str, GramAccumulator] = field(default_factory=dict)  # consumer node -> Gram
    samples: int = 0
    positions: int | None = None

    def hessian(self, node: str) -> np.ndarray:
        """H = XᵀX / rows of the consumer's input rows (float64, d × d)."""
        acc = self.grams[node]
        return acc.gram / max(acc.rows, 1)

    def consumer(self, node: str) -> ConsumerLayer:
        return next(layer for layer in self.consumers if layer.node == node)


_CACHE: dict[int, tuple[weakref.ref, list[tuple[Any, tuple, CalibrationStats]]]] = {}


def _cached(analysis, calibration, settings) -> CalibrationStats | None:
    entry = _CACHE.get(id(analysis))
    if entry is None or entry[0]() is not analysis:
        return None
    for data, key, stats in entry[1]:
        same_data = data is calibration or (
            isinstance(data, str) and isinstance(calibration, str) and data == calibration
        )
        if same_data and _covers(key, settings):
            return stats
    return None


def _covers(cached: tuple, wanted: tuple) -> bool:
    """Statistics with Gram matrices also serve a request without them."""
    gram_index = 3
    same = (
        cached[:gram_index] + cached[gram_index + 1 :]
        == wanted[:gram_index] + wanted[gram_index + 1 :]
    )
    return same and (cached[gram_index] or not wanted[gram_index])


def _store(analysis, calibration, settings, stats) -> None:
    key = id(analysis)
    entry = _CACHE.get(key)
    if entry is None or entry[0]() is not analysis:
        ref = weakref.ref(analysis, lambda _ref, key=key: _CACHE.pop(key, None))
        entry = (ref, [])
        _CACHE[key] = entry
    entry[1].append((calibration, settings, stats))


def gram_columns(analysis: ChannelAnalysis, layer: ConsumerLayer) -> int:
    """Columns of the layer's input rows: input features × kernel positions."""
    return len(layer.labels) * layer.kernel_size


def collect_statistics(
    analysis: ChannelAnalysis,
    calibration: Any,
    *,
    batch_size: int = 32,
    max_samples: int | None = 512,
    positions: int | None = 64,
    gram: bool = True,
    max_columns: int = 6144,
    seed: int = 0,
    progress: Progress | None = None,
) -> CalibrationStats:
    """Statistics of ``analysis.model`` over ``calibration`` (see module docstring).

    ``calibration`` may already be a :class:`CalibrationStats` (returned as is).
    """
    if isinstance(calibration, CalibrationStats):
        return calibration
    settings = (batch_size, max_samples, positions, gram, seed, max_columns)
    cached = _cached(analysis, calibration, settings)
    if cached is not None:
        return cached
    say = progress or (lambda message: None)
    layers = consumer_layers(analysis)
    rng = np.random.default_rng(seed)
    moments: dict[tuple, MomentAccumulator] = {}
    grams: dict[tuple, GramAccumulator] = {}
    for layer in layers:
        moments.setdefault((layer.input, layer.feature_axis), MomentAccumulator(layer.feature_axis))
        if gram and gram_columns(analysis, layer) <= max_columns:
            grams.setdefault(layer.key, GramAccumulator())
    by_key = {layer.key: layer for layer in layers}
    names = list(dict.fromkeys(layer.input for layer in layers))
    elem_types = {layer.input: layer.elem_type for layer in layers}
    feeds = iter_feeds(calibration, analysis.model, batch_size=batch_size, max_samples=max_samples)
    mask_name = mask_input(analysis.model)
    exposed = names + ([mask_name] if mask_name and grams else [])
    samples = 0
    for values in run_exposed(analysis.model, exposed, elem_types, feeds):
        mask = values.get(mask_name) if mask_name else None
        for (name, _axis), acc in moments.items():
            acc.add(values[name])
        for key, acc in grams.items():
            layer = by_key[key]
            x = values[layer.input]
            count = layer.position_count(x.shape)
            chosen = sample_positions(
                x.shape[0], count, positions, rng, real_positions(mask, count)
            )
            for rows in layer.rows(x, chosen):
                acc.add(rows)
        samples += next(iter(values.values())).shape[0] if values else 0
        say(f"calibration statistics: {samples} samples")
    stats = CalibrationStats(
        consumers=layers,
        features={
            layer.node: moments[(layer.input, layer.feature_axis)].result()
            for layer in layers
            if moments[(layer.input, layer.feature_axis)].count
        },
        grams={layer.node: grams[layer.key] for layer in layers if layer.key in grams},
        samples=samples,
        positions=positions,
    )
    _store(analysis, calibration, settings, stats)
    return stats
