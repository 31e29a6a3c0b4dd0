import numpy as np
import pytest
from onnx import helper

from tests.passes.helpers import check_preprocess, const, model, op_types

RNG = np.random.default_rng(2)


def _decomposed(opset: int, axes=(-1,), square="Pow", gamma=True, beta=True, hidden=(4, 6)):
    """Paddle2ONNX-style LayerNorm: ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add."""
    normalized = hidden[len(hidden) - len(axes) :]
    inits = [const("two", 2.0), const("eps", 1e-5)]
    if opset >= 18:
        inits.append(const("axes", np.array(axes, dtype=np.int64)))

    def mean(src, out):
        if opset >= 18:
            return helper.make_node("ReduceMean", [src, "axes"], [out], keepdims=1)
        return helper.make_node("ReduceMean", [src], [out], axes=list(axes), keepdims=1)

    nodes = [
        mean("x", "mu"),
        helper.make_node("Sub", ["x", "mu"], ["d"]),
        helper.make_node("Pow", ["d", "two"], ["sq"])
        if square == "Pow"
        else helper.make_node("Mul", ["d", "d"], ["sq"]),
        mean("sq", "var"),
        helper.make_node("Add", ["var", "eps"], ["ve"]),
        helper.make_node("Sqrt", ["ve"], ["std"]),
        helper.make_node("Div", ["d", "std"], ["n"]),
    ]
    last = "n"
    if gamma:
        inits.append(const("gamma", RNG.uniform(0.5, 1.5, normalized)))
        nodes.append(helper.make_node("Mul", [last, "gamma"], ["scaled"]))
        last = "scaled"
    if beta:
        inits.append(const("beta", RNG.standard_normal(normalized)))
        nodes.append(helper.make_node("Add", ["beta", last], ["shifted"]))
        last = "shifted"
    nodes.append(helper.make_node("Identity", [last], ["y"]))
    dims = ["B", *hidden]
    return model(nodes, [("x", dims)], [("y", dims)], inits, opset=opset)


@pytest.mark.parametrize("opset", [17, 18])
def test_reduce_mean_attribute_and_input_forms_fuse(opset):
    result = check_preprocess(_decomposed(opset), {"x": [3, 4, 6]})
    assert op_types(result.model) == ["LayerNormalization"]


def test_two_trailing_axes_and_mul_square_without_beta():
    proto = _decomposed(17, axes=(-2, -1), square="Mul", beta=False)
    result = check_preprocess(proto, {"x": [2, 4, 6]})
    assert op_types(result.model) == ["LayerNormalization"]
    attrs = {a.name: helper.get_attribute_value(a) for a in result.model.graph.node[0].attribute}
    assert attrs["axis"] == -2


def test_opset_13_is_raised_to_17():
    result = check_preprocess(_decomposed(13), {"x": [2, 4, 6]})
    assert op_types(result.model) == ["LayerNormalization"]
    assert result.model.opset_import[0].version == 17


def test_non_trailing_axis_is_not_fused():
    proto = _decomposed(17, axes=(1,), gamma=False, beta=False)
    result = check_preprocess(proto, {"x": [2, 4, 6]}, exact=True)
    assert "LayerNormalization" not in op_types(result.model)
    assert result.applied["fuse_layernorm"] is False
