"""Every vector-Jacobian rule against central finite differences in float64."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from onnxprune.autodiff import registered_vjp_ops
from onnxprune.autodiff.rules.resample import linear_matrix, source_coordinates
from onnxprune.errors import InputError
from tests.autodiff.fd import check_gradients, evaluator, one_node_model

FD_SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _check(
    op, inputs, constants, order, wrt, opset=18, outputs=1, engine="reference", full_check=True,
    **attrs,
):  # fmt: skip
    model = one_node_model(op, inputs, constants, order, outputs=outputs, opset=opset, **attrs)
    check_gradients(model, inputs, wrt, engine=engine, full_check=full_check)


@st.composite
def conv_cases(draw):
    rank = draw(st.sampled_from([1, 2]))
    group = draw(st.sampled_from([1, 2, 3]))
    per_group_in = draw(st.integers(1, 2))
    per_group_out = draw(st.integers(1, 2))
    kernel = [draw(st.integers(1, 3)) for _ in range(rank)]
    strides = [draw(st.integers(1, 3)) for _ in range(rank)]
    dilations = [draw(st.integers(1, 2)) for _ in range(rank)]
    pads = [draw(st.integers(0, 2)) for _ in range(2 * rank)]
    spatial = [
        draw(st.integers((k - 1) * d + 1, (k - 1) * d + 6))
        for k, d in zip(kernel, dilations, strict=False)
    ]
    bias = draw(st.booleans())
    seed = draw(st.integers(0, 1000))
    return (
        rank,
        group,
        per_group_in,
        per_group_out,
        kernel,
        strides,
        dilations,
        pads,
        spatial,
        bias,
        seed,
    )


@FD_SETTINGS
@given(conv_cases())
def test_conv_matches_finite_differences(case) -> None:
    _, group, cin, cout, kernel, strides, dilations, pads, spatial, bias, seed = case
    rng = _rng(seed)
    x = rng.standard_normal((2, group * cin, *spatial))
    w = rng.standard_normal((group * cout, cin, *kernel))
    constants = {"w": w}
    order = ["x", "w"]
    if bias:
        constants["b"] = rng.standard_normal(group * cout)
        order.append("b")
    _check(
        "Conv",
        {"x": x},
        constants,
        order,
        ["x", *order[1:]],
        group=group,
        strides=strides,
        dilations=dilations,
        pads=pads,
    )


@pytest.mark.parametrize("group", [1, 2])
def test_conv_large_kernel_uses_the_transposed_operand_conv(group: int) -> None:
    rng = _rng(5)
    x = rng.standard_normal((2, 2 * group, 9, 8))
    w = rng.standard_normal((2 * group, 2, 4, 3))
    _check(
        "Conv",
        {"x": x},
        {"w": w},
        ["x", "w"],
        ["x", "w"],
        group=group,
        strides=[2, 1],
        pads=[1, 0, 2, 1],
        dilations=[1, 2],
    )


@pytest.mark.parametrize(
    ("strides", "dilations", "pads"),
    [
        ([1, 1], [1, 1], [1, 1, 1, 1]),  # unit stride: shifted windows
        ([1, 1], [2, 1], [0, 2, 1, 0]),
        ([2, 2], [1, 1], [0, 0, 1, 1]),  # strided: the grouped transposed-operand Conv
        ([2, 3], [1, 2], [1, 0, 0, 2]),
    ],
)
def test_depthwise_conv_filter_gradient(strides, dilations, pads) -> None:
    rng = _rng(11)
    x = rng.standard_normal((2, 3, 9, 8))
    w = rng.standard_normal((3, 1, 3, 3))
    b = rng.standard_normal(3)
    _check(
        "Conv",
        {"x": x},
        {"w": w, "b": b},
        ["x", "w", "b"],
        ["x", "w", "b"],
        group=3,
        strides=strides,
        dilations=dilations,
        pads=pads,
    )


@FD_SETTINGS
@given(
    st.sampled_from(["SAME_UPPER", "SAME_LOWER", "VALID"]),
    st.integers(1, 3),
    st.integers(0, 100),
)
def test_conv_auto_pad(auto_pad: str, stride: int, seed: int) -> None:
    rng = _rng(seed)
    x = rng.standard_normal((1, 2, 7, 6))
    w = rng.standard_normal((3, 2, 3, 2))
    _check(
        "Conv",
        {"x": x},
        {"w": w},
        ["x", "w"],
        ["x", "w"],
        auto_pad=auto_pad,
        strides=[stride, stride],
    )


@FD_SETTINGS
@given(
    st.sampled_from([1, 2]),
    st.integers(1, 3),
    st.integers(1, 2),
    st.integers(0, 1),
    st.integers(0, 100),
)
def test_conv_transpose(group: int, stride: int, dilation: int, pad: int, seed: int) -> None:
    rng = _rng(seed)
    x = rng.standard_normal((2, 2 * group, 4, 3))
    w = rng.standard_normal((2 * group, 2, 3, 2))
    b = rng.standard_normal(2 * group)
    _check(
        "ConvTranspose",
        {"x": x},
        {"w": w, "b": b},
        ["x", "w", "b"],
        ["x", "w", "b"],
        group=group,
        strides=[stride, stride],
        dilations=[dilation, 1],
        pads=[pad, 0, 0, pad],
        output_padding=[stride - 1, 0],
    )


@pytest.mark.parametrize("trans_a", [0, 1])
@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("c_shape", [(5,), (1, 5), (3, 5)])
def test_gemm(trans_a: int, trans_b: int, c_shape) -> None:
    rng = _rng()
    a = rng.standard_normal((4, 3) if trans_a else (3, 4))
    b = rng.standard_normal((5, 4) if trans_b else (4, 5))
    c = rng.standard_normal(c_shape)
    _check(
        "Gemm",
        {"a": a},
        {"b": b, "c": c},
        ["a", "b", "c"],
        ["a", "b", "c"],
        transA=trans_a,
        transB=trans_b,
        alpha=0.7,
        beta=1.3,
    )


@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [
        ((3, 4), (4, 5)),
        ((2, 3, 4), (4, 5)),
        ((2, 3, 4), (2, 4, 5)),
        ((2, 1, 3, 4), (3, 4, 2)),
        ((4,), (4, 5)),
        ((2, 3, 4), (4,)),
        ((4,), (4,)),
    ],
)
def test_matmul_broadcasting(a_shape, b_shape) -> None:
    rng = _rng()
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    _check("MatMul", {"a": a}, {"b": b}, ["a", "b"], ["a", "b"])


BROADCAST_SHAPES = [
    ((2, 3, 4), (2, 3, 4)),
    ((2, 3, 4), (4,)),
    ((2, 3, 4), (3, 1)),
    ((1, 3, 1), (2, 1, 4)),
]


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize(("a_shape", "b_shape"), BROADCAST_SHAPES)
def test_binary_broadcast(op: str, a_shape, b_shape) -> None:
    rng = _rng()
    a = rng.standard_normal(a_shape)
    b = rng.standard_normal(b_shape)
    if op == "Div":
        b = np.sign(b) * (np.abs(b) + 0.5)
    _check(op, {"a": a}, {"b": b}, ["a", "b"], ["a", "b"])


@pytest.mark.parametrize(
    ("c_shape", "x_shape", "y_shape"),
    [((3, 4), (3, 4), (3, 4)), ((1, 4), (3, 4), (1,)), ((3, 1), (1, 4), (3, 4))],
)
def test_where(c_shape, x_shape, y_shape) -> None:
    rng = _rng()
    condition = rng.random(c_shape) < 0.5
    x, y = rng.standard_normal(x_shape), rng.standard_normal(y_shape)
    _check("Where", {"x": x, "y": y}, {"c": condition}, ["c", "x", "y"], ["x", "y"])


UNARY = {
    "Relu": {},
    "LeakyRelu": {"alpha": 0.1},
    "Sigmoid": {},
    "Tanh": {},
    "HardSigmoid": {"alpha": 0.3, "beta": 0.4},
    "HardSwish": {},
    "Erf": {},
    "Exp": {},
    "Neg": {},
    "Abs": {},
    "Identity": {},
}


@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary(op: str) -> None:
    x = _rng().standard_normal((3, 4, 5)) * 3
    _check(op, {"x": x}, {}, ["x"], ["x"], **UNARY[op])


@pytest.mark.parametrize("op", ["Log", "Sqrt", "Reciprocal"])
def test_unary_positive(op: str) -> None:
    x = np.abs(_rng().standard_normal((3, 4))) + 0.5
    _check(op, {"x": x}, {}, ["x"], ["x"])


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(approximate: str) -> None:
    x = _rng().standard_normal((3, 5)) * 2
    _check("Gelu", {"x": x}, {}, ["x"], ["x"], opset=20, approximate=approximate)


@pytest.mark.parametrize("opset", [11, 18])
def test_clip(opset: int) -> None:
    x = _rng().standard_normal((3, 4, 5)) * 4
    bounds = {"lo": np.array(-1.0), "hi": np.array(2.0)}
    _check("Clip", {"x": x}, bounds, ["x", "lo", "hi"], ["x"], opset=opset)


def test_pow_constant_exponent() -> None:
    x = np.abs(_rng().standard_normal((3, 4))) + 0.5
    _check("Pow", {"x": x}, {"p": np.array(2.5)}, ["x", "p"], ["x"])


def test_sum() -> None:
    rng = _rng()
    _check(
        "Sum",
        {"a": rng.standard_normal((2, 3)), "b": rng.standard_normal((3,))},
        {},
        ["a", "b"],
        ["a", "b"],
    )


@FD_SETTINGS
@given(
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(0, 1),
    st.integers(0, 1),
    st.integers(0, 100),
)
def test_max_pool(kernel: int, stride: int, pad: int, ceil: int, seed: int) -> None:
    pad = min(pad, kernel // 2)
    # Windows that ceil_mode starts inside the end pad: ONNX shape inference and ONNX Runtime
    # disagree on the output size, so the test's declared shapes would be wrong.
    assume(not (ceil and any((size + 2 * pad - kernel) % stride for size in (7, 6))))
    x = _rng(seed).standard_normal((2, 3, 7, 6))
    _check(
        "MaxPool",
        {"x": x},
        {},
        ["x"],
        ["x"],
        kernel_shape=[kernel, kernel],
        strides=[stride, stride],
        pads=[pad] * 4,
        ceil_mode=ceil,
        engine="ort",
    )


@FD_SETTINGS
@given(
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(0, 1),
    st.integers(0, 1),
    st.integers(0, 1),
    st.integers(0, 100),
)
def test_average_pool(kernel: int, stride: int, pad: int, include: int, ceil: int, seed: int):
    pad = min(pad, kernel // 2)
    x = _rng(seed).standard_normal((2, 3, 7, 6))
    adds_windows = ceil and any((size + 2 * pad - kernel) % stride for size in (7, 6))
    context = pytest.raises(InputError, match="ceil_mode") if adds_windows else nullcontext()
    with context:
        _check(
            "AveragePool",
            {"x": x},
            {},
            ["x"],
            ["x"],
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=[pad] * 4,
            count_include_pad=include,
            ceil_mode=ceil,
        )


def test_global_average_pool() -> None:
    _check("GlobalAveragePool", {"x": _rng().standard_normal((2, 3, 4, 5))}, {}, ["x"], ["x"])


def test_reshape_flatten_squeeze_unsqueeze() -> None:
    x = _rng().standard_normal((2, 3, 1, 4))
    _check("Reshape", {"x": x}, {"s": np.array([2, -1])}, ["x", "s"], ["x"])
    _check("Flatten", {"x": x}, {}, ["x"], ["x"], axis=2)
    _check("Squeeze", {"x": x}, {"a": np.array([2])}, ["x", "a"], ["x"])
    _check("Unsqueeze", {"x": x}, {"a": np.array([0, 3])}, ["x", "a"], ["x"])


@pytest.mark.parametrize(
    ("x_shape", "shape"), [((1, 1, 4), (3, 2, 4)), ((3, 1), (2, 3, 5)), ((2, 3), (2, 3))]
)
def test_expand(x_shape, shape) -> None:
    x = _rng().standard_normal(x_shape)
    _check("Expand", {"x": x}, {"s": np.array(shape)}, ["x", "s"], ["x"])


def test_transpose() -> None:
    x = _rng().standard_normal((2, 3, 4))
    _check("Transpose", {"x": x}, {}, ["x"], ["x"], perm=[2, 0, 1])
    _check("Transpose", {"x": x}, {}, ["x"], ["x"])


def test_concat_and_split() -> None:
    rng = _rng()
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 2, 4))
    _check("Concat", {"a": a, "b": b}, {}, ["a", "b"], ["a", "b"], axis=-2)
    x = rng.standard_normal((2, 5, 4))
    _check("Split", {"x": x}, {"s": np.array([2, 3])}, ["x", "s"], ["x"], outputs=2, axis=1)


def test_split_with_unused_piece() -> None:
    x = _rng().standard_normal((2, 5, 4))
    model = one_node_model(
        "Split", {"x": x}, {"s": np.array([2, 3])}, ["x", "s"], outputs=2, axis=1
    )
    check_gradients(model, {"x": x}, ["x"], outputs=["y1"])


@pytest.mark.parametrize(
    ("starts", "ends", "axes"),
    [([1], [3], [1]), ([0, -3], [2, 100], [0, 2]), ([-2], [-1], [-1])],
)
def test_slice(starts, ends, axes) -> None:
    x = _rng().standard_normal((3, 4, 5))
    constants = {"st": np.array(starts), "en": np.array(ends), "ax": np.array(axes)}
    _check("Slice", {"x": x}, constants, ["x", "st", "en", "ax"], ["x"])


def test_pad() -> None:
    x = _rng().standard_normal((2, 3, 4))
    _check("Pad", {"x": x}, {"p": np.array([0, 1, 2, 0, 0, 1])}, ["x", "p"], ["x"])


@pytest.mark.parametrize("indices", [np.array(1), np.array([2, 0, 2]), np.array([[0, 1], [3, 3]])])
def test_gather(indices) -> None:
    x = _rng().standard_normal((2, 4, 3))
    _check("Gather", {"x": x}, {"i": indices}, ["x", "i"], ["x"], axis=1)


@pytest.mark.parametrize("indices", [np.array(0), np.array(-1), np.array([3, -4, 1])])
def test_gather_along_an_axis_known_only_at_run_time(indices) -> None:
    """A class token taken from a [batch, tokens, hidden] tensor whose token count is dynamic."""
    import onnx

    x = _rng().standard_normal((2, 4, 3))
    model = one_node_model("Gather", {"x": x}, {"i": indices}, ["x", "i"], axis=1)
    del model.graph.value_info[:]
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "tokens"
    model.graph.output[0].type.tensor_type.ClearField("shape")
    model = onnx.shape_inference.infer_shapes(model)
    check_gradients(model, {"x": x}, ["x"])


@pytest.mark.parametrize("op", ["ReduceMean", "ReduceSum"])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("opset", [11, 18])
def test_reductions(op: str, keepdims: int, opset: int) -> None:
    x = _rng().standard_normal((2, 3, 4))
    axes = [1, -1]
    if opset >= (13 if op == "ReduceSum" else 18):
        _check(
            op, {"x": x}, {"a": np.array(axes)}, ["x", "a"], ["x"], opset=opset, keepdims=keepdims
        )
    else:
        _check(op, {"x": x}, {}, ["x"], ["x"], opset=opset, keepdims=keepdims, axes=axes)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize(("opset", "axis"), [(11, 1), (13, 1), (13, -1)])
def test_softmax(op: str, opset: int, axis: int) -> None:
    x = _rng().standard_normal((2, 3, 4))
    _check(op, {"x": x}, {}, ["x"], ["x"], opset=opset, axis=axis)


@pytest.mark.parametrize("axis", [-1, 1])
def test_layer_normalization(axis: int) -> None:
    rng = _rng()
    x = rng.standard_normal((2, 3, 4))
    shape = x.shape[axis % 3 :]
    constants = {"g": rng.standard_normal(shape), "b": rng.standard_normal(shape)}
    _check("LayerNormalization", {"x": x}, constants, ["x", "g", "b"], ["x", "g", "b"], axis=axis)


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_local_response_normalization(size: int) -> None:
    """Against finite differences of a numpy LRN (tests/autodiff/fd.py), itself checked
    against ONNX Runtime's kernel in float32 (odd sizes: the only ones ORT runs)."""
    x = _rng(size).standard_normal((2, 5, 3, 2))
    attrs = dict(size=size, alpha=0.7, beta=0.75, bias=1.5)
    _check("LRN", {"x": x}, {}, ["x"], ["x"], **attrs)
    if size % 2 == 0:  # ONNX Runtime's kernel takes odd sizes only
        return
    single = {"x": x.astype(np.float32)}
    model = one_node_model("LRN", single, {}, ["x"], opset=18, **attrs)
    np.testing.assert_allclose(
        evaluator(model).run(None, single)[0],
        evaluator(model, "ort").run(None, single)[0],
        rtol=1e-5,
    )


