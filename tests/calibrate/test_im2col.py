"""im2col rows against brute-force loops and against ONNX Runtime's own convolution."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprune.calibrate.im2col import ConvGeometry, conv_rows, matrix_rows, sample_positions
from tests.calibrate.tiny import run


def _brute_rows(x, kernel, strides, dilations, begins, ends):
    n, c, height, width = x.shape
    padded = np.pad(x, [(0, 0), (0, 0), (begins[0], ends[0]), (begins[1], ends[1])])
    out_h = (height + begins[0] + ends[0] - (kernel[0] - 1) * dilations[0] - 1) // strides[0] + 1
    out_w = (width + begins[1] + ends[1] - (kernel[1] - 1) * dilations[1] - 1) // strides[1] + 1
    rows = []
    for sample in range(n):
        for i in range(out_h):
            for j in range(out_w):
                patch = np.zeros((c, kernel[0], kernel[1]))
                for ki in range(kernel[0]):
                    for kj in range(kernel[1]):
                        patch[:, ki, kj] = padded[
                            sample,
                            :,
                            i * strides[0] + ki * dilations[0],
                            j * strides[1] + kj * dilations[1],
                        ]
                rows.append(patch.reshape(-1))
    return np.array(rows), (out_h, out_w)


@pytest.mark.parametrize(
    ("kernel", "strides", "dilations", "pads"),
    [((3, 3), (1, 1), (1, 1), (1, 1, 1, 1)), ((2, 3), (2, 1), (1, 2), (0, 2, 1, 0))],
)
def test_conv_rows_and_gram_equal_brute_force(kernel, strides, dilations, pads):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 6, 7))
    geometry = ConvGeometry(kernel, strides, dilations, pads)
    brute, out = _brute_rows(x, kernel, strides, dilations, pads[:2], pads[2:])
    assert geometry.output_spatial((6, 7)) == out
    chosen = sample_positions(2, out[0] * out[1], None, rng)
    rows = np.concatenate(list(conv_rows(x, geometry, chosen)))
    np.testing.assert_array_equal(rows, brute)
    np.testing.assert_allclose(rows.T @ rows, brute.T @ brute, rtol=1e-12)


def test_sampled_rows_are_the_chosen_positions():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 2, 5, 5))
    geometry = ConvGeometry((3, 3), (1, 1), (1, 1), (1, 1, 1, 1))
    chosen = sample_positions(3, 25, 4, rng)
    assert chosen.shape == (3, 4)
    assert all(len(set(row)) == 4 for row in chosen)
    brute, _ = _brute_rows(x, (3, 3), (1, 1), (1, 1), (1, 1), (1, 1))
    expected = brute.reshape(3, 25, -1)[np.arange(3)[:, None], chosen].reshape(12, -1)
    np.testing.assert_array_equal(np.concatenate(list(conv_rows(x, geometry, chosen))), expected)


def test_rows_times_weight_is_onnxruntime_conv_with_same_upper_padding():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(4, 3, 3, 2)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], strides=[2, 1], auto_pad="SAME_UPPER")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 7, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4, 4, 6])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    x = rng.normal(size=(2, 3, 7, 6)).astype(np.float32)
    y = run(model, x)
    geometry = ConvGeometry.from_attrs({"strides": [2, 1], "auto_pad": b"SAME_UPPER"}, (3, 2))
    assert geometry.output_spatial((7, 6)) == y.shape[2:]
    positions = int(np.prod(y.shape[2:]))
    chosen = sample_positions(2, positions, None, rng)
    rows = np.concatenate(list(conv_rows(x, geometry, chosen)))
    predicted = rows @ w.reshape(4, -1).T.astype(np.float64)
    expected = y.reshape(2, 4, -1).transpose(0, 2, 1).reshape(-1, 4)
    np.testing.assert_allclose(predicted, expected, atol=1e-4)


def test_matrix_rows_of_token_input():
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    chosen = np.array([[2, 0], [1, 1]])
    rows = np.concatenate(list(matrix_rows(x, chosen)))
    np.testing.assert_array_equal(rows, np.stack([x[0, 2], x[0, 0], x[1, 1], x[1, 1]]))
