"""Attention and EmbedLayerNormalization (ONNX Runtime's fused BERT blocks) expanded to the ops
of a PyTorch export, checked against ONNX Runtime's own kernels."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprune.passes import preprocess
from tests.passes.helpers import group_summary, transformer_optimized

MS = "com.microsoft"
RNG = np.random.default_rng(0)
B, S, H, HEADS = 2, 6, 8, 2


def _model(nodes, inputs, outputs, inits, opset=17):
    graph = helper.make_graph(nodes, "fused", inputs, outputs, inits)
    opsets = [helper.make_opsetid("", opset), helper.make_opsetid(MS, 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model


def _run(model, feeds):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])  # fmt: skip
    return session.run(None, feeds)


def _same(model, feeds, expanded_ops=()):
    result = preprocess(model)
    assert not any(n.domain == MS for n in result.model.graph.node), result.notes
    onnx.checker.check_model(result.model, full_check=True)
    for want, got in zip(_run(model, feeds), _run(result.model, feeds), strict=True):
        assert want.dtype == got.dtype and want.shape == got.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    return result


def _attention_model(mask_shape=None, sizes=None, opset=17, **attrs):
    sizes = sizes or [H, H, H]
    weight = numpy_helper.from_array(RNG.standard_normal((H, sum(sizes))).astype(np.float32), "w")
    bias = numpy_helper.from_array(RNG.standard_normal(sum(sizes)).astype(np.float32), "b")
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", H])]
    names = ["x", "w", "b"]
    if mask_shape is not None:
        inputs.append(helper.make_tensor_value_info("mask", TensorProto.INT32, mask_shape))
        names.append("mask")
    if sizes != [H, H, H]:
        attrs["qkv_hidden_sizes"] = sizes
    node = helper.make_node("Attention", names, ["y"], domain=MS, num_heads=HEADS, **attrs)
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", sizes[2]])
    return _model([node], inputs, [out], [weight, bias], opset)


X = RNG.standard_normal((B, S, H)).astype(np.float32)


@pytest.mark.parametrize(
    ("mask_shape", "mask"),
    [
        (None, None),
        (["batch"], np.array([S, 3], np.int32)),  # end positions (right padding)
        (["batch", "seq"], np.array([[1, 1, 0, 1, 1, 1], [1, 1, 1, 0, 0, 0]], np.int32)),
    ],
    ids=["no mask", "end positions", "raw mask"],
)
def test_attention_matches_the_runtime(mask_shape, mask):
    feeds = {"x": X} if mask is None else {"x": X, "mask": mask}
    _same(_attention_model(mask_shape), feeds)


def test_attention_with_a_scale_and_a_wider_value():
    model = _attention_model(["batch", "seq"], sizes=[H, H, 12], scale=0.3, mask_filter_value=-1e4)
    _same(model, {"x": X, "mask": np.ones((B, S), np.int32)})


@pytest.mark.parametrize(
    ("attrs", "opset"), [({"unidirectional": 1}, 17), ({}, 12)], ids=["causal", "opset 12"]
)
def test_attention_outside_the_stated_form_stays_fused(attrs, opset):
    result = preprocess(_attention_model(opset=opset, **attrs))
    assert [n.op_type for n in result.model.graph.node] == ["Attention"]
    assert any("left ONNX Runtime fused ops" in note for note in result.notes)


def _int_input(name):
    return helper.make_tensor_value_info(name, TensorProto.INT32, ["batch", "seq"])


def _embed_model(segment=True, mask=True, position_ids=False, read_mask_index=True):
    vocab, positions, types = 11, 9, 2
    tables = {
        "word": RNG.standard_normal((vocab, H)), "pos": RNG.standard_normal((positions, H)),
        "seg": RNG.standard_normal((types, H)), "gamma": RNG.standard_normal(H),
        "beta": RNG.standard_normal(H),
    }  # fmt: skip
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in tables.items()]
    inputs = [_int_input("ids")]
    names = ["ids", "segment" if segment else "", "word", "pos", "seg" if segment else "",
             "gamma", "beta", "mask" if mask else "", "position_ids" if position_ids else ""]  # fmt: skip
    for flag, name in ((segment, "segment"), (mask, "mask"), (position_ids, "position_ids")):
        if flag:
            inputs.append(_int_input(name))
    node = helper.make_node(
        "EmbedLayerNormalization", names, ["y", "mask_index"], domain=MS, epsilon=1e-5
    )
    graph_outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", H])]
    if read_mask_index:
        graph_outputs.append(
            helper.make_tensor_value_info("mask_index", TensorProto.INT32, ["batch"])
        )
    return _model([node], inputs, graph_outputs, inits)


@pytest.mark.parametrize(
    "flags",
    [
        {},
        {"segment": False},
        {"mask": False},
        {"position_ids": True},
        {"read_mask_index": False},
    ],
    ids=["all", "no segment", "no mask", "position ids", "mask index unread"],
)
def test_embed_layer_normalization_matches_the_runtime(flags):
    model = _embed_model(**flags)
    feeds = {"ids": RNG.integers(0, 11, (B, S)).astype(np.int32)}
    if flags.get("segment", True):
        feeds["segment"] = RNG.integers(0, 2, (B, S)).astype(np.int32)
    if flags.get("mask", True):
        feeds["mask"] = np.array([[1] * S, [1, 1, 1, 0, 0, 0]], np.int32)
    if flags.get("position_ids"):
        feeds["position_ids"] = RNG.integers(0, 9, (B, S)).astype(np.int32)
    _same(model, feeds)


def test_runtime_optimized_bert_prunes_like_the_export(zoo_onnx, tmp_path):
    """The zoo BERT (TorchScript, eager attention) through ONNX Runtime's transformer
    optimizer holds EmbedLayerNormalization, Attention, SkipLayerNormalization and BiasGelu;
    expanded, it computes the same outputs and has the export's groups and prunable share."""
    source = zoo_onnx("bert")
    fused = transformer_optimized(source, tmp_path)
    assert {"Attention", "EmbedLayerNormalization"} <= {n.op_type for n in fused.graph.node}
    feeds = {
        "input_ids": RNG.integers(0, 100, (2, 16)).astype(np.int64),
        "attention_mask": np.ones((2, 16), np.int64),
        "token_type_ids": np.zeros((2, 16), np.int64),
    }
    feeds["attention_mask"][1, 10:] = 0
    _same(fused, feeds)

    assert group_summary(fused) == group_summary(onnx.load(str(source)))


