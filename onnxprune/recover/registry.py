"""Recovery methods by name: ``register_recovery(name)`` maps a name to a factory.

A factory receives ``(analysis, calibration, settings)`` and returns
``recover(analysis, removed_clusters, pruned_model) -> ModelProto``. The math of each method is
in its factory's docstring (``describe_recovery(name)``). Users register their own methods the
same way; :func:`onnxprune.recover.make_recovery` selects one by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from onnx import ModelProto

from onnxprune.defaults import LSQ_RIDGE
from onnxprune.errors import InputError

Recovery = Callable[[Any, Any, ModelProto], ModelProto]


@dataclass(frozen=True)
class RecoverySettings:
    """Options shared by the built-in methods (each reads the ones it needs).

    ``ridge``: λ relative to tr(G)/d; ``max_samples``, ``batch_size``, ``positions`` (output
    positions sampled per sample) and ``rows_per_column`` (rows per unknown, None = no cap)
    bound the cost; ``max_columns``: wider layers get bias compensation only (lsq);
    ``stats_correction``: match each refitted channel's mean/std to the target's;
    ``block_output``: fit layers feeding a residual Add to the Add's output (reconstruct);
    ``activation_fit``: after the refit, a per-channel scale and shift fitted where the
    layer's monotone activation is not flat (reconstruct; :mod:`onnxprune.recover.activation_fit`);
    ``frontier_mb``: activations kept between refit levels, per model (lsq, reconstruct);
    ``ridge_grid``: when given, each layer's ridge is chosen from it by two-fold
    cross-validation over calibration samples, and a layer no ridge improves on held-out
    samples is left as it is (reconstruct); ``distill_loss``: the registered output loss
    distillation minimizes (:mod:`onnxprune.recover.distill_losses`; the pipeline takes the
    guard metric's); ``min_rows_per_column``: a layer with fewer calibration rows per unknown is not refitted
    (reconstruct: an underdetermined refit, e.g. a classifier with one row per image, fits
    the calibration images and generalizes worse).
    """

    ridge: float = LSQ_RIDGE
    max_samples: int | None = 512
    batch_size: int = 32
    positions: int | None = 64
    rows_per_column: int | None = 32
    max_columns: int = 6144
    stats_correction: bool = False
    block_output: bool = True
    activation_fit: bool = False
    frontier_mb: float = 1024.0
    min_rows_per_column: float = 2.0
    ridge_grid: tuple[float, ...] = ()
    distill_loss: str = "kl"
    seed: int = 0
    progress: Callable[[str], None] | None = None


RecoveryFactory = Callable[[Any, Any, RecoverySettings], Recovery]


@dataclass(frozen=True)
class RecoveryMethod:
    """A registered method: its factory and whether it needs calibration data."""

    name: str
    factory: RecoveryFactory
    needs_data: bool = True


_METHODS: dict[str, RecoveryMethod] = {}


def register_recovery(name: str, *, needs_data: bool = True):
    """Decorator registering ``factory(analysis, calibration, settings) -> recover`` as ``name``."""

    def decorate(factory: RecoveryFactory) -> RecoveryFactory:
        _METHODS[name] = RecoveryMethod(name, factory, needs_data)
        return factory

    return decorate


def recovery_names() -> tuple[str, ...]:
    """Names of the registered methods, in registration order."""
    return tuple(_METHODS)


def lookup_recovery(name: str) -> RecoveryMethod:
    """The method registered as ``name``; :class:`InputError` naming the known ones otherwise."""
    method = _METHODS.get(name)
    if method is None:
        raise InputError(f"unknown recovery '{name}'; known: {', '.join(_METHODS)}")
    return method


def describe_recovery(name: str) -> str:
    """The docstring (math) of the method registered as ``name``."""
    return (lookup_recovery(name).factory.__doc__ or "").strip()
