"""count_macs against hand counts: small hand-built graphs and full-size VGG-16 / ResNet-50."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprune.errors import InputError
from onnxprune.io import load_model
from onnxprune.stats import count_macs
from onnxprune.stats.macs import matmul_macs
from tests.io.tiny_models import make_model, weight


def value(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def test_grouped_conv():
    """Cout=16, Cin=8, group=2, 3×3, pad 1 on 16×16: 16·16·16 outputs × (8/2)·3·3."""
    model = make_model(
        [helper.make_node("Conv", ["x", "w"], ["y"], group=2, pads=[1, 1, 1, 1], name="conv")],
        [value("x", [1, 8, 16, 16])],
        [value("y", [1, 16, 16, 16])],
        [weight("w", (16, 4, 3, 3))],
    )
    report = count_macs(model)
    assert report.per_node == {"conv": 16 * 16 * 16 * 4 * 9}
    assert report.total == 147_456
    assert report.nodes[0].output_shape == [1, 16, 16, 16]
    assert report.nodes[0].op_type == "Conv"


def test_depthwise_strided_conv_and_dynamic_batch():
    """Depthwise 3×3 stride 2 on 8×10×10 (no pad): 8·4·4 outputs × 1·9, per sample."""
    model = make_model(
        [helper.make_node("Conv", ["x", "w"], ["y"], group=8, strides=[2, 2])],
        [value("x", ["batch", 8, 10, 10])],
        [value("y", ["batch", 8, 4, 4])],
        [weight("w", (8, 1, 3, 3))],
    )
    assert count_macs(model).total == 8 * 4 * 4 * 9
    report = count_macs(model, {"x": [5, 8, 10, 10]})
    assert report.total == 5 * 8 * 4 * 4 * 9
    assert report.input_shapes == {"x": [5, 8, 10, 10]}
    assert list(report.per_node) == ["Conv_0"]


def test_conv_transpose_with_groups():
    """Cin=4, Cout=6, group=2, 3×3 stride 2 on 5×5: 4·5·5 inputs × (6/2)·3·3."""
    model = make_model(
        [helper.make_node("ConvTranspose", ["x", "w"], ["y"], group=2, strides=[2, 2])],
        [value("x", [1, 4, 5, 5])],
        [value("y", [1, 6, 11, 11])],
        [weight("w", (4, 3, 3, 3))],
    )
    report = count_macs(model)
    assert report.total == 4 * 25 * 3 * 9 == 2700
    assert report.nodes[0].output_shape == [1, 6, 11, 11]


@pytest.mark.parametrize(
    ("trans_a", "a_shape", "trans_b", "b_shape"),
    [(0, [3, 20], 1, [7, 20]), (1, [20, 3], 0, [20, 7]), (1, [20, 3], 1, [7, 20])],
)
def test_gemm_transposes(trans_a, a_shape, trans_b, b_shape):
    """M=3, N=7, K=20 in every layout: 3·7·20."""
    model = make_model(
        [helper.make_node("Gemm", ["a", "b", "c"], ["y"], transA=trans_a, transB=trans_b)],
        [value("a", a_shape)],
        [value("y", [3, 7])],
        [weight("b", b_shape), weight("c", (7,))],
    )
    assert count_macs(model).total == 420


def test_batched_matmul_of_two_activations_with_broadcast():
    """Attention-like: (2,1,5,6) @ (3,6,7) broadcasts to batch (2,3): 6 × 5·7·6."""
    model = make_model(
        [helper.make_node("MatMul", ["q", "k"], ["y"], name="scores")],
        [value("q", [2, 1, 5, 6]), value("k", [3, 6, 7])],
        [value("y", [2, 3, 5, 7])],
    )
    report = count_macs(model)
    assert report.per_node == {"scores": 6 * 5 * 7 * 6}
    assert report.nodes[0].output_shape == [2, 3, 5, 7]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([6], [6, 7], 7 * 6),
        ([5, 6], [6], 5 * 6),
        ([6], [6], 6),
        ([2, 4, 5, 6], [6, 3], 2 * 4 * 5 * 3 * 6),
        ([4, 1, 5, 6], [1, 3, 6, 2], 4 * 3 * 5 * 2 * 6),
    ],
)
def test_matmul_formula(a, b, expected):
    assert matmul_macs(a, b) == expected


def test_shapes_through_a_shape_computation():
    """x (batch,4,3,3) -> Reshape(Shape(x)[0:1] ++ [-1]) -> MatMul(36×10): needs data
    propagation to know the Reshape output is (batch, 36); at batch 3: 3·36·10."""
    model = make_model(
        [
            helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node("Slice", ["s", "zero", "one"], ["n"]),
            helper.make_node("Concat", ["n", "minus_one"], ["target"], axis=0),
            helper.make_node("Reshape", ["x", "target"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["y"], name="fc"),
        ],
        [value("x", ["batch", 4, 3, 3])],
        [value("y", ["batch", 10])],
        [
            numpy_helper.from_array(np.array([0], np.int64), "zero"),
            numpy_helper.from_array(np.array([1], np.int64), "one"),
            numpy_helper.from_array(np.array([-1], np.int64), "minus_one"),
            weight("w", (36, 10)),
        ],
    )
    report = count_macs(model, {"x": [3, 4, 3, 3]})
    assert report.per_node == {"fc": 3 * 36 * 10}
    assert report.unresolved == []


def test_unnamed_and_duplicate_node_names_and_other_ops():
    model = make_model(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"], name="fc"),
            helper.make_node("Relu", ["h"], ["r"], name="fc"),
            helper.make_node("MatMul", ["r", "w2"], ["y"]),
        ],
        [value("x", [2, 4])],
        [value("y", [2, 5])],
        [weight("w", (4, 3)), weight("w2", (3, 5))],
    )
    report = count_macs(model)
    assert report.per_node == {"fc": 2 * 4 * 3, "MatMul_2": 2 * 3 * 5}
    assert report.total == 54


def test_unknown_shapes_are_reported_not_guessed():
    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [value("y", None)],
        [weight("w", (4, 3))],
    )
    report = count_macs(model)
    assert report.total == 0
    assert report.unresolved == ["fc"]
    assert any("unknown shapes" in note for note in report.notes)


def test_non_batch_dynamic_dimension_is_noted():
    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [value("x", ["batch", "tokens", 4])],
        [value("y", ["batch", "tokens", 3])],
        [weight("w", (4, 3))],
    )
    report = count_macs(model)
    assert report.total == 12
    assert any("tokens" in note for note in report.notes)
    assert count_macs(model, {"x": [1, 10, 4]}).total == 120


def test_unknown_input_name_is_an_input_error():
    model = make_model(
        [helper.make_node("Relu", ["x"], ["y"])], [value("x", [1, 2])], [value("y", [1, 2])]
    )
    with pytest.raises(InputError, match="unknown input"):
        count_macs(model, {"image": [1, 2]})


# Hand counts (conv + linear layers only), batch 1 at 224×224.
VGG16_MACS = 15_470_264_320
RESNET50_MACS = 4_089_184_256


@pytest.mark.slow
@pytest.mark.parametrize(("name", "expected"), [("vgg16", VGG16_MACS), ("resnet50", RESNET50_MACS)])
def test_full_size_reference_models(zoo_onnx, name, expected):
    path = zoo_onnx(name, exporter="torchscript", width=1.0, size=224, depth=1.0)
    report = count_macs(load_model(path))
    assert report.unresolved == []
    assert abs(report.total - expected) <= 0.01 * expected


def _encoder_macs(batch: int, length: int, hidden: int, heads: int, layers: int) -> int:
    """Hand count of the zoo BERT encoder: per layer q, k, v and output projections
    (4·B·L·H²), the feed-forward pair (2·B·L·H·4H), scores and context (2·B·heads·L²·d);
    the pooler B·H²."""
    head_dim = hidden // heads
    per_layer = (
        4 * batch * length * hidden * hidden
        + 2 * batch * length * hidden * 4 * hidden
        + 2 * batch * heads * length * length * head_dim
    )
    return layers * per_layer + batch * hidden * hidden


@pytest.mark.parametrize(
    ("name", "exporter"), [("bert", "torchscript"), ("bert", "dynamo"), ("bert_sdpa", "dynamo")]
)
def test_text_encoder_macs_match_hand_count_through_measured_shapes(zoo_onnx, name, exporter):
    """Static inference loses every shape after BERT's position-id slice; the measured shapes
    give the exact count, at the given shape and (with a note) without one."""
    model = load_model(zoo_onnx(name, exporter))
    shapes = {key: [2, 16] for key in ("input_ids", "attention_mask", "token_type_ids")}
    report = count_macs(model, shapes)
    expected = _encoder_macs(batch=2, length=16, hidden=96, heads=12, layers=2)
    assert abs(report.total - expected) <= 0.01 * expected
    assert report.unresolved == []
    default = count_macs(model)
    assert default.total == _encoder_macs(batch=1, length=1, hidden=96, heads=12, layers=2)
    assert any("measured by running the model" in note for note in default.notes)


def test_einsum_counts_one_product_per_index_of_all_its_letters():
    """Attention scores b=2, t=5, s=6, h=3, d=4: every (b, h, t, s) output sums d products
    (2·3·5·6·4); a dense layer 'btd,df->btf' with a broadcast ellipsis-free batch; a
    one-operand einsum (a transpose) counts 0; three operands are counted pairwise from the
    left (btd,df -> btf: 2·5·4·7, then btf,fg -> btg: 2·5·7·3)."""
    nodes = [
        helper.make_node("Einsum", ["q", "k"], ["s"], equation="bthd,bshd->bhts", name="scores"),
        helper.make_node("Einsum", ["x", "w"], ["y"], equation="...d,df->...f", name="dense"),
        helper.make_node("Einsum", ["x"], ["xt"], equation="btd->dtb", name="transpose"),
        helper.make_node("Einsum", ["x", "w", "v"], ["z"], equation="btd,df,fg->btg", name="chain"),
    ]
    model = make_model(
        nodes,
        [
            value("q", [2, 5, 3, 4]),
            value("k", [2, 6, 3, 4]),
            value("x", [2, 5, 4]),
            value("v", [7, 3]),
        ],
        [value("s", None), value("y", None), value("xt", None), value("z", None)],
        [weight("w", (4, 7))],
    )
    report = count_macs(model)
    assert report.per_node == {
        "scores": 2 * 3 * 5 * 6 * 4,
        "dense": 2 * 5 * 4 * 7,
        "transpose": 0,
        "chain": 2 * 5 * 4 * 7 + 2 * 5 * 7 * 3,
    }
    assert report.unresolved == []
