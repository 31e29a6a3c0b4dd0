"""expand_runtime_fusions: ONNX Runtime's fused CPU ops become the standard ops they compute.

Every case runs the fused node in ONNX Runtime itself (its contrib kernels) and the expansion
after ``preprocess``, on the same inputs: the runtime is the reference for each activation's
parameter layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from onnx import helper

from onnxprune.cli import cli
from onnxprune.passes import preprocess
from onnxprune.stats import count_macs
from tests.passes.helpers import (
    check_preprocess,
    const,
    group_summary,
    model,
    op_types,
    transformer_optimized,
)

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"

MS = "com.microsoft"
X = [2, 4, 6, 6]
RNG = np.random.default_rng(0)
W = const("w", RNG.standard_normal((5, 4, 3, 3)) * 0.5)
B = const("b", RNG.standard_normal(5))
CONV = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [1, 1]}


def _with_contrib(proto):
    proto.opset_import.append(helper.make_opsetid(MS, 1))
    return proto


def _conv_model(inputs=("x", "w", "b"), extra=(), opset=17, **attrs):
    node = helper.make_node("FusedConv", list(inputs), ["y"], domain=MS, **CONV, **attrs)
    graph_inputs = [("x", ["N", 4, 6, 6]), *extra]
    outputs = [("y", ["N", 5, 6, 6])]
    return _with_contrib(model([node], graph_inputs, outputs, [W, B], opset, check=False))


@pytest.mark.parametrize(
    ("activation", "params", "expected"),
    [
        ("Relu", None, ["Conv", "Relu"]),
        ("Sigmoid", None, ["Conv", "Sigmoid"]),
        ("Tanh", None, ["Conv", "Tanh"]),
        ("LeakyRelu", [0.2], ["Conv", "LeakyRelu"]),
        ("HardSigmoid", [0.3, 0.4], ["Conv", "HardSigmoid"]),
        ("Clip", [-0.5, 2.0], ["Conv", "Clip"]),
        (None, None, ["Conv"]),
    ],
)
def test_fused_conv_activations(activation, params, expected):
    attrs = {} if activation is None else {"activation": activation}
    if params is not None:
        attrs["activation_params"] = params
    result = check_preprocess(_conv_model(**attrs), {"x": X}, input_scale=2.0)
    assert op_types(result.model) == expected
    assert any("1 FusedConv" in note for note in result.notes)


def test_fused_conv_clip_before_opset_11_uses_attributes():
    proto = _conv_model(opset=9, activation="Clip", activation_params=[0.0, 6.0])
    result = check_preprocess(proto, {"x": X}, input_scale=3.0)
    clip = next(n for n in result.model.graph.node if n.op_type == "Clip")
    assert {a.name for a in clip.attribute} == {"min", "max"}


def test_fused_conv_sum_input_is_added_before_the_activation():
    proto = _conv_model(("x", "w", "b", "z"), [("z", ["N", 5, 6, 6])], activation="Relu")
    result = check_preprocess(proto, {"x": X, "z": [2, 5, 6, 6]})
    assert op_types(result.model) == ["Conv", "Add", "Relu"]


@pytest.mark.parametrize(
    ("activation", "attrs", "expected"),
    [
        ("Relu", {}, ["Gemm", "Relu"]),
        ("LeakyRelu", {"activation_alpha": 0.2}, ["Gemm", "LeakyRelu"]),
        ("HardSigmoid", {"activation_alpha": 0.3, "activation_beta": 0.4}, ["Gemm", "HardSigmoid"]),
        ("Sigmoid", {}, ["Gemm", "Sigmoid"]),
    ],
)
def test_fused_gemm(activation, attrs, expected):
    node = helper.make_node(
        "FusedGemm", ["a", "gw", "gb"], ["y"], domain=MS, activation=activation,
        alpha=0.7, beta=1.3, transB=1, **attrs,
    )  # fmt: skip
    inits = [const("gw", RNG.standard_normal((5, 4))), const("gb", RNG.standard_normal(5))]
    proto = _with_contrib(model([node], [("a", ["N", 4])], [("y", ["N", 5])], inits, check=False))
    result = check_preprocess(proto, {"a": [3, 4]}, input_scale=2.0)
    assert op_types(result.model) == expected


@pytest.mark.parametrize(
    ("attrs", "b_shape"),
    [({"transB": 1, "alpha": 0.5}, [2, 3, 6, 5]), ({"transA": 1}, [2, 3, 5, 6]), ({}, [5, 6])],
)
def test_fused_matmul(attrs, b_shape):
    node = helper.make_node("FusedMatMul", ["m", "k"], ["y"], domain=MS, **attrs)
    a_shape = [2, 3, 4, 5] if not attrs.get("transA") else [2, 3, 5, 4]
    proto = _with_contrib(
        model([node], [("m", a_shape), ("k", b_shape)], [("y", [2, 3, 4, 6])], check=False)
    )
    result = check_preprocess(proto, {"m": a_shape, "k": b_shape})
    assert "MatMul" in op_types(result.model) and "FusedMatMul" not in op_types(result.model)


def test_unknown_attributes_are_left_fused_and_reported():
    node = helper.make_node("FusedMatMul", ["m", "k"], ["y"], domain=MS, transBatchA=1)
    proto = _with_contrib(
        model([node], [("m", [2, 3, 4]), ("k", [2, 3, 5])], [("y", None)], check=False)
    )
    result = preprocess(proto)
    assert op_types(result.model) == ["FusedMatMul"]
    assert any("left ONNX Runtime fused ops" in note for note in result.notes)


@pytest.fixture(scope="module")
def runtime_optimized(tmp_path_factory):
    """The shipped digits VGG as ONNX Runtime saves it after its extended optimizations."""
    path = tmp_path_factory.mktemp("ort_optimized") / "vgg_ort.onnx"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(path)
    ort.InferenceSession(str(DIGITS / "digits_vgg.onnx"), options,
                         providers=["CPUExecutionProvider"])  # fmt: skip
    return path


def test_runtime_optimized_model_counts_and_prunes_like_the_export(runtime_optimized, tmp_path):
    import onnx

    fused = onnx.load(str(runtime_optimized))
    assert {n.op_type for n in fused.graph.node} >= {"FusedConv", "FusedGemm"}
    original = onnx.load(str(DIGITS / "digits_vgg.onnx"))
    assert count_macs(fused).total == count_macs(original).total > 0
    out = tmp_path / "pruned.onnx"
    args = ["prune", str(runtime_optimized), "--ratio", "0.3", "-o", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    written = onnx.load(str(out))
    assert not any(n.domain == MS for n in written.graph.node)
    assert count_macs(written).total < 0.8 * count_macs(original).total


def test_sparsify_reaches_the_fused_layers(runtime_optimized, tmp_path):
    import onnx

    out = tmp_path / "sparse.onnx"
    args = ["sparsify", str(runtime_optimized), "--sparsity", "0.5", "--min-size", "0"]
    result = CliRunner().invoke(cli, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    written = onnx.load(str(out))
    assert not any(n.domain == MS for n in written.graph.node)
    convs = [n.input[1] for n in written.graph.node if n.op_type in ("Conv", "Gemm")]
    assert len(convs) == 7  # the VGG's 5 Convs and 2 Gemms
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in written.graph.initializer}
    zeros = sum(int((weights[name] == 0).sum()) for name in convs)
    assert zeros >= 0.49 * sum(weights[name].size for name in convs)


T = [2, 3, 8]  # batch, tokens, hidden


def _token_model(node, inputs, outputs, inits=(), opset=17):
    return _with_contrib(model([node], inputs, outputs, list(inits), opset, check=False))


@pytest.mark.parametrize("opset", [13, 17, 20])
@pytest.mark.parametrize(
    ("op", "with_bias", "attrs"),
    [
        ("Gelu", False, {}),
        ("BiasGelu", True, {}),
        ("FastGelu", True, {}),
        ("FastGelu", False, {}),
        ("QuickGelu", False, {"alpha": 1.5}),
    ],
)
def test_gelu_family(op, with_bias, attrs, opset):
    inputs = ["x", "bias"] if with_bias else ["x"]
    node = helper.make_node(op, inputs, ["y"], domain=MS, **attrs)
    inits = [const("bias", RNG.standard_normal(8))] if with_bias else []
    proto = _token_model(node, [("x", ["N", 3, 8])], [("y", ["N", 3, 8])], inits, opset)
    result = check_preprocess(proto, {"x": T}, input_scale=2.0)
    assert not any(n.domain == MS for n in result.model.graph.node)


@pytest.mark.parametrize("opset", [13, 17])
@pytest.mark.parametrize(
    ("inputs", "read_sum"),
    [
        (["x", "s", "g", "b", "bias"], False),
        (["x", "s", "g"], False),
        (["x", "s", "g", "b", "bias"], True),
    ],
)
def test_skip_layer_normalization(inputs, read_sum, opset):
    outputs = ["y", "", "", "sum"] if read_sum else ["y"]
    node = helper.make_node("SkipLayerNormalization", inputs, outputs, domain=MS, epsilon=1e-5)
    inits = [const(name, RNG.standard_normal(8)) for name in ("g", "b", "bias")]
    graph_outputs = [("y", ["N", 3, 8])] + ([("sum", ["N", 3, 8])] if read_sum else [])
    used = [init for init in inits if init.name in inputs]
    proto = _token_model(node, [("x", ["N", 3, 8]), ("s", ["N", 3, 8])], graph_outputs, used, opset)
    result = check_preprocess(proto, {"x": T, "s": T}, rtol=1e-4)
    assert not any(n.domain == MS for n in result.model.graph.node)


def test_runtime_transformer_optimizer_sdpa_export_prunes_like_the_export(zoo_onnx, tmp_path):
    """The zoo's SDPA BERT (dynamo export) through ONNX Runtime's transformer optimizer:
    SkipLayerNormalization and BiasGelu nodes, and ``Shape(Transpose(k))`` rewritten as
    ``Gather(Shape(k), perm)`` in a Reshape target (``copied_dims`` follows the composition).
    Expanded, it has the export's groups: feed-forward units and whole heads prunable."""
    import onnx

    from onnxprune.analysis import analyze
    from tests.oracle import prove_random_removals

    source = zoo_onnx("bert_sdpa", "dynamo")
    fused = transformer_optimized(source, tmp_path)
    assert {"SkipLayerNormalization", "BiasGelu"} <= {n.op_type for n in fused.graph.node}
    result = preprocess(fused)
    assert not any(n.domain == MS for n in result.model.graph.node)
    assert group_summary(fused) == group_summary(onnx.load(str(source)))
    assert prove_random_removals(analyze(result.model, allow_norm_stats=False)) == "ok"