def test_batch_normalization() -> None:
    rng = _rng()
    x = rng.standard_normal((2, 3, 4, 5))
    constants = {
        "g": rng.standard_normal(3),
        "b": rng.standard_normal(3),
        "m": rng.standard_normal(3),
        "v": np.abs(rng.standard_normal(3)) + 0.5,
    }
    _check("BatchNormalization", {"x": x}, constants, ["x", "g", "b", "m", "v"], ["x", "g", "b"])


@pytest.mark.parametrize(
    ("transform", "nearest", "scales"),
    [
        ("asymmetric", "floor", [1.0, 1.0, 2.0, 2.0]),
        ("half_pixel", "round_prefer_floor", [1.0, 1.0, 1.5, 3.0]),
        ("align_corners", "round_prefer_ceil", [1.0, 1.0, 0.5, 2.0]),
        ("pytorch_half_pixel", "ceil", [1.0, 1.0, 2.5, 1.0]),
    ],
)
def test_resize_nearest(transform: str, nearest: str, scales) -> None:
    x = _rng().standard_normal((1, 2, 4, 3))
    constants = {"roi": np.array([], dtype=np.float32), "sc": np.array(scales, dtype=np.float32)}
    _check(
        "Resize",
        {"x": x},
        constants,
        ["x", "roi", "sc"],
        ["x"],
        mode="nearest",
        coordinate_transformation_mode=transform,
        nearest_mode=nearest,
    )


