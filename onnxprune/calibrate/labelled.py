"""Calibration samples held in memory with their labels (when the data has them).

Gradient criteria need labels when they exist (cross-entropy), and distillation draws random
mini-batches, so both read the calibration data once into arrays: ``load_samples`` returns
the feeds of at most ``max_samples`` samples by input name and the labels (None without).
Labels come from a ``labels`` array of a mapping / ``.npz``, or from the second item of a
dataset object's ``batches``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from onnx import ModelProto

from onnxprune.calibrate.data import _load, iter_feeds
from onnxprune.errors import InputError


@dataclass
class Samples:
    """Feeds by input name (first axis = samples) and optional int64 labels."""

    feeds: dict[str, np.ndarray]
    labels: np.ndarray | None

    def __len__(self) -> int:
        return int(next(iter(self.feeds.values())).shape[0])

    def take(self, index: np.ndarray) -> dict[str, np.ndarray]:
        return {name: value[index] for name, value in self.feeds.items()}


def _labels_of(source: Any, max_samples: int | None, batch_size: int) -> np.ndarray | None:
    if isinstance(source, Mapping):
        labels = source.get("labels")
        if labels is None:
            return None
        labels = np.asarray(labels).reshape(-1)
        return labels if max_samples is None else labels[:max_samples]
    if hasattr(source, "batches"):
        parts = []
        for _feeds, labels in source.batches(batch_size):
            if labels is None:
                return None
            parts.append(np.asarray(labels).reshape(-1))
        if not parts:
            return None
        labels = np.concatenate(parts)
        return labels if max_samples is None else labels[:max_samples]
    return None


def load_samples(
    calibration: Any, model: ModelProto, *, max_samples: int | None = 512, batch_size: int = 64
) -> Samples:
    """Read at most ``max_samples`` calibration samples (and labels) into memory."""
    source = _load(calibration)
    batches = list(iter_feeds(source, model, batch_size=batch_size, max_samples=max_samples))
    feeds = {name: np.concatenate([b[name] for b in batches]) for name in batches[0]}
    samples = Samples(feeds, None)
    labels = _labels_of(source, max_samples, batch_size)
    if labels is not None:
        if len(labels) != len(samples):
            raise InputError(
                f"calibration data has {len(labels)} labels for {len(samples)} samples"
            )
        samples.labels = labels.astype(np.int64)
    return samples


def fixed_batch(model: ModelProto) -> int | None:
    """The batch size a model's first real input fixes (a number on axis 0), else None."""
    initializers = {init.name for init in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0:
            return int(dims[0].dim_value)
        return None
    return None


def batch_starts(count: int, batch_size: int, fixed: int | None) -> list[tuple[int, int]]:
    """(start, stop) of consecutive batches over ``count`` samples; with a ``fixed`` model
    batch, batches of exactly that size (a ragged tail is dropped)."""
    size = fixed or batch_size
    stops = [(start, min(start + size, count)) for start in range(0, count, size)]
    return [(a, b) for a, b in stops if fixed is None or b - a == fixed]