def test_runtime_transformer_optimizer_vit_prunes_like_the_export(zoo_onnx, tmp_path):
    """The zoo ViT (TorchScript) through the optimizer: SkipLayerNormalization, BiasGelu and a
    merge-heads ``Reshape(x, Shape(block input))`` (reshape_copy_dims makes it constant)."""
    import onnx

    from onnxprune.analysis import analyze
    from tests.oracle import prove_random_removals

    source = zoo_onnx("vit_tiny")
    fused = transformer_optimized(source, tmp_path, model_type="vit")
    assert {"SkipLayerNormalization", "BiasGelu"} <= {n.op_type for n in fused.graph.node}
    assert group_summary(fused) == group_summary(onnx.load(str(source)))
    result = preprocess(fused)
    assert prove_random_removals(analyze(result.model, allow_norm_stats=False)) == "ok"


def test_new_constants_follow_a_half_precision_model():
    import onnx
    from onnx import TensorProto

    node = helper.make_node("QuickGelu", ["x"], ["y"], domain=MS, alpha=1.702)
    graph = helper.make_graph(
        [node], "half", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, ["N", 8])],
    )  # fmt: skip
    proto = _with_contrib(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    proto.ir_version = 8
    result = preprocess(proto)
    onnx.checker.check_model(result.model, full_check=True)
    constants = [t for t in result.model.graph.initializer]
    assert constants and all(t.data_type == TensorProto.FLOAT16 for t in constants)
    x = np.linspace(-3, 3, 16, dtype=np.float16).reshape(2, 8)
    session = ort.InferenceSession(result.model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])  # fmt: skip
    got = session.run(None, {"x": x})[0].astype(np.float64)
    want = x * (1 / (1 + np.exp(-1.702 * x.astype(np.float64))))
    np.testing.assert_allclose(got, want, atol=2e-2)