@pytest.mark.parametrize("transform", ["half_pixel", "asymmetric"])
def test_resize_linear(transform: str) -> None:
    x = _rng().standard_normal((1, 2, 4, 3))
    constants = {
        "roi": np.array([], dtype=np.float32),
        "sc": np.array([1.0, 1.0, 2.0, 1.5], dtype=np.float32),
    }
    _check(
        "Resize",
        {"x": x},
        constants,
        ["x", "roi", "sc"],
        ["x"],
        mode="linear",
        coordinate_transformation_mode=transform,
    )


@pytest.mark.parametrize("transform", ["align_corners", "half_pixel", "pytorch_half_pixel"])
def test_resize_linear_matrix_matches_onnx_runtime(transform: str) -> None:
    """The rule's ∂X = g·P uses P, the forward's interpolation matrix: compare P with ONNX
    Runtime's forward on unit inputs (the reference evaluator's align_corners weights are off,
    and ONNX Runtime has no float64 Resize)."""
    import onnxruntime as ort

    size_in, scale = 3, 1.5
    model = one_node_model(
        "Resize",
        {"x": np.zeros((1, 1, 1, size_in), dtype=np.float32)},
        {
            "roi": np.array([], dtype=np.float32),
            "sc": np.array([1, 1, 1, scale], dtype=np.float32),
        },
        ["x", "roi", "sc"],
        mode="linear",
        coordinate_transformation_mode=transform,
    )
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    columns = [
        session.run(None, {"x": unit.reshape(1, 1, 1, -1)})[0].ravel()
        for unit in np.eye(size_in, dtype=np.float32)
    ]
    size_out = int(size_in * scale)
    expected = linear_matrix(source_coordinates(size_out, size_in, scale, transform), size_in)
    np.testing.assert_allclose(np.stack(columns, axis=1), expected, atol=1e-6)


