"""Seeded construction of zoo models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .zoo._common import randomize_normalization


def seeded_build(builder: Callable[..., nn.Module], seed: int, **kwargs: Any) -> nn.Module:
    """Call ``builder(**kwargs)`` under ``torch.manual_seed(seed)`` (global RNG state restored
    afterwards), randomize norm statistics from a generator seeded with ``seed + 1``, and return
    the model in eval mode. Same seed and arguments -> identical parameters and buffers."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = builder(**kwargs)
    randomize_normalization(model, torch.Generator().manual_seed(seed + 1))
    return model.eval()
