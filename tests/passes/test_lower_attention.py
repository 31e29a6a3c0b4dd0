"""lower_attention: ONNX ``Attention`` (opsets 23, 24) becomes MatMul/Softmax/MatMul with the
same output as ONNX Runtime's own kernel and as a float64 numpy implementation of the
specification (3-D and 4-D operands, grouped heads, boolean and float masks, causal masks at
static and run-time lengths, scale, softcap, softmax precision, fully masked rows); nodes it
cannot lower stay Attention with a note saying why, and the MAC counter counts them alike."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from onnxprune.passes import preprocess
from onnxprune.stats.macs import count_macs
from tests.passes.helpers import op_types

B = 2


def reference(q, k, v, mask=None, *, q_heads=None, kv_heads=None, scale=None, softcap=0.0,
              is_causal=0):  # fmt: skip
    """The specification in float64: split 3-D operands into heads, repeat each key/value head
    over its group of query heads, scores, softcap, mask, causal rule, softmax (a row with
    every key masked is zero), weighted values."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    three_d = q.ndim == 3
    if three_d:
        q = q.reshape(q.shape[0], q.shape[1], q_heads, -1).transpose(0, 2, 1, 3)
        k = k.reshape(k.shape[0], k.shape[1], kv_heads, -1).transpose(0, 2, 1, 3)
        v = v.reshape(v.shape[0], v.shape[1], kv_heads, -1).transpose(0, 2, 1, 3)
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ np.swapaxes(k, -1, -2) * scale
    if softcap > 0:
        scores = softcap * np.tanh(scores / softcap)
    if mask is not None:
        scores = scores + (np.where(mask, 0.0, -np.inf) if mask.dtype == bool else mask)
    if is_causal:
        allowed = np.tril(np.ones(scores.shape[-2:], dtype=bool))
        scores = np.where(allowed, scores, -np.inf)
    top = scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores - np.where(np.isfinite(top), top, 0.0))
    total = weights.sum(axis=-1, keepdims=True)
    weights = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
    y = weights @ v
    if three_d:
        y = y.transpose(0, 2, 1, 3).reshape(y.shape[0], y.shape[2], -1)
    return y


