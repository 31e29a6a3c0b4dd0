"""Shared building helpers for the reference model zoo: channel rounding, depth scaling, init."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (at least ``min_value``).

    Contract (as in MobileNet): result = max(min_value, floor(value + divisor/2) // divisor * divisor),
    bumped up by one ``divisor`` when rounding down lost more than 10 % of ``value``.
    ``min_value`` defaults to ``divisor``.
    """
    floor = divisor if min_value is None else min_value
    rounded = max(floor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def scale_channels(channels: int, width: float, divisor: int = 8) -> int:
    """Scale a channel count by ``width`` and round it to a multiple of ``divisor`` (min ``divisor``)."""
    return make_divisible(channels * width, divisor)


def scale_depth(layers: int, depth: float) -> int:
    """Scale a per-stage block count by ``depth``: max(1, round(layers * depth))."""
    return max(1, round(layers * depth))


_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def randomize_normalization(model: nn.Module, generator: torch.Generator) -> None:
    """Give every norm layer non-trivial, seeded statistics so folding is really exercised.

    BatchNorm: weight ~ U(0.5, 1.5), bias ~ N(0, 0.1), running_mean ~ N(0, 0.1),
    running_var ~ U(0.5, 1.5) (positive, around 1). LayerNorm and channels-first norms with
    ``weight``/``bias``: weight ~ U(0.5, 1.5), bias ~ N(0, 0.1). Any parameter named ``gamma``
    (ConvNeXt layer scale) ~ U(0.5, 1.5).
    """
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _BATCH_NORMS):
                _uniform_(module.weight, 0.5, 1.5, generator)
                _normal_(module.bias, 0.1, generator)
                _normal_(module.running_mean, 0.1, generator)
                _uniform_(module.running_var, 0.5, 1.5, generator)
            elif isinstance(module, nn.LayerNorm) or getattr(module, "is_channel_norm", False):
                _uniform_(module.weight, 0.5, 1.5, generator)
                _normal_(module.bias, 0.1, generator)
        for name, param in model.named_parameters():
            if name.rsplit(".", 1)[-1] == "gamma":
                _uniform_(param, 0.5, 1.5, generator)


def _uniform_(tensor: torch.Tensor, low: float, high: float, generator: torch.Generator) -> None:
    """Fill ``tensor`` in place with U(low, high) drawn from ``generator``."""
    tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)


def _normal_(tensor: torch.Tensor, std: float, generator: torch.Generator) -> None:
    """Fill ``tensor`` in place with N(0, std**2) drawn from ``generator``."""
    tensor.copy_(torch.randn(tensor.shape, generator=generator) * std)


def conv_bn_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    groups: int = 1,
    activation: type[nn.Module] | None = nn.ReLU,
    eps: float = 1e-5,
) -> nn.Sequential:
    """Conv2d (no bias, 'same'-style padding k//2) -> BatchNorm2d -> optional activation."""
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            groups=groups,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels, eps=eps),
    ]
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


def seeded_build(builder: Callable[..., nn.Module], seed: int, **kwargs: Any) -> nn.Module:
    """Call ``builder(**kwargs)`` under ``torch.manual_seed(seed)`` (global RNG state restored
    afterwards), randomize norm statistics from a generator seeded with ``seed + 1``, and return
    the model in eval mode. Same seed and arguments -> identical parameters and buffers."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = builder(**kwargs)
    randomize_normalization(model, torch.Generator().manual_seed(seed + 1))
    return model.eval()
