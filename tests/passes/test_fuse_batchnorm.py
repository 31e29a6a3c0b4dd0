import numpy as np
import pytest
from onnx import helper

from tests.passes.helpers import check_preprocess, const, model, op_types

RNG = np.random.default_rng(1)


def _bn_params(prefix: str, channels: int):
    return [
        const(f"{prefix}_gamma", RNG.uniform(0.5, 2.0, channels)),
        const(f"{prefix}_beta", RNG.standard_normal(channels)),
        const(f"{prefix}_mean", RNG.standard_normal(channels)),
        const(f"{prefix}_var", RNG.uniform(0.1, 3.0, channels)),
    ]


def _bn(prefix: str, source: str, output: str, epsilon: float = 1e-3):
    names = [f"{prefix}_{p}" for p in ("gamma", "beta", "mean", "var")]
    return helper.make_node("BatchNormalization", [source, *names], [output], epsilon=epsilon)


@pytest.mark.parametrize("with_bias", [True, False])
def test_conv_bn_is_folded_into_conv(with_bias):
    inits = [const("w", RNG.standard_normal((6, 3, 3, 3))), *_bn_params("bn", 6)]
    conv_inputs = ["x", "w"]
    if with_bias:
        inits.append(const("b", RNG.standard_normal(6)))
        conv_inputs.append("b")
    nodes = [
        helper.make_node("Conv", conv_inputs, ["c"], pads=[1, 1, 1, 1]),
        _bn("bn", "c", "y"),
    ]
    proto = model(nodes, [("x", ["N", 3, 8, 8])], [("y", ["N", 6, 8, 8])], inits)
    result = check_preprocess(proto, {"x": [2, 3, 8, 8]})
    assert op_types(result.model) == ["Conv"]
    assert len(result.model.graph.node[0].input) == 3
    assert result.applied["fuse_batchnorm"] is True


@pytest.mark.parametrize("groups", [1, 2])
def test_conv_transpose_bn_scales_axis_one_per_group(groups):
    weight = RNG.standard_normal((4, 6 // groups, 2, 2))
    inits = [const("w", weight), const("b", RNG.standard_normal(6)), *_bn_params("bn", 6)]
    nodes = [
        helper.make_node("ConvTranspose", ["x", "w", "b"], ["c"], strides=[2, 2], group=groups),
        _bn("bn", "c", "y"),
    ]
    proto = model(nodes, [("x", [1, 4, 5, 5])], [("y", [1, 6, 10, 10])], inits)
    result = check_preprocess(proto, {"x": [1, 4, 5, 5]})
    assert op_types(result.model) == ["ConvTranspose"]


@pytest.mark.parametrize(
    ("trans_b", "beta", "bias_shape"), [(0, 1.0, (5,)), (1, 0.5, (1, 5)), (1, 2.0, None)]
)
def test_gemm_bn_handles_trans_b_and_beta(trans_b, beta, bias_shape):
    weight = RNG.standard_normal((5, 7) if trans_b else (7, 5))
    inits = [const("w", weight), *_bn_params("bn", 5)]
    gemm_inputs = ["x", "w"]
    if bias_shape is not None:
        inits.append(const("c", RNG.standard_normal(bias_shape)))
        gemm_inputs.append("c")
    nodes = [
        helper.make_node("Gemm", gemm_inputs, ["g"], transB=trans_b, beta=beta, alpha=0.7),
        _bn("bn", "g", "y"),
    ]
    proto = model(nodes, [("x", ["N", 7])], [("y", ["N", 5])], inits)
    result = check_preprocess(proto, {"x": [3, 7]})
    assert op_types(result.model) == ["Gemm"]


def test_matmul_bn_becomes_matmul_add():
    inits = [const("w", RNG.standard_normal((7, 5))), *_bn_params("bn", 5)]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), _bn("bn", "m", "y")]
    proto = model(nodes, [("x", ["N", 7])], [("y", ["N", 5])], inits)
    result = check_preprocess(proto, {"x": [3, 7]})
    assert op_types(result.model) == ["MatMul", "Add"]


def test_bn_after_shared_conv_output_is_kept():
    inits = [const("w", RNG.standard_normal((4, 3, 1, 1))), *_bn_params("bn", 4)]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"]),
        _bn("bn", "c", "y"),
        helper.make_node("Relu", ["c"], ["z"]),
    ]
    proto = model(nodes, [("x", [1, 3, 4, 4])], [("y", [1, 4, 4, 4]), ("z", [1, 4, 4, 4])], inits)
    result = check_preprocess(proto, {"x": [1, 3, 4, 4]})
    assert "BatchNormalization" in op_types(result.model)
    assert result.applied["fuse_batchnorm"] is False


def test_weight_shared_by_two_convs_is_not_changed_for_the_other():
    inits = [const("w", RNG.standard_normal((4, 4, 1, 1))), *_bn_params("bn", 4)]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"]),
        _bn("bn", "c", "y"),
        helper.make_node("Conv", ["y", "w"], ["z"]),
    ]
    proto = model(nodes, [("x", [1, 4, 4, 4])], [("z", [1, 4, 4, 4])], inits)
    result = check_preprocess(proto, {"x": [1, 4, 4, 4]})
    assert op_types(result.model) == ["Conv", "Conv"]
