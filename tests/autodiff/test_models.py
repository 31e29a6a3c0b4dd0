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


def _torch_loss_and_input_gradient(name: str, x: torch.Tensor, seed: int, module=None):
    """Random targets shaped like the outputs, and ∂(Σ mean((y − t)²))/∂x by torch.autograd
    (parameter gradients are left in ``module``'s ``.grad``)."""
    small = SMALL_CONFIG[name]
    module = (
        module
        or build_model(
            name, small["width"], size=small["size"], depth=small.get("depth", 1.0), seed=0
        ).eval()
    )
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
    _check_input_gradient(preprocess(onnx.load(str(zoo_onnx(name, exporter)))).model, name)


def test_input_gradient_through_a_lowered_attention_op_matches_torch(zoo_onnx) -> None:
    """Dynamo at opset 23 writes nn.MultiheadAttention's attention as an ONNX Attention node,
    which ``lower_attention`` rewrites; the gradient of the lowered model equals torch's."""
    original = onnx.load(str(zoo_onnx("vit_tiny_mha", "dynamo", opset=23)))
    assert any(node.op_type == "Attention" for node in original.graph.node)
    _check_input_gradient(preprocess(original).model, "vit_tiny_mha")


def _check_input_gradient(model: onnx.ModelProto, name: str) -> None:
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


def _initializers_equal_to_parameters(model, module) -> dict[str, tuple[str, bool]]:
    """ONNX initializer name -> (torch parameter name, transposed) for every initializer whose
    values equal a parameter of ``module`` exactly (or its transpose, as MatMul exports
    write Linear weights). Folded ones (Conv weights with BatchNorm) match nothing."""
    from onnx import numpy_helper

    parameters = {
        name: p.detach().numpy() for name, p in module.named_parameters() if p.numel() > 1
    }
    found = {}
    for init in model.graph.initializer:
        value = numpy_helper.to_array(init)
        if value.size < 2 or value.dtype != np.float32:
            continue
        for name, parameter in parameters.items():
            if value.shape == parameter.shape and np.array_equal(value, parameter):
                found[init.name] = (name, False)
                break
            if (
                value.ndim == 2
                and value.shape == parameter.T.shape
                and np.array_equal(value, parameter.T)
            ):
                found[init.name] = (name, True)
                break
    return found


@pytest.mark.slow
@pytest.mark.parametrize(("name", "exporter"), CASES, ids=[f"{n}-{e}" for n, e in CASES])
def test_weight_gradients_match_torch(zoo_onnx, name: str, exporter: str) -> None:
    """∂L/∂W of every initializer that is a torch parameter unchanged by preprocessing (heads,
    attention and MLP weights, convs without BatchNorm) equals torch.autograd's .grad."""
    model = preprocess(onnx.load(str(zoo_onnx(name, exporter)))).model
    small = SMALL_CONFIG[name]
    module = build_model(
        name, small["width"], size=small["size"], depth=small.get("depth", 1.0), seed=0
    ).eval()
    matched = _initializers_equal_to_parameters(model, module)
    assert matched, "no initializer equals a torch parameter"
    outputs = [value.name for value in model.graph.output]
    x = sample_input(name, batch=2, size=small["size"], seed=3)
    targets, _ = _torch_loss_and_input_gradient(name, x, seed=0, module=module)
    grads = dict(module.named_parameters())
    session = GradientSession(
        build_gradient_model(model, mean_squared_error(model, outputs), sorted(matched))
    )
    feeds = {"input": x.numpy()}
    feeds.update({target_name(o): t for o, t in zip(outputs, targets, strict=True)})
    got = session.run(feeds)
    for init_name, (parameter, transposed) in matched.items():
        want = grads[parameter].grad.numpy()
        want = want.T if transposed else want
        if np.abs(want).max() == 0:
            continue
        error = _relative_error(got[gradient_name(init_name)], want)
        assert error <= RELATIVE_TOLERANCE, (init_name, parameter, error)
