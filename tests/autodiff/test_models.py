"""Whole zoo models (both exporters): ONNX gradients equal torch.autograd of the same module."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from models import EXPORTERS, MODELS, SMALL_CONFIG, build_model, get_spec, sample_input
from onnxprune.autodiff import (
    GradientSession,
    build_gradient_model,
    gradient_name,
    mean_squared_error,
    target_name,
)
from onnxprune.passes.pipeline import preprocess

RELATIVE_TOLERANCE = 1e-4
# Input gradients need a float input: token-id (text) models have none.
CASES = [
    (name, exporter) for name in MODELS if not get_spec(name).is_text for exporter in EXPORTERS
]


def _relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual - expected).max() / (np.abs(expected).max() + 1e-12))


def _torch_loss_and_input_gradient(name: str, x: torch.Tensor, seed: int):
    """Random targets shaped like the outputs, and ∂(Σ mean((y − t)²))/∂x by torch.autograd."""
    small = SMALL_CONFIG[name]
    module = build_model(
        name, small["width"], size=small["size"], depth=small.get("depth", 1.0), seed=0
    ).eval()
    x = x.clone().requires_grad_(True)
    result = module(x)
    outputs = [result] if isinstance(result, torch.Tensor) else list(result)
    rng = np.random.default_rng(seed)
    targets = [rng.standard_normal(tuple(y.shape)).astype(np.float32) for y in outputs]
    loss = sum(
        torch.mean((y - torch.from_numpy(t)) ** 2) for y, t in zip(outputs, targets, strict=True)
    )
    loss.backward()
    return targets, x.grad.numpy()


@pytest.mark.slow
@pytest.mark.parametrize(("name", "exporter"), CASES, ids=[f"{n}-{e}" for n, e in CASES])
def test_input_gradient_matches_torch(zoo_onnx, name: str, exporter: str) -> None:
    model = preprocess(onnx.load(str(zoo_onnx(name, exporter)))).model
    outputs = [value.name for value in model.graph.output]
    x = sample_input(name, batch=2, size=SMALL_CONFIG[name]["size"], seed=3)
    targets, want = _torch_loss_and_input_gradient(name, x, seed=0)
    session = GradientSession(
        build_gradient_model(model, mean_squared_error(model, outputs), ["input"])
    )
    feeds = {"input": x.numpy()}
    feeds.update({target_name(o): t for o, t in zip(outputs, targets, strict=True)})
    got = session.run(feeds)[gradient_name("input")]
    assert np.abs(want).max() > 0
    assert _relative_error(got, want) <= RELATIVE_TOLERANCE, _relative_error(got, want)
