"""Output losses for distillation, registered by name.

``register_distill_loss(name)`` maps a name to ``builder(model, outputs, temperature) -> Loss``
(:class:`onnxprune.autodiff.Loss`): a scalar comparing the pruned model's ``outputs`` with the
unpruned model's (fed as ``target/<output>``). The math of each is in its docstring
(``describe_distill_loss(name)``). The pipeline uses the one the guard's metric names
(``Metric.distill_loss`` in :mod:`onnxprune.evaluate.registry`: ``mse`` for the embedding
metrics, ``kl_last_axis`` for token agreement, ``kl`` otherwise) unless the run names one
(kind option ``distill_loss=NAME``); users register their own the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from onnx import ModelProto

from onnxprune.autodiff import Loss, embedding_cosine, kl_divergence, mean_squared_error
from onnxprune.errors import InputError

DistillLoss = Callable[[ModelProto, Sequence[str], float], Loss]

_LOSSES: dict[str, DistillLoss] = {}


def register_distill_loss(name: str):
    """Decorator registering ``builder(model, outputs, temperature) -> Loss`` as ``name``."""

    def decorate(builder: DistillLoss) -> DistillLoss:
        _LOSSES[name] = builder
        return builder

    return decorate


def distill_loss_names() -> tuple[str, ...]:
    """Names of the registered losses, in registration order."""
    return tuple(_LOSSES)


def lookup_distill_loss(name: str) -> DistillLoss:
    """The loss registered as ``name``; :class:`InputError` naming the known ones otherwise."""
    builder = _LOSSES.get(name)
    if builder is None:
        raise InputError(f"unknown distillation loss '{name}'; known: {', '.join(_LOSSES)}")
    return builder


def describe_distill_loss(name: str) -> str:
    """The docstring (math) of the loss registered as ``name``."""
    return (lookup_distill_loss(name).__doc__ or "").strip()


@register_distill_loss("kl")
def _kl(model: ModelProto, outputs: Sequence[str], temperature: float) -> Loss:
    """Logits: T² · mean over positions of KL(softmax(r/T) ‖ softmax(y/T)) along axis 1 (the
    class axis), summed over the outputs (Hinton et al.); r the unpruned model's output."""
    return kl_divergence(model, outputs=outputs, temperature=temperature)


@register_distill_loss("kl_last_axis")
def _kl_last_axis(model: ModelProto, outputs: Sequence[str], temperature: float) -> Loss:
    """Token logits [batch, tokens, classes]: T² · mean over (batch, token) positions of
    KL(softmax(r/T) ‖ softmax(y/T)) along the last axis, summed over the outputs."""
    return kl_divergence(model, outputs=outputs, temperature=temperature, class_axis=-1)


@register_distill_loss("mse")
def _mse(model: ModelProto, outputs: Sequence[str], temperature: float) -> Loss:
    """Embeddings and other real-valued outputs: Σ_outputs mean((y − r)²) over every element,
    r the unpruned model's output (the temperature is not used). A softmax over axis 1 of a
    hidden-state tensor [batch, tokens, hidden] would compare distributions over tokens, which
    means nothing; the squared error matches every token's vector."""
    return mean_squared_error(model, list(outputs))


@register_distill_loss("embedding_cosine")
def _embedding_cosine(model: ModelProto, outputs: Sequence[str], temperature: float) -> Loss:
    """Sentence embeddings: Σ_outputs mean_n (1 − cos(e_n, r_n)), e_n = Σ_l m_nl y_nl the
    mask-pooled hidden states [N, L, H] over the real tokens (the model's rank-2 input named
    like a mask; every token without one), r_n the same of the unpruned model's output; the
    quantity the ``embedding_cosine`` metric measures, padding tokens and the vectors' norms
    left out (the temperature is not used)."""
    return embedding_cosine(model, outputs=outputs)