def test_every_op_the_brief_names_has_a_rule() -> None:
    named = {
        "Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "Clip", "Sigmoid",
        "HardSigmoid", "HardSwish", "Tanh", "Gelu", "Erf", "MaxPool", "AveragePool",
        "GlobalAveragePool", "Reshape", "Transpose", "Flatten", "Concat", "Split", "Slice",
        "Squeeze", "Unsqueeze", "ReduceMean", "Softmax", "LayerNormalization", "Resize",
        "BatchNormalization",
    }  # fmt: skip
    assert named <= set(registered_vjp_ops())


@pytest.mark.parametrize(("axis", "p"), [(1, 2), (-1, 2), (1, 1), (2, 1)])
def test_lp_normalization(axis: int, p: int) -> None:
    """Against finite differences of a numpy LpNormalization (tests/autodiff/fd.py: the
    reference evaluator's p = 1 kernel sums x, not |x|), itself checked against ONNX Runtime."""
    x = _rng(axis + 10 * p).standard_normal((2, 3, 4))
    _check("LpNormalization", {"x": x}, {}, ["x"], ["x"], axis=axis, p=p)
    _same_as_onnxruntime("LpNormalization", x, axis=axis, p=p)


def _same_as_onnxruntime(op_type: str, x: np.ndarray, opset: int = 18, **attrs) -> None:
    single = {"x": x.astype(np.float32)}
    model = one_node_model(op_type, single, {}, ["x"], opset=opset, **attrs)
    np.testing.assert_allclose(
        evaluator(model).run(None, single)[0],
        evaluator(model, "ort").run(None, single)[0],
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("axes", [[0, 2, 3], [1, 2, 3], [2, 3]])
def test_mean_variance_normalization(axes: list[int]) -> None:
    """Against finite differences of a numpy MeanVarianceNormalization (tests/autodiff/fd.py),
    itself checked against ONNX Runtime. In float64 onnx cannot infer the op's function body
    (its ε constant is float32), so the float64 gradient model skips the strict check; the
    float32 gradient model passes it and ONNX Runtime gives the float64 gradient."""
    x = _rng(len(axes)).standard_normal((2, 3, 4, 2))
    _check("MeanVarianceNormalization", {"x": x}, {}, ["x"], ["x"], full_check=False, axes=axes)
    _same_as_onnxruntime("MeanVarianceNormalization", x, axes=axes)
    from onnxprune.autodiff.graph import build_gradient_model, gradient_name
    from onnxprune.autodiff.losses import mean_squared_error, target_name

    grads = []
    for dtype in (np.float64, np.float32):
        feeds = {"x": x.astype(dtype)}
        model = one_node_model("MeanVarianceNormalization", feeds, {}, ["x"], axes=axes)
        loss = mean_squared_error(model, ["y0"])
        grad_model = build_gradient_model(model, loss, ["x"])
        if dtype == np.float32:
            onnx.checker.check_model(grad_model, full_check=True)
        feeds[target_name("y0")] = np.full(x.shape, 0.5, dtype)
        engine = "reference" if dtype == np.float64 else "ort"
        grads.append(evaluator(grad_model, engine).run([gradient_name("x")], feeds)[0])
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("axis", [1, -1])
def test_rms_normalization(axis: int) -> None:
    rng = _rng(abs(axis))
    x = rng.standard_normal((2, 3, 4))
    scale = rng.standard_normal(x.shape[axis % 3 :])
    _check("RMSNormalization", {"x": x}, {"scale": scale}, ["x", "scale"], ["x", "scale"],
           opset=23, axis=axis)  # fmt: skip


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space(mode) -> None:
    x = _rng().standard_normal((2, 12, 3, 2))
    _check("DepthToSpace", {"x": x}, {}, ["x"], ["x"], blocksize=2, mode=mode)


def test_space_to_depth() -> None:
    x = _rng().standard_normal((2, 3, 4, 6))
    _check("SpaceToDepth", {"x": x}, {}, ["x"], ["x"], blocksize=2)


@pytest.mark.parametrize("engine", ["reference", "onnxruntime"])
def test_broadcast_over_a_dim_inference_cannot_see(engine) -> None:
    """m = Reshape(b, [0, 4, -1, 3]) is [N, 4, 1, 3] at run time, but shape inference leaves
    its third dim unknown: the Add's gradient for m must still be summed over that axis (a
    pruned nn.MultiheadAttention padding mask added to the scores)."""
    from onnx import TensorProto, helper

    from onnxprune.graph.shapes import infer_shapes
    from tests.autodiff.fd import check_gradients

    nodes = [
        helper.make_node("Reshape", ["b", "target"], ["m"], name="view"),
        helper.make_node("Add", ["a", "m"], ["y"], name="add"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("a", TensorProto.DOUBLE, ["N", 4, 3, 3]),
            helper.make_tensor_value_info("b", TensorProto.DOUBLE, ["N", "K"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)],
        [helper.make_tensor("target", TensorProto.INT64, [4], [0, 4, -1, 3])],
    )
    model = infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    dims = {v.name: v for v in model.graph.value_info}
    assert "m" not in dims or not all(
        d.HasField("dim_value") for d in dims["m"].type.tensor_type.shape.dim[2:3]
    )
    rng = _rng()
    feeds = {"a": rng.standard_normal((2, 4, 3, 3)), "b": rng.standard_normal((2, 12))}
    check_gradients(model, feeds, ["a", "b"], engine=engine)


def _torch_normalization(op_type: str, x, attrs: dict):
    import torch

    if op_type == "LpNormalization":
        norm = (x.abs() ** attrs["p"]).sum(dim=attrs["axis"], keepdim=True) ** (1 / attrs["p"])
        return x / norm
    if op_type == "MeanVarianceNormalization":
        axes = tuple(attrs["axes"])
        mean = x.mean(dim=axes, keepdim=True)
        deviation = torch.sqrt((x * x).mean(dim=axes, keepdim=True) - mean * mean)
        return (x - mean) / (deviation + 1e-9)
    axes = tuple(range(attrs["axis"] % x.dim(), x.dim()))
    return torch.nn.functional.rms_norm(x, x.shape[axes[0] :], eps=1e-5)


@pytest.mark.parametrize(
    ("op_type", "opset", "attrs"),
    [
        ("LpNormalization", 18, {"axis": 1, "p": 2}),
        ("LpNormalization", 18, {"axis": -1, "p": 1}),
        ("MeanVarianceNormalization", 18, {"axes": [0, 2, 3]}),
        ("RMSNormalization", 23, {"axis": 1}),
    ],
)
def test_normalization_gradients_match_torch(op_type, opset, attrs) -> None:
    """∂L/∂x of the gradient model equals torch.autograd's for L = mean((y − ½)²)."""
    torch = pytest.importorskip("torch")
    from onnxprune.autodiff.graph import build_gradient_model, gradient_name
    from onnxprune.autodiff.losses import mean_squared_error, target_name

    x = _rng(7).standard_normal((2, 3, 4, 2))
    constants = {"scale": np.ones(x.shape[1:])} if op_type == "RMSNormalization" else {}
    order = ["x", *constants]
    model = one_node_model(op_type, {"x": x}, constants, order, opset=opset, **attrs)
    grad_model = build_gradient_model(model, mean_squared_error(model, ["y0"]), ["x"])
    feeds = {"x": x, target_name("y0"): np.full(x.shape, 0.5)}
    (ours,) = evaluator(grad_model).run([gradient_name("x")], feeds)
    tensor = torch.tensor(x, requires_grad=True)
    ((_torch_normalization(op_type, tensor, attrs) - 0.5) ** 2).mean().backward()
    np.testing.assert_allclose(ours, tensor.grad.numpy(), rtol=1e-6, atol=1e-9)