def attention_model(shapes, mask_shape=None, mask_type=None, opset=23, dtype=TensorProto.FLOAT,
                    **attrs):  # fmt: skip
    """One Attention node over graph inputs Q, K, V (and M); dims may be names (dynamic)."""
    names = ["Q", "K", "V"]
    inputs = [
        helper.make_tensor_value_info(n, dtype, list(s)) for n, s in zip(names, shapes, strict=True)
    ]
    if mask_shape is not None:
        inputs.append(helper.make_tensor_value_info("M", mask_type or dtype, list(mask_shape)))
        names.append("M")
    node = helper.make_node("Attention", names, ["Y"], name="attention", **attrs)
    graph = helper.make_graph(
        [node], "g", inputs, [helper.make_tensor_value_info("Y", dtype, None)]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model


def _run(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def _feeds(sizes, mask=None, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    feeds = {n: rng.standard_normal(s).astype(dtype) for n, s in zip("QKV", sizes, strict=True)}
    if mask is not None:
        feeds["M"] = mask
    return feeds


def _bool_mask(shape, seed=1):
    return np.random.default_rng(seed).random(shape) < 0.7


# (Q, K, V shapes, attributes)
CASES = [
    ([(B, 3, 5, 4), (B, 3, 6, 4), (B, 3, 6, 7)], {}),  # cross attention, dv != d
    ([(B, 3, 5, 4), (B, 3, 5, 4), (B, 3, 5, 4)], {"scale": 0.3}),
    ([(B, 3, 5, 4), (B, 3, 5, 4), (B, 3, 5, 4)], {"softcap": 1.5}),
    ([(B, 3, 5, 4), (B, 3, 5, 4), (B, 3, 5, 4)], {"is_causal": 1}),
    ([(B, 3, 4, 4), (B, 3, 6, 4), (B, 3, 6, 2)], {"is_causal": 1}),  # fewer queries than keys
    ([(B, 5, 12), (B, 6, 12), (B, 6, 9)], {"q_num_heads": 3, "kv_num_heads": 3}),
    ([(B, 6, 4, 4), (B, 2, 5, 4), (B, 2, 5, 3)], {}),  # grouped: 3 query heads per key head
    ([(B, 5, 24), (B, 6, 8), (B, 6, 6)], {"q_num_heads": 6, "kv_num_heads": 2}),
    ([(B, 4, 5, 4), (B, 1, 5, 4), (B, 1, 5, 4)], {"is_causal": 1}),  # multi-query, causal
]


@pytest.mark.parametrize("opset", [23, 24])
@pytest.mark.parametrize(("shapes", "attrs"), CASES)
def test_same_output_as_onnxruntime(shapes, attrs, opset):
    model = attention_model(shapes, opset=opset, **attrs)
    feeds = _feeds(shapes)
    result = preprocess(model)
    assert "Attention" not in op_types(result.model)
    got = _run(result.model, feeds)
    np.testing.assert_allclose(got, _run(model, feeds), rtol=1e-5, atol=1e-5)
    want = reference(feeds["Q"], feeds["K"], feeds["V"], q_heads=attrs.get("q_num_heads"),
                     kv_heads=attrs.get("kv_num_heads"), scale=attrs.get("scale"),
                     softcap=attrs.get("softcap", 0.0), is_causal=attrs.get("is_causal", 0))  # fmt: skip
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["bool", "float"])
@pytest.mark.parametrize("causal", [0, 1])
def test_full_masks_and_fully_masked_rows(kind, causal):
    """A mask over every score; query row 1 of the first sample has every key masked: its
    output row is zero (the specification), not NaN."""
    shapes = [(B, 3, 5, 4), (B, 3, 5, 4), (B, 3, 5, 6)]
    allowed = _bool_mask((B, 3, 5, 5))
    allowed[0, :, 1, :] = False
    mask = allowed if kind == "bool" else np.where(allowed, 0.0, -np.inf).astype(np.float32)
    model = attention_model(shapes, mask.shape, TensorProto.BOOL if kind == "bool" else None,
                            is_causal=causal)  # fmt: skip
    feeds = _feeds(shapes, mask)
    got = _run(preprocess(model).model, feeds)
    assert np.isfinite(got).all()
    assert not got[0, :, 1].any()
    np.testing.assert_allclose(got, _run(model, feeds), rtol=1e-5, atol=1e-5)
    want = reference(feeds["Q"], feeds["K"], feeds["V"], mask, is_causal=causal)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mask_shape", [(B, 1, 1, 5), (1, 5), (5, 5), (B, 1, 5, 5)])
@pytest.mark.parametrize("grouped", [False, True])
def test_broadcast_masks(mask_shape, grouped):
    """Masks that broadcast over heads and queries (an exporter's padding mask [B, 1, 1, T]).
    ONNX Runtime 1.31's kernel rejects a mask whose query axis is 1, so the oracle here is
    the numpy specification."""
    shapes = [(B, 4, 5, 4), (B, 2 if grouped else 4, 5, 4), (B, 2 if grouped else 4, 5, 3)]
    mask = np.where(_bool_mask(mask_shape), 0.0, -1e4).astype(np.float32)
    model = attention_model(shapes, mask.shape)
    feeds = _feeds(shapes, mask)
    result = preprocess(model)
    assert "Attention" not in op_types(result.model)
    want = reference(feeds["Q"], feeds["K"], feeds["V"], mask)
    np.testing.assert_allclose(_run(result.model, feeds), want, rtol=1e-4, atol=1e-5)


def test_run_time_lengths_and_causal():
    """Dynamic batch and sequence dims: the causal bias is built from the run-time lengths,
    and the lowered model runs at lengths it was not built for."""
    shapes = [("b", 2, "s", 4), ("b", 2, "t", 4), ("b", 2, "t", 4)]
    model = attention_model(shapes, is_causal=1)
    lowered = preprocess(model).model
    assert "Attention" not in op_types(lowered)
    for s in (3, 7):
        sizes = [(B, 2, s, 4), (B, 2, s + 2, 4), (B, 2, s + 2, 4)]
        feeds = _feeds(sizes, seed=s)
        np.testing.assert_allclose(_run(lowered, feeds), _run(model, feeds), rtol=1e-5, atol=1e-5)


def test_softmax_precision_of_half_inputs():
    shapes = [(B, 2, 5, 8), (B, 2, 5, 8), (B, 2, 5, 8)]
    model = attention_model(shapes, dtype=TensorProto.FLOAT16, softmax_precision=TensorProto.FLOAT)
    feeds = _feeds(shapes, dtype=np.float16)
    lowered = preprocess(model).model
    assert "Cast" in op_types(lowered)
    got = _run(lowered, feeds).astype(np.float32)
    want = reference(feeds["Q"], feeds["K"], feeds["V"])
    np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-2)


def _cache_model():
    names = ["Q", "K", "V", "", "PK", "PV"]
    shape = [B, 2, 3, 4]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in "QKV"]
    inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("PK", "PV")]
    outputs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("Y", "PK2", "PV2")
    ]
    node = helper.make_node("Attention", names, ["Y", "PK2", "PV2"], name="cached")
    graph = helper.make_graph([node], "g", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    model.ir_version = 10
    return model


def test_what_stays_attention_is_named_and_counted():
    model = _cache_model()
    result = preprocess(model)
    assert "Attention" in op_types(result.model)
    assert any("'cached' (a key/value cache input)" in note for note in result.notes)
    report = count_macs(result.model)
    # Q·Kᵀ and P·V over the 3 past + 3 new keys: B · 2 heads · 3 queries · 6 keys · (4 + 4)
    assert report.per_node["cached"] == B * 2 * 3 * 6 * 8


def test_macs_equal_before_and_after_lowering():
    model = attention_model([(1, 5, 24), (1, 6, 8), (1, 6, 6)], q_num_heads=6, kv_num_heads=2)
    before = count_macs(model)
    after = count_macs(preprocess(model).model)
    # 6 query heads · 5 queries · 6 keys · (head size 4 + value head size 3)
    assert before.total == after.total == 6 * 5 * 6 * (4 + 3)


def _declined(reason_model):
    result = preprocess(reason_model)
    assert "Attention" in op_types(result.model)
    return " ".join(result.notes)


def test_a_read_qk_output_is_left_with_its_reason():
    shape = [B, 2, 3, 4]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in "QKV"]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("Y", "QK")]
    node = helper.make_node("Attention", ["Q", "K", "V"], ["Y", "", "", "QK"], name="debug")
    model = helper.make_model(helper.make_graph([node], "g", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", 23)])  # fmt: skip
    model.ir_version = 10
    assert "'debug' (its qk_matmul_output is read)" in _declined(model)


def test_a_mask_shorter_than_the_keys_is_left_with_its_reason():
    model = attention_model([(B, 2, 3, 4), (B, 2, 6, 4), (B, 2, 6, 4)], (B, 1, 3, 4))
    assert "a mask shorter than the keys" in _declined(model)


@pytest.mark.parametrize("attrs", [{"is_causal": 1}, {"softcap": 2.0}, {}])
def test_gradients_of_the_lowered_form_match_finite_differences(attrs):
    """The lowered form (mask, NaN guard, softcap, causal bias included) is differentiable by
    the autodiff rules: ∂L/∂Q, ∂L/∂K, ∂L/∂V against central differences in float64."""
    from tests.autodiff.fd import check_gradients

    shapes = [(B, 2, 3, 4), (B, 2, 3, 4), (B, 2, 3, 5)]
    mask = _bool_mask((B, 1, 3, 3))
    mask[..., 0] = True  # every query keeps a key: no fully masked row (its gradient is 0)
    model = attention_model(shapes, mask.shape, TensorProto.BOOL, dtype=TensorProto.DOUBLE,
                            **attrs)  # fmt: skip
    lowered = preprocess(model).model
    assert "Attention" not in op_types(lowered)
    feeds = _feeds(shapes, mask, dtype=np.float64)
    check_gradients(lowered, feeds, ["Q", "K", "V"], tol=1e-6)


@pytest.mark.parametrize(("shapes", "attrs", "reason"), [
    ([(B, 3, 8), (B, 4, 8), (B, 4, 8)], {"q_num_heads": 3, "kv_num_heads": 3},
     "3-D widths that the head counts do not divide"),
    ([(B, 2, 3, 4), (B, 2, 3, 4), (B, 2, 3, 4)], {"scale": 0.0}, "a scale of 0.0"),
])  # fmt: skip
def test_invalid_nodes_are_left_with_their_reason(shapes, attrs, reason):
    """Nodes ONNX Runtime itself refuses are not lowered into something that runs."""
    assert reason in _declined(attention_model(shapes, **attrs))


@settings(max_examples=40, deadline=None)
@given(
    kv_heads=st.integers(1, 3),
    groups=st.integers(1, 3),
    queries=st.integers(1, 5),
    keys=st.integers(1, 6),
    head=st.integers(1, 6),
    value_head=st.integers(1, 6),
    three_d=st.booleans(),
    causal=st.booleans(),
    softcap=st.sampled_from([0.0, 0.7, 3.0]),
    scale=st.sampled_from([None, 0.2, 1.3]),
    mask=st.sampled_from([None, "bool_full", "float_keys", "bool_queries_keys"]),
    seed=st.integers(0, 1000),
)
def test_random_configurations_match_the_specification(
    kv_heads, groups, queries, keys, head, value_head, three_d, causal, softcap, scale, mask, seed
):
    """Any head layout, lengths, scale, softcap, causal rule and mask shape: the lowered form
    equals the float64 specification (ONNX Runtime's kernel refuses some of these masks)."""
    q_heads = kv_heads * groups
    if three_d:
        shapes = [(B, queries, q_heads * head), (B, keys, kv_heads * head),
                  (B, keys, kv_heads * value_head)]  # fmt: skip
        attrs = {"q_num_heads": q_heads, "kv_num_heads": kv_heads}
    else:
        shapes = [(B, q_heads, queries, head), (B, kv_heads, keys, head),
                  (B, kv_heads, keys, value_head)]  # fmt: skip
        attrs = {}
    attrs.update({"is_causal": int(causal), "softcap": softcap})
    if scale is not None:
        attrs["scale"] = scale
    rng = np.random.default_rng(seed)
    values = None
    if mask == "bool_full":
        values = rng.random((B, q_heads if groups == 1 else 1, queries, keys)) < 0.7
    elif mask == "float_keys":
        keep = rng.random((B, 1, 1, keys)) < 0.7
        keep[..., 0] = True  # a row of -1e4 everywhere is uniform up to float32 rounding
        values = np.where(keep, 0.0, -1e4).astype(np.float32)
    elif mask == "bool_queries_keys":
        values = rng.random((queries, keys)) < 0.7
    mask_type = TensorProto.BOOL if values is not None and values.dtype == bool else None
    model = attention_model(shapes, None if values is None else values.shape, mask_type, **attrs)
    lowered = preprocess(model).model
    assert "Attention" not in op_types(lowered)
    feeds = _feeds(shapes, values, seed=seed)
    want = reference(feeds["Q"], feeds["K"], feeds["V"], values, q_heads=attrs.get("q_num_heads"),
                     kv_heads=attrs.get("kv_num_heads"), scale=scale, softcap=softcap,
                     is_causal=int(causal))  # fmt: skip
    np.testing.assert_allclose(_run(lowered, feeds), want, rtol=1e-4, atol=1e-4)
