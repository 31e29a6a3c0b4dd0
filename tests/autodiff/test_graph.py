"""build_gradient_model: fail closed, paths, losses, edges, sessions."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprune.autodiff import (
    GradientSession,
    build_gradient_model,
    build_loss_model,
    cross_entropy,
    embedding_cosine,
    expose_edges,
    gradient_name,
    kl_divergence,
    mean_squared_error,
    one_hot,
    reachable,
    sum_losses,
    target_name,
)
from onnxprune.errors import InputError

FLOAT = TensorProto.FLOAT


def _model(nodes, initializers=None, outputs=("y",), shape=(3, 4)) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", FLOAT, ["n", shape[1]])],
        [helper.make_tensor_value_info(name, FLOAT, None) for name in outputs],
        [numpy_helper.from_array(v, k) for k, v in (initializers or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_op_without_rule_fails_closed_naming_it() -> None:
    model = _model([helper.make_node("Cos", ["x"], ["y"], name="the_cos")])
    with pytest.raises(InputError, match=r"no gradient rule for op Cos .*'the_cos'"):
        build_gradient_model(model, mean_squared_error(model, ["y"]), ["x"])


def test_unknown_tensor_is_rejected() -> None:
    model = _model([helper.make_node("Relu", ["x"], ["y"])])
    with pytest.raises(InputError, match="unknown tensor"):
        build_gradient_model(model, mean_squared_error(model, ["y"]), ["nope"])


def test_shape_paths_carry_no_gradient_and_unreached_tensors_get_zeros() -> None:
    w = np.arange(4, dtype=np.float32)
    unused = np.ones(2, dtype=np.float32)
    model = _model(
        [
            helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node("Mul", ["x", "w"], ["m"]),
            helper.make_node("Reshape", ["m", "s"], ["y"]),
            helper.make_node("Cos", ["u"], ["c"]),  # no rule, but off the loss path
        ],
        {"w": w, "u": unused},
    )
    loss = mean_squared_error(model, ["y"])
    assert reachable(model, loss, ["w", "u", "x"]) == ["w", "x"]
    session = GradientSession(build_gradient_model(model, loss, ["w", "u"]))
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    t = np.zeros((3, 4), dtype=np.float32)
    out = session.run({"x": x, target_name("y"): t})
    np.testing.assert_allclose(out[gradient_name("w")], (2 * x * x * w / 12).sum(0), rtol=1e-5)
    assert not out[gradient_name("u")].any()


def test_kl_and_cross_entropy_gradients_are_the_known_closed_forms() -> None:
    model = _model([helper.make_node("Identity", ["x"], ["y"])])
    rng = np.random.default_rng(1)
    y = rng.standard_normal((3, 4)).astype(np.float32)
    r = rng.standard_normal((3, 4)).astype(np.float32)
    temperature = 2.0
    kl = kl_divergence(model, temperature=temperature)
    out = GradientSession(build_gradient_model(model, kl, ["x"])).run({"x": y, target_name("y"): r})
    p, q = _softmax(r / temperature), _softmax(y / temperature)
    expected = temperature * (q - p) / 3
    np.testing.assert_allclose(out[gradient_name("x")], expected, rtol=1e-4, atol=1e-6)
    kl_value = temperature**2 * (p * (np.log(p) - np.log(q))).sum(1).mean()
    assert float(out[kl.output]) == pytest.approx(kl_value, rel=1e-4)

    targets = one_hot(np.array([0, 3, 1]), 4, smoothing=0.1)
    ce = cross_entropy(model)
    out = GradientSession(build_gradient_model(model, ce, ["x"])).run(
        {"x": y, target_name("y"): targets}
    )
    np.testing.assert_allclose(
        out[gradient_name("x")], (_softmax(y) - targets) / 3, rtol=1e-4, atol=1e-6
    )


def test_summed_losses_and_feedable_parameters() -> None:
    w = np.full(4, 0.5, dtype=np.float32)
    model = _model(
        [
            helper.make_node("Mul", ["x", "w"], ["h"]),
            helper.make_node("Relu", ["h"], ["y"]),
        ],
        {"w": w},
    )
    loss = sum_losses(model, [kl_divergence(model), mean_squared_error(model, ["h"])], [1.0, 0.5])
    assert set(loss.targets) == {target_name("y"), target_name("h")}
    gradient = GradientSession(build_gradient_model(model, loss, ["w"]))
    evaluate = GradientSession(build_loss_model(model, loss, ["w"]))
    rng = np.random.default_rng(2)
    feeds = {
        "x": rng.standard_normal((3, 4)).astype(np.float32),
        target_name("y"): rng.standard_normal((3, 4)).astype(np.float32),
        target_name("h"): rng.standard_normal((3, 4)).astype(np.float32),
    }
    base = gradient.run(feeds)
    moved = gradient.run({**feeds, "w": w + 1})
    assert float(moved[loss.output]) != pytest.approx(float(base[loss.output]))
    assert float(evaluate.run({**feeds, "w": w + 1})[loss.output]) == pytest.approx(
        float(moved[loss.output]), rel=1e-6
    )


def test_edge_gradient_is_one_reader_only() -> None:
    model = _model(
        [
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node("Add", ["r", "x"], ["y"], name="add"),
        ]
    )
    exposed, (edge,) = expose_edges(model, [("add", 1)])
    loss = mean_squared_error(exposed, ["y"])
    session = GradientSession(build_gradient_model(exposed, loss, [edge, "x"]))
    x = np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32)
    out = session.run({"x": x, target_name("y"): np.zeros((3, 4), np.float32)})
    g = 2 * (np.maximum(x, 0) + x) / 12
    np.testing.assert_allclose(out[gradient_name(edge)], g, rtol=1e-5)
    np.testing.assert_allclose(out[gradient_name("x")], g * (1 + (x > 0)), rtol=1e-5)
    with pytest.raises(KeyError):
        expose_edges(model, [("missing", 0)])


def _token_model(with_mask: bool) -> onnx.ModelProto:
    """y[N, L, 3] = x[N, L, 4] · W; an int64 attention mask [N, L] as a second input."""
    inputs = [helper.make_tensor_value_info("x", FLOAT, ["n", "l", 4])]
    if with_mask:
        inputs.append(
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["n", "l"])
        )
    w = np.random.default_rng(5).standard_normal((4, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "tokens",
        inputs,
        [helper.make_tensor_value_info("y", FLOAT, ["n", "l", 3])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("with_mask", [True, False])
def test_embedding_cosine_loss_and_its_gradient_match_torch(with_mask: bool) -> None:
    """mean_n (1 − cos(Σ_l m·y, Σ_l m·r)) against torch autograd of the same expression;
    padding tokens change neither the loss nor the gradient."""
    import torch

    model = _token_model(with_mask)
    loss = embedding_cosine(model)
    session = GradientSession(build_gradient_model(model, loss, ["w"]))
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    r = rng.standard_normal((3, 5, 3)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=np.int64)
    feeds = {"x": x, target_name("y"): r}
    if with_mask:
        feeds["attention_mask"] = mask
    out = session.run(feeds)

    w = torch.tensor(numpy_helper.to_array(model.graph.initializer[0]), requires_grad=True)
    m = torch.tensor(mask if with_mask else np.ones_like(mask)).unsqueeze(-1).to(torch.float32)
    e = ((torch.tensor(x) @ w) * m).sum(1)
    t = (torch.tensor(r) * m).sum(1)
    expected = (1 - torch.nn.functional.cosine_similarity(e, t, dim=-1, eps=0)).mean()
    expected.backward()
    assert float(out[loss.output]) == pytest.approx(float(expected), rel=1e-5)
    np.testing.assert_allclose(out[gradient_name("w")], w.grad.numpy(), rtol=1e-4, atol=1e-6)
    if with_mask:  # padding positions move nothing
        moved = {**feeds, "x": np.where(mask[..., None] == 0, 100.0, x).astype(np.float32)}
        again = session.run(moved)
        assert float(again[loss.output]) == pytest.approx(float(out[loss.output]), rel=1e-5)