def test_half_precision_blocks_keep_their_type():
    """A float16 Attention (HF Optimum O4 writes float16 fused models): every new constant is
    float16, the expansion passes the checker's type inference and runs in ONNX Runtime close
    to the float32 block's output, with the optimizer's float32-lowest mask fill."""
    model32 = _attention_model(["batch", "seq"], mask_filter_value=-3.4028234663852886e38)
    model16 = onnx.ModelProto()
    model16.CopyFrom(model32)
    for init in model16.graph.initializer:
        init.CopyFrom(
            numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name)
        )
    for value in [model16.graph.input[0], model16.graph.output[0]]:
        value.type.tensor_type.elem_type = TensorProto.FLOAT16
    result = preprocess(model16)
    assert not any(n.domain == MS for n in result.model.graph.node)
    onnx.checker.check_model(result.model, full_check=True)
    floats = [
        t
        for t in result.model.graph.initializer
        if t.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16)
    ]
    assert floats and all(t.data_type == TensorProto.FLOAT16 for t in floats)
    mask = np.array([[1] * S, [1, 1, 1, 1, 0, 0]], np.int32)
    want = _run(model32, {"x": X, "mask": mask})[0]
    got = _run(result.model, {"x": X.astype(np.float16), "mask": mask})[0]
    np.testing.assert_allclose(got.astype(np.float32), want, atol=3e-2, rtol=3e-2)
