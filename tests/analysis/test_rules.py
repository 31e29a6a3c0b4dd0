"""Every op rule on a tiny hand-built graph: the groups it forms, what it blocks, and the
mask-equivalence of a random removal."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from onnxprune.analysis import analyze
from tests.oracle import (
    assert_mask_equivalent,
    const,
    make_model,
    random_removal,
    tensor,
    weights,
)


def conv(name, x, y, cin, cout, k=3, group=1, seed=0):
    node = helper.make_node(
        "Conv", [x, f"{name}.w", f"{name}.b"], [y], name=name, pads=[k // 2] * 4, group=group
    )
    inits = [
        weights(f"{name}.w", (cout, cin // group, k, k), seed),
        weights(f"{name}.b", (cout,), seed + 100),
    ]
    return node, inits


def chain(*parts):
    nodes, inits = [], []
    for node, node_inits in parts:
        nodes.append(node)
        inits.extend(node_inits)
    return nodes, inits


def head(x, channels, spatial, name="fc", classes=5):
    """GlobalAveragePool -> Flatten -> Gemm to a graph output."""
    nodes = [
        helper.make_node("GlobalAveragePool", [x], [f"{name}.p"], name=f"{name}_pool"),
        helper.make_node("Flatten", [f"{name}.p"], [f"{name}.f"], name=f"{name}_flat"),
        helper.make_node(
            "Gemm", [f"{name}.f", f"{name}.w", f"{name}.b"], ["out"], name=name, transB=1
        ),
    ]
    inits = [weights(f"{name}.w", (classes, channels), 7), weights(f"{name}.b", (classes,), 8)]
    return nodes, inits


def build(nodes, inits, in_shape=(1, 3, 8, 8), out_shape=(1, 5), opset=17):
    return make_model(
        nodes,
        [tensor("x", ["N", *in_shape[1:]])],
        [tensor("out", ["N", *out_shape[1:]])],
        inits,
        opset,
    )


def groups_by_source(analysis):
    return {tuple(g.sources): g for g in analysis.groups}


def test_conv_chain_forms_one_group_per_conv_and_blocks_the_output():
    nodes, inits = chain(conv("c1", "x", "a", 3, 8), conv("c2", "a", "b", 8, 6, seed=1))
    h_nodes, h_inits = head("b", 6, 8)
    model = build(nodes + h_nodes, inits + h_inits)
    analysis = analyze(model)
    groups = groups_by_source(analysis)
    assert groups[("c1",)].size == 8 and groups[("c1",)].prunable
    assert groups[("c2",)].size == 6 and groups[("c2",)].prunable
    assert not groups[("fc",)].prunable
    assert any("graph output" in r for r in groups[("fc",)].reasons)
    pruned = assert_mask_equivalent(analysis, random_removal(analysis))
    shapes = {i.name: tuple(i.dims) for i in pruned.graph.initializer}
    assert (
        shapes["c1.w"] == (4, 3, 3, 3)
        and shapes["c2.w"] == (3, 4, 3, 3)
        and shapes["fc.w"] == (5, 3)
    )


def test_residual_add_couples_both_producers():
    nodes, inits = chain(conv("c1", "x", "a", 3, 8), conv("c2", "a", "b", 8, 8, seed=1))
    nodes.append(helper.make_node("Add", ["a", "b"], ["s"], name="add"))
    h_nodes, h_inits = head("s", 8, 8)
    analysis = analyze(build(nodes + h_nodes, inits + h_inits))
    group = groups_by_source(analysis)[("c1", "c2")]
    assert group.size == 8 and group.prunable
    assert_mask_equivalent(analysis, random_removal(analysis))


def test_depthwise_conv_passes_channels_and_updates_group():
    nodes, inits = chain(conv("c1", "x", "a", 3, 8), conv("dw", "a", "b", 8, 8, group=8, seed=1))
    h_nodes, h_inits = head("b", 8, 8)
    analysis = analyze(build(nodes + h_nodes, inits + h_inits))
    assert ("dw",) not in groups_by_source(analysis)
    removed = random_removal(analysis)
    pruned = assert_mask_equivalent(analysis, removed)
    dw = next(n for n in pruned.graph.node if n.name == "dw")
    assert (
        helper.get_attribute_value(dw.attribute[[a.name for a in dw.attribute].index("group")]) == 4
    )


def test_grouped_conv_keeps_equal_positions_in_every_group():
    nodes, inits = chain(conv("c1", "x", "a", 3, 8), conv("g", "a", "b", 8, 8, group=2, seed=1))
    h_nodes, h_inits = head("b", 8, 8)
    analysis = analyze(build(nodes + h_nodes, inits + h_inits))
    groups = groups_by_source(analysis)
    assert groups[("c1",)].size == 4 and groups[("c1",)].width == 2
    assert groups[("g",)].size == 4 and groups[("g",)].width == 2
    assert_mask_equivalent(analysis, random_removal(analysis))


def test_flatten_expands_channels_into_feature_blocks():
    nodes, inits = chain(conv("c1", "x", "a", 3, 4))
    nodes += [
        helper.make_node("Flatten", ["a"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["out"], name="fc", transB=1),
    ]
    inits += [weights("fc.w", (5, 4 * 64), 3), weights("fc.b", (5,), 4)]
    analysis = analyze(build(nodes, inits))
    removed = {int(groups_by_source(analysis)[("c1",)].clusters[1])}
    pruned = assert_mask_equivalent(analysis, removed)
    assert {i.name: tuple(i.dims) for i in pruned.graph.initializer}["fc.w"] == (5, 3 * 64)


def test_concat_offsets_and_split_sizes():
    nodes, inits = chain(conv("c1", "x", "a", 3, 4), conv("c2", "x", "b", 3, 6, seed=1))
    nodes += [
        helper.make_node("Concat", ["a", "b"], ["c"], name="cat", axis=1),
        helper.make_node("Split", ["c", "sizes"], ["s1", "s2"], name="split", axis=1),
        helper.make_node("Mul", ["s1", "s2"], ["m"], name="mul"),
    ]
    inits.append(const("sizes", np.array([5, 5], dtype=np.int64)))
    h_nodes, h_inits = head("m", 5, 8)
    analysis = analyze(build(nodes + h_nodes, inits + h_inits))
    # s1 = a[0:4] + b[0:1], s2 = b[1:6]: the Mul unites a[i] with b[i+1], and b[0] with b[5]
    groups = groups_by_source(analysis)
    assert groups[("c1", "c2")].size == 4 and groups[("c2",)].size == 1
    assert not groups[("c2",)].prunable
    for seed in range(3):
        assert_mask_equivalent(analysis, random_removal(analysis, seed=seed))


def test_slice_bounds_follow_kept_channels():
    nodes, inits = chain(conv("c1", "x", "a", 3, 8))
    nodes.append(helper.make_node("Slice", ["a", "st", "en", "ax"], ["s"], name="slice"))
    inits += [const("st", np.array([2])), const("en", np.array([7])), const("ax", np.array([1]))]
    h_nodes, h_inits = head("s", 5, 8)
    analysis = analyze(build(nodes + h_nodes, inits + h_inits))
    for seed in range(3):
        assert_mask_equivalent(analysis, random_removal(analysis, seed=seed))


@pytest.mark.parametrize(
    ("bounds", "channels_after"),
    [
        ({"starts": [2], "ends": [7], "axes": [1]}, 5),
        ({"starts": [0, 1, 1], "ends": [2**62, -2, -1], "axes": [1, 2, 3]}, 8),  # + a crop
        ({"starts": [0, 1], "ends": [6, 8]}, 7),  # no axes: axes 0, 1
    ],
)
def test_slice_1_attribute_bounds_follow_kept_channels(bounds, channels_after):
    """Before opset 10 Slice takes its bounds as attributes; the rule reads and rewrites them
    there (it had no rule: every channel group through an old Slice was blocked)."""
    nodes, inits = chain(conv("c1", "x", "a", 3, 8))
    nodes.append(helper.make_node("Slice", ["a"], ["s"], name="slice", **bounds))
    h_nodes, h_inits = head("s", channels_after, 8)
    analysis = analyze(build(nodes + h_nodes, inits + h_inits, opset=9))
    assert groups_by_source(analysis)[("c1",)].prunable
    for seed in range(3):
        assert_mask_equivalent(analysis, random_removal(analysis, seed=seed))


def test_channels_last_matmul_after_transpose():
    nodes, inits = chain(conv("c1", "x", "a", 3, 8))
    nodes += [
        helper.make_node("Transpose", ["a"], ["t"], name="tr", perm=[0, 2, 3, 1]),
        helper.make_node("LayerNormalization", ["t", "ln.s", "ln.b"], ["n"], name="ln", axis=-1),
        helper.make_node("MatMul", ["n", "mm.w"], ["m"], name="mm"),
        helper.make_node("ReduceMean", ["m"], ["r"], name="rm", axes=[1, 2], keepdims=0),
        helper.make_node("Gemm", ["r", "fc.w"], ["out"], name="fc"),
    ]
    inits += [
        weights("ln.s", (8,), 1),
        weights("ln.b", (8,), 2),
        weights("mm.w", (8, 6), 3),
        weights("fc.w", (6, 5), 4),
    ]
    analysis = analyze(build(nodes, inits))
    groups = groups_by_source(analysis)
    assert groups[("c1",)].stats_coupled and groups[("c1",)].prunable
    assert groups[("mm",)].prunable and not groups[("mm",)].stats_coupled
    removed = set(int(c) for c in groups[("mm",)].clusters[:3])
    assert_mask_equivalent(analysis, removed)


def _attention_model(heads=2, dim=8, tokens=4):
    head_dim = dim // heads
    nodes = [
        helper.make_node("MatMul", ["x", "qkv.w"], ["qkv"], name="qkv"),
        helper.make_node("Reshape", ["qkv", "shape5"], ["r"], name="to_heads"),
        helper.make_node("Transpose", ["r"], ["p"], name="perm", perm=[2, 0, 3, 1, 4]),
        helper.make_node("Split", ["p", "three"], ["q5", "k5", "v5"], name="unbind", axis=0),
        helper.make_node("Squeeze", ["q5", "ax0"], ["q"], name="sq_q"),
        helper.make_node("Squeeze", ["k5", "ax0"], ["k"], name="sq_k"),
        helper.make_node("Squeeze", ["v5", "ax0"], ["v"], name="sq_v"),
        helper.make_node("Transpose", ["k"], ["kt"], name="kt", perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["q", "kt"], ["logits"], name="qk"),
        helper.make_node("Softmax", ["logits"], ["attn"], name="softmax", axis=-1),
        helper.make_node("MatMul", ["attn", "v"], ["ctx"], name="av"),
        helper.make_node("Transpose", ["ctx"], ["ctx_t"], name="ctx_t", perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["ctx_t", "shape3"], ["merged"], name="merge"),
        helper.make_node("MatMul", ["merged", "proj.w"], ["out"], name="proj"),
    ]
    inits = [
        weights("qkv.w", (dim, 3 * dim), 1),
        weights("proj.w", (dim, dim), 2),
        const("shape5", np.array([0, tokens, 3, heads, head_dim], dtype=np.int64)),
        const("shape3", np.array([0, tokens, dim], dtype=np.int64)),
        const("three", np.array([1, 1, 1], dtype=np.int64)),
        const("ax0", np.array([0])),
    ]
    return make_model(
        nodes, [tensor("x", ["N", tokens, dim])], [tensor("out", ["N", tokens, dim])], inits
    )


def test_attention_prunes_whole_heads():
    analysis = analyze(_attention_model())
    group = groups_by_source(analysis)[("qkv",)]
    assert group.size == 2 and group.width == 12 and group.prunable
    pruned = assert_mask_equivalent(analysis, {int(group.clusters[0])})
    shapes = {i.name: tuple(i.dims) for i in pruned.graph.initializer}
    assert shapes["qkv.w"] == (8, 12) and shapes["proj.w"] == (4, 8)


@pytest.mark.parametrize(
    ("node", "reason"),
    [
        (
            helper.make_node("Softmax", ["a"], ["z"], name="sm", axis=1),
            "normalizes over a channel axis",
        ),
        (
            helper.make_node("ReduceMean", ["a"], ["z"], name="rm", axes=[1], keepdims=1),
            "reduces over a channel",
        ),
        (helper.make_node("Custom", ["a"], ["z"], name="cu", domain="my.ops"), "no channel rule"),
        (helper.make_node("Trilu", ["a"], ["z"], name="tri"), "no channel rule"),
        (helper.make_node("ArgMax", ["a"], ["z"], name="am", axis=1), "reduces over a channel"),
    ],
)
def test_fail_closed_ops_block_the_group(node, reason):
    nodes, inits = chain(conv("c1", "x", "a", 3, 8))
    nodes += [node, helper.make_node("Conv", ["a", "c2.w"], ["out"], name="c2")]
    inits.append(weights("c2.w", (4, 8, 1, 1), 5))
    model = make_model(
        nodes,
        [tensor("x", ["N", 3, 8, 8])],
        [tensor("out", ["N", 4, 8, 8]), helper.make_empty_tensor_value_info("z")],
        inits,
    )
    analysis = analyze(model)
    group = groups_by_source(analysis)[("c1",)]
    assert not group.prunable
    assert any(reason in r for r in group.reasons), group.reasons


def test_shape_of_channels_used_in_a_reshape_blocks():
    nodes, inits = chain(conv("c1", "x", "a", 3, 8))
    nodes += [
        helper.make_node("Shape", ["a"], ["sh"], name="shape"),
        helper.make_node("Reshape", ["a", "sh"], ["r"], name="reshape"),
        helper.make_node("Conv", ["r", "c2.w"], ["out"], name="c2"),
    ]
    inits.append(weights("c2.w", (4, 8, 1, 1), 5))
    model = make_model(nodes, [tensor("x", ["N", 3, 8, 8])], [tensor("out", ["N", 4, 8, 8])], inits)
    group = groups_by_source(analyze(model))[("c1",)]
    assert not group.prunable and any("shape computation" in r for r in group.reasons)


def test_shape_of_batch_only_does_not_block():
    nodes, inits = chain(conv("c1", "x", "a", 3, 8))
    nodes += [
        helper.make_node("Shape", ["a"], ["sh"], name="shape"),
        helper.make_node("Gather", ["sh", "zero"], ["n"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"], name="unsq"),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], name="cat", axis=0),
        helper.make_node("Reshape", ["a", "target"], ["f"], name="reshape"),
        helper.make_node("Gemm", ["f", "fc.w"], ["out"], name="fc", transB=1),
    ]
    inits += [
        const("zero", np.array(0, dtype=np.int64)),
        const("ax0", np.array([0])),
        const("minus1", np.array([-1])),
        weights("fc.w", (5, 8 * 64), 5),
    ]
    analysis = analyze(build(nodes, inits))
    assert groups_by_source(analysis)[("c1",)].prunable
    assert_mask_equivalent(analysis, random_removal(analysis))


def test_shared_weight_with_conflicting_roles_blocks():
    nodes, inits = chain(conv("c1", "x", "a", 3, 8))
    nodes += [
        helper.make_node("Conv", ["a", "shared"], ["b"], name="c2"),
        helper.make_node("Conv", ["x8", "shared"], ["c"], name="c3"),
        helper.make_node("Add", ["b", "c"], ["out"], name="add"),
    ]
    inits.append(weights("shared", (4, 8, 1, 1), 5))
    model = make_model(
        nodes,
        [tensor("x", ["N", 3, 8, 8]), tensor("x8", ["N", 8, 8, 8])],
        [tensor("out", ["N", 4, 8, 8])],
        inits,
    )
    group = groups_by_source(analyze(model))[("c1",)]
    assert not group.prunable and any("shared" in r for r in group.reasons)


def test_resize_with_sizes_and_pad():
    nodes, inits = chain(conv("c1", "x", "a", 3, 8))
    nodes += [
        helper.make_node("Resize", ["a", "", "", "sizes"], ["r"], name="resize", mode="nearest"),
        helper.make_node("Pad", ["r", "pads"], ["p"], name="pad"),
        helper.make_node("Conv", ["p", "c2.w"], ["out"], name="c2"),
    ]
    inits += [
        const("sizes", np.array([1, 8, 16, 16], dtype=np.int64)),
        const("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64)),
        weights("c2.w", (4, 8, 3, 3), 5),
    ]
    model = make_model(nodes, [tensor("x", [1, 3, 8, 8])], [tensor("out", [1, 4, 16, 16])], inits)
    analysis = analyze(model)
    assert groups_by_source(analysis)[("c1",)].prunable
    assert_mask_equivalent(analysis, random_removal(analysis))


def test_subgraph_reference_blocks():
    nodes, inits = chain(conv("c1", "x", "a", 3, 8))
    then_graph = helper.make_graph(
        [helper.make_node("Identity", ["a"], ["t"])], "then", [], [tensor("t", None)]
    )
    else_graph = helper.make_graph(
        [helper.make_node("Identity", ["a"], ["e"])], "else", [], [tensor("e", None)]
    )
    nodes += [
        helper.make_node(
            "If", ["cond"], ["out"], name="if", then_branch=then_graph, else_branch=else_graph
        )
    ]
    model = make_model(
        nodes,
        [tensor("x", [1, 3, 8, 8]), helper.make_tensor_value_info("cond", 9, [])],
        [tensor("out", None)],
        inits,
    )
    group = groups_by_source(analyze(model))[("c1",)]
    assert not group.prunable and any("If" in r for r in group.reasons)


def _conv_inside_an_if():
    """x -> Conv outer -> If(flag, a graph input): then Conv inner, else Identity -> out."""
    body_conv, body_inits = conv("inner", "a", "y_then", 8, 8)
    then_branch = helper.make_graph(
        [body_conv], "then", [], [tensor("y_then", ["N", 8, 8, 8])], body_inits
    )
    else_branch = helper.make_graph(
        [helper.make_node("Identity", ["a"], ["y_else"])],
        "else",
        [],
        [tensor("y_else", ["N", 8, 8, 8])],
    )
    outer, outer_inits = conv("outer", "x", "a", 3, 8)
    branch = helper.make_node(
        "If", ["flag"], ["out"], name="if", then_branch=then_branch, else_branch=else_branch
    )
    flag = helper.make_tensor_value_info("flag", onnx.TensorProto.BOOL, [])
    return make_model(
        [outer, branch], [tensor("x", ["N", 3, 8, 8]), flag], [tensor("out", ["N", 8, 8, 8])],
        outer_inits,
    )  # fmt: skip


def test_weight_layers_inside_control_flow_are_named_in_a_note():
    """A Conv inside an If body is not analysed; the analysis says so (fail closed, loudly)."""
    analysis = analyze(_conv_inside_an_if(), {"x": [1, 3, 8, 8]})
    expected = "1 Conv/Gemm/MatMul layer(s) inside control flow (1 under If)"
    assert any(expected in note for note in analysis.notes)
    c1, c1_inits = conv("c1", "x", "out", 3, 5)
    plain = analyze(build([c1], c1_inits), {"x": [1, 3, 8, 8]})
    assert not any("control flow" in note for note in plain.notes)


def test_prune_prints_why_nothing_was_pruned(tmp_path):
    from click.testing import CliRunner

    from onnxprune.cli import cli

    path = tmp_path / "if.onnx"
    onnx.save(_conv_inside_an_if(), str(path))
    result = CliRunner().invoke(cli, ["prune", str(path), "-o", str(tmp_path / "out.onnx")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # rich wraps lines
    assert "inside control flow" in text
    assert "measuring shapes failed" not in text  # a rank-0 bool input is fed as an array


def test_a_quantized_graph_is_named_in_a_note():
    """ConvInteger has no channel rule: the layer stays whole and a note says why."""
    x_q = helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"], name="quantize")
    conv_int = helper.make_node("ConvInteger", ["xq", "w"], ["acc"], name="conv_int")
    cast = helper.make_node("Cast", ["acc"], ["out"], name="cast", to=onnx.TensorProto.FLOAT)
    model = make_model(
        [x_q, conv_int, cast], [tensor("x", ["N", 3, 8, 8])], [tensor("out", ["N", 4, 6, 6])],
        [const("w", np.ones((4, 3, 3, 3), dtype=np.uint8))],
    )  # fmt: skip
    analysis = analyze(model, {"x": [1, 3, 8, 8]})
    assert any(
        "quantized graph (ConvInteger, DynamicQuantizeLinear)" in note for note in analysis.notes
    )
    assert not any(group.prunable for group in analysis.groups)


def test_nchwc_layout_is_named_and_the_pruned_part_warns(tmp_path):
    """A model ONNX Runtime saved at level 'all' (NCHWc nodes): its blocked-layout layers are
    not pruned; prune warns even when it pruned the rest."""
    from click.testing import CliRunner

    from onnxprune.cli import cli

    nodes, inits = chain(conv("c1", "x", "a", 3, 8), conv("c2", "a", "b", 8, 8))
    reorder = helper.make_node(
        "ReorderInput", ["b"], ["blocked"], name="reorder", domain="com.microsoft.nchwc"
    )
    back = helper.make_node(
        "ReorderOutput", ["blocked"], ["out"], name="back", domain="com.microsoft.nchwc",
        channels=8,
    )  # fmt: skip
    model = make_model(
        [*nodes, reorder, back], [tensor("x", [1, 3, 8, 8])], [tensor("out", [1, 8, 8, 8])],
        inits,
    )  # fmt: skip
    analysis = analyze(model, measure_shapes=False)
    assert any("NCHWc layout" in note for note in analysis.uncovered)
    path = tmp_path / "nchwc.onnx"
    onnx.save(model, str(path))
    args = ["prune", str(path), "--ratio", "0.5", "--round-to", "1"]
    result = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "out.onnx")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "1 pruned" in text
    assert "warning: not pruned: 2 node(s) in ONNX Runtime's machine-specific NCHWc" in text


def _channel_pad_block(pads, opset=17, mode=None, value=None, pad_opset10=False):
    """c1 (3 -> 6) -> Relu -> [Pad channels 6 -> 6 + pads] + c2 (-> 6 + pads) -> Relu -> head:
    a residual stream widened by zero channels, as TFLite models do."""
    width = 6 + pads[1] + pads[5]
    nodes, inits = chain(conv("c1", "x", "a0", 3, 6))
    nodes.append(helper.make_node("Relu", ["a0"], ["a"], name="relu1"))
    attrs = {} if mode is None else {"mode": mode}
    if pad_opset10:
        attrs["pads"] = list(pads)
        if value is not None:
            attrs["value"] = value
        nodes.append(helper.make_node("Pad", ["a"], ["p"], name="channel_pad", **attrs))
    else:
        inputs = ["a", "pads"] + (["value"] if value is not None else [])
        nodes.append(helper.make_node("Pad", inputs, ["p"], name="channel_pad", **attrs))
        inits.append(const("pads", np.array(pads, dtype=np.int64)))
        if value is not None:
            inits.append(const("value", np.array(value, dtype=np.float32)))
    node, c2_inits = conv("c2", "a", "b", 6, width, seed=1)
    nodes += [node, helper.make_node("Add", ["p", "b"], ["s0"], name="add")]
    nodes.append(helper.make_node("Relu", ["s0"], ["s"], name="relu2"))
    h_nodes, h_inits = head("s", width, 8)
    return make_model(
        nodes + h_nodes,
        [tensor("x", ["N", 3, 8, 8])],
        [tensor("out", ["N", 5])],
        inits + c2_inits + h_inits,
        opset=opset,
    )


@pytest.mark.parametrize(
    ("pads", "opset", "attribute"),
    [
        ([0, 0, 0, 0, 0, 3, 0, 0], 17, False),  # zeros after: the TFLite form
        ([0, 2, 0, 0, 0, 1, 0, 0], 17, False),  # zeros before and after
        ([0, 0, 0, 0, 0, 3, 0, 0], 10, True),  # pads as an attribute
    ],
)
def test_zero_channel_pad_makes_prunable_zero_channels(pads, opset, attribute):
    model = _channel_pad_block(pads, opset=opset, pad_opset10=attribute)
    analysis = analyze(model)
    groups = groups_by_source(analysis)
    joined = groups[("c1", "c2")]  # the input's channels meet c2's first six channels
    zeros = groups[("c2", "channel_pad")]  # the padded zeros meet c2's other channels
    assert joined.prunable and joined.size == 6
    assert zeros.prunable and zeros.size == pads[1] + pads[5]
    for seed in range(3):
        pruned = assert_mask_equivalent(analysis, random_removal(analysis, seed=seed))
        onnx.checker.check_model(pruned, full_check=True)


def test_zero_channel_pad_can_lose_all_its_zeros():
    model = _channel_pad_block([0, 0, 0, 0, 0, 3, 0, 0])
    analysis = analyze(model)
    zeros = groups_by_source(analysis)[("c2", "channel_pad")]
    pruned = assert_mask_equivalent(analysis, {int(c) for c in zeros.clusters})
    pads = {i.name: onnx.numpy_helper.to_array(i) for i in pruned.graph.initializer}
    pad_node = next(n for n in pruned.graph.node if n.op_type == "Pad")
    assert pads[pad_node.input[1]].tolist() == [0] * 8


@pytest.mark.parametrize(
    ("mode", "value", "pads", "reason"),
    [
        ("reflect", None, [0, 0, 0, 0, 0, 3, 0, 0], "mode 'reflect'"),
        (None, 1.5, [0, 0, 0, 0, 0, 3, 0, 0], "value 1.5"),
    ],
)
def test_other_channel_padding_blocks(mode, value, pads, reason):
    model = _channel_pad_block(pads, mode=mode, value=value)
    analysis = analyze(model)
    blocked = [g for g in analysis.groups if not g.prunable]
    assert any(reason in r for g in blocked for r in g.reasons)
    assert_mask_equivalent(analysis, random_removal(analysis))


def _check_first_conv(nodes, inits, tail: str, spatial: int, prunable: bool, reason: str):
    """Add the head after ``tail``; conv c1's group is prunable (and mask-equivalent) or
    blocked with ``reason``."""
    h_nodes, h_inits = head(tail, 8, spatial)
    analysis = analyze(build(nodes + h_nodes, inits + h_inits))
    group = groups_by_source(analysis)[("c1",)]
    assert group.prunable is prunable
    if prunable:
        assert_mask_equivalent(analysis, random_removal(analysis))
    else:
        assert any(reason in text for text in group.reasons)


@pytest.mark.parametrize(
    ("target", "prunable"),
    [([1, 1, 1, 1], True), ([2, 1, 1, 1], True), ([1, 8, 1, 1], False)],
)
def test_expand_keeps_channels_where_its_target_is_one(target, prunable):
    """Expand(conv output, target) then Add: the channels pass when the target leaves the
    channel axis at 1 (a broadcast of the other axes); a target stating the channel count
    would have to change with it, and blocks."""
    nodes, inits = chain(conv("c1", "x", "a", 3, 8))
    nodes += [
        helper.make_node("Expand", ["a", "shape"], ["e"], name="expand"),
        helper.make_node("ReduceMean", ["e"], ["m"], name="mean", axes=[0], keepdims=1),
    ]
    inits.append(const("shape", np.array(target, dtype=np.int64)))
    _check_first_conv(nodes, inits, "m", 8, prunable, "not proven to be 1")


@pytest.mark.parametrize(("source", "prunable"), [("a", True), ("b", False)])
def test_resize_sizes_read_from_its_own_input_keep_the_channels(source, prunable):
    """``F.interpolate(a, size=(16, 16))``: sizes = Concat(Shape(a)[0:2], [16, 16]) counts a's
    own channels at run time, so they stay prunable. Sizes counting another layer's channels
    (b: 8 channels of its own group) would not follow a's pruning: a is blocked."""
    nodes, inits = chain(conv("c1", "x", "a", 3, 8), conv("c2", "x", "b", 3, 8, seed=2))
    nodes += [
        helper.make_node("Shape", [source], ["s"], name="shape", end=2),
        helper.make_node("Concat", ["s", "hw"], ["sizes"], name="cat", axis=0),
        helper.make_node("Resize", ["a", "", "", "sizes"], ["r"], name="resize", mode="nearest"),
    ]
    inits.append(const("hw", np.array([16, 16], dtype=np.int64)))
    _check_first_conv(nodes, inits, "r", 16, prunable, "shape computation")


def _packed_parts_model(parts_index_rank=0, tokens=4, dim=6, width=8):
    """x[N, T, D] -> MatMul [D, 3E] -> Reshape [N, T, 3, E] -> Gather part 0/1/2 (axis 2)
    -> q * k + v -> MatMul [E, D] (the nn.MultiheadAttention packed in-projection)."""
    indices = [np.array(p if parts_index_rank == 0 else [p], np.int64) for p in range(3)]
    nodes = [
        helper.make_node("MatMul", ["x", "in.w"], ["packed"], name="in_proj"),
        helper.make_node("Reshape", ["packed", "parts_shape"], ["parts"], name="to_parts"),
        *(
            helper.make_node("Gather", ["parts", f"i{p}"], [f"part{p}"], name=f"g{p}", axis=2)
            for p in range(3)
        ),
        helper.make_node("Mul", ["part0", "part1"], ["qk"], name="qk"),
        helper.make_node("Add", ["qk", "part2"], ["mixed"], name="mix"),
        helper.make_node("MatMul", ["mixed", "out.w"], ["out"], name="out_proj"),
    ]
    inits = [
        weights("in.w", (dim, 3 * width), 1),
        weights("out.w", (width, dim), 2),
        const("parts_shape", np.array([0, tokens, 3, width], np.int64)),
        *(const(f"i{p}", index) for p, index in enumerate(indices)),
    ]
    out_shape = ["N", tokens, dim] if parts_index_rank == 0 else ["N", tokens, 1, dim]
    return make_model(nodes, [tensor("x", ["N", tokens, dim])], [tensor("out", out_shape)], inits)


@pytest.mark.parametrize("index_rank", [0, 1])
def test_gather_of_packed_parts_ties_channel_c_of_every_part(index_rank):
    analysis = analyze(_packed_parts_model(index_rank))
    group = groups_by_source(analysis)[("in_proj",)]
    # 24 output channels of the packed projection, tied three by three: 8 units of width 3
    assert group.prunable and group.size == 8 and group.width == 3
    pruned = assert_mask_equivalent(analysis, {int(c) for c in group.clusters[:3]})
    shapes = {i.name: tuple(i.dims) for i in pruned.graph.initializer}
    assert shapes["in.w"] == (6, 15) and shapes["out.w"] == (5, 6)
    assert_mask_equivalent(analysis, random_removal(analysis, seed=1))


def test_gather_of_one_channel_still_blocks():
    """Picking channel 2 of a conv output would shift when earlier channels go: blocked."""
    nodes, inits = chain(conv("c1", "x", "a", 3, 8))
    nodes += [
        helper.make_node("Gather", ["a", "two"], ["picked"], name="pick", axis=1),
        helper.make_node("Unsqueeze", ["picked", "ax1"], ["out"], name="unsq"),
    ]
    inits += [const("two", np.array(2, np.int64)), const("ax1", np.array([1], np.int64))]
    analysis = analyze(build(nodes, inits, out_shape=(1, 1, 8, 8)))
    group = groups_by_source(analysis)[("c1",)]
    assert not group.prunable
    assert any("selects along a channel axis" in r for r in group.reasons), group.reasons


def _channel_shuffle_model(width=8, spatial=4):
    """Two convs -> Concat -> channel shuffle (Reshape [N, 2, C, H, W] -> Transpose ->
    Reshape [N, 2C, H, W]) -> conv (ShuffleNet's unit ending)."""
    nodes, inits = chain(
        conv("left", "x", "l", 3, width), conv("right", "x", "r", 3, width, seed=3)
    )
    nodes += [
        helper.make_node("Concat", ["l", "r"], ["both"], name="cat", axis=1),
        helper.make_node("Reshape", ["both", "split_shape"], ["split"], name="to_groups"),
        helper.make_node("Transpose", ["split"], ["swapped"], name="shuffle", perm=[0, 2, 1, 3, 4]),
        helper.make_node("Reshape", ["swapped", "merge_shape"], ["shuffled"], name="merge"),
        helper.make_node("Conv", ["shuffled", "last.w"], ["out"], name="last"),
    ]
    inits += [
        const("split_shape", np.array([0, 2, width, spatial, spatial], np.int64)),
        const("merge_shape", np.array([0, 2 * width, spatial, spatial], np.int64)),
        weights("last.w", (4, 2 * width, 1, 1), 9),
    ]
    return build(
        nodes, inits, in_shape=(1, 3, spatial, spatial), out_shape=(1, 4, spatial, spatial)
    )


def test_channel_shuffle_ties_channel_i_of_both_branches():
    """Without a tie the [2, C] split is not rectangular under any removal (blocked before);
    the fallback tie prunes channel i of both branches together."""
    analysis = analyze(_channel_shuffle_model())
    group = groups_by_source(analysis)[("left", "right")]
    assert group.prunable and group.size == 8 and group.width == 1  # one channel per conv
    pruned = assert_mask_equivalent(analysis, {int(c) for c in group.clusters[:3]})
    shapes = {i.name: tuple(i.dims) for i in pruned.graph.initializer}
    assert shapes["left.w"] == (5, 3, 3, 3) and shapes["last.w"] == (4, 10, 1, 1)
    assert_mask_equivalent(analysis, random_removal(analysis, seed=2))


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space_prunes_whole_blocks_of_input_channels(mode):
    """Conv [C·4 channels] -> DepthToSpace(2) -> conv: output channel c of the pixel shuffle
    takes 4 input channels (k = (i·2 + j)·C + c in DCR, c·4 + i·2 + j in CRD), pruned together."""
    nodes, inits = chain(conv("c1", "x", "a", 3, 12))
    nodes += [
        helper.make_node("DepthToSpace", ["a"], ["d"], name="d2s", blocksize=2, mode=mode),
        helper.make_node("Conv", ["d", "c2.w"], ["out"], name="c2"),
    ]
    inits.append(weights("c2.w", (4, 3, 1, 1), 5))
    analysis = analyze(build(nodes, inits, out_shape=(1, 4, 16, 16)))
    group = groups_by_source(analysis)[("c1",)]
    assert group.prunable and group.size == 3 and group.width == 4
    pruned = assert_mask_equivalent(analysis, {int(group.clusters[1])})
    shapes = {i.name: tuple(i.dims) for i in pruned.graph.initializer}
    assert shapes["c1.w"] == (8, 3, 3, 3) and shapes["c2.w"] == (4, 2, 1, 1)


def test_space_to_depth_carries_each_channel_to_its_blocks():
    nodes, inits = chain(conv("c1", "x", "a", 3, 6))
    nodes += [
        helper.make_node("SpaceToDepth", ["a"], ["s"], name="s2d", blocksize=2),
        helper.make_node("Conv", ["s", "c2.w"], ["out"], name="c2"),
    ]
    inits.append(weights("c2.w", (4, 24, 1, 1), 5))
    analysis = analyze(build(nodes, inits, out_shape=(1, 4, 4, 4)))
    group = groups_by_source(analysis)[("c1",)]
    assert group.prunable and group.size == 6
    pruned = assert_mask_equivalent(analysis, {int(c) for c in group.clusters[:2]})
    shapes = {i.name: tuple(i.dims) for i in pruned.graph.initializer}
    assert shapes["c1.w"] == (4, 3, 3, 3) and shapes["c2.w"] == (4, 16, 1, 1)


def _conv_op_conv(op_nodes, extra_inits, cin2, out_shape, inputs=()):
    nodes, inits = chain(conv("c1", "x", "a", 3, 6))
    nodes += [*op_nodes, helper.make_node("Conv", ["t", "c2.w"], ["out"], name="c2")]
    inits += [*extra_inits, weights("c2.w", (4, cin2, 1, 1), 5)]
    graph_inputs = [tensor("x", ["N", 3, 8, 8]), *inputs]
    return make_model(nodes, graph_inputs, [tensor("out", ["N", *out_shape[1:]])], inits)


def test_tile_repeats_channels_with_their_labels():
    """Tile(x, [1, 2, 1, 2]): every channel appears twice on the channel axis (and the
    width doubles); pruning channel c removes both copies."""
    model = _conv_op_conv(
        [helper.make_node("Tile", ["a", "reps"], ["t"], name="tile")],
        [const("reps", np.array([1, 2, 1, 2], np.int64))],
        12,
        (1, 4, 8, 16),
    )
    analysis = analyze(model)
    group = groups_by_source(analysis)[("c1",)]
    assert group.prunable and group.size == 6
    pruned = assert_mask_equivalent(analysis, {int(c) for c in group.clusters[:2]})
    assert {i.name: tuple(i.dims) for i in pruned.graph.initializer}["c2.w"] == (4, 8, 1, 1)


@pytest.mark.parametrize(("channel_repeat", "prunable"), [(1, True), (2, False)])
def test_a_tiled_constant_is_sliced_when_it_repeats_once_along_the_channels(
    channel_repeat, prunable
):
    """conv + Tile(pos[1, C/r, 1, 8], [1, r, 8, 1]) (a learned position table repeated over
    the rows): sliced with the channels when r = 1; repeats along the channels block."""
    model = _conv_op_conv(
        [
            helper.make_node("Tile", ["pos", "reps"], ["pos_tiled"], name="tile"),
            helper.make_node("Add", ["a", "pos_tiled"], ["t"], name="add_pos"),
        ],
        [
            weights("pos", (1, 6 // channel_repeat, 1, 8), 3),
            const("reps", np.array([1, channel_repeat, 8, 1], np.int64)),
        ],
        6,
        (1, 4, 8, 8),
    )
    analysis = analyze(model)
    group = groups_by_source(analysis)[("c1",)]
    assert group.prunable == prunable
    if prunable:
        pruned = assert_mask_equivalent(analysis, {int(c) for c in group.clusters[:2]})
        assert {i.name: tuple(i.dims) for i in pruned.graph.initializer}["pos"] == (1, 4, 1, 8)
    else:
        assert any("repeats along a channel axis" in r for r in group.reasons), group.reasons


def test_a_constant_repeated_over_a_run_time_batch_is_sliced():
    """DETR: weight.unsqueeze(0).repeat(B, 1, 1) -> Tile(const, Concat(Shape(x)[0], 1, 1, 1))."""
    model = _conv_op_conv(
        [
            helper.make_node("Shape", ["x"], ["x_shape"], name="shape", end=1),
            helper.make_node("Concat", ["x_shape", "ones"], ["reps"], name="reps", axis=0),
            helper.make_node("Tile", ["pos", "reps"], ["pos_tiled"], name="tile"),
            helper.make_node("Add", ["a", "pos_tiled"], ["t"], name="add_pos"),
        ],
        [weights("pos", (1, 6, 8, 8), 3), const("ones", np.array([1, 1, 1], np.int64))],
        6,
        (1, 4, 8, 8),
    )
    analysis = analyze(model)
    group = groups_by_source(analysis)[("c1",)]
    assert group.prunable, group.reasons
    pruned = assert_mask_equivalent(analysis, {int(c) for c in group.clusters[:2]})
    assert {i.name: tuple(i.dims) for i in pruned.graph.initializer}["pos"] == (1, 4, 8, 8)


def test_grid_sample_and_roi_align_pass_channels():
    grid = _conv_op_conv(
        [helper.make_node("GridSample", ["a", "grid"], ["t"], name="sample", align_corners=1)],
        [],
        6,
        (1, 4, 5, 5),
        inputs=[tensor("grid", ["N", 5, 5, 2])],
    )
    rois = _conv_op_conv(
        [
            helper.make_node(
                "RoiAlign",
                ["a", "boxes", "batch"],
                ["t"],
                name="roi",
                output_height=3,
                output_width=3,
                sampling_ratio=2,
            )
        ],
        [
            const("boxes", np.array([[0, 0, 4, 4], [2, 1, 7, 6]], np.float32)),
            const("batch", np.array([0, 0], np.int64)),
        ],
        6,
        (2, 4, 3, 3),
    )
    for model in (grid, rois):
        analysis = analyze(model)
        group = groups_by_source(analysis)[("c1",)]
        assert group.prunable and group.size == 6
        assert_mask_equivalent(analysis, {int(c) for c in group.clusters[1:4]})


def _lrn_model(size=3):
    nodes, inits = chain(conv("c1", "x", "a", 3, 8))
    nodes.append(
        helper.make_node("LRN", ["a"], ["n"], name="lrn", size=size, alpha=0.5, beta=0.75, bias=1.0)
    )
    c2, c2_inits = conv("c2", "n", "b", 8, 6, seed=3)
    h_nodes, h_inits = head("b", 6, 8)
    return build([*nodes, c2, *h_nodes], inits + c2_inits + h_inits)


def test_lrn_channels_are_prunable_as_statistics_coupled():
    """Conv -> LRN(size 3) -> Conv: the first conv's channels feed the cross-channel window
    (valid, not mask-equivalent); blocked with the reason when norm statistics are not
    allowed. The pruned model equals the same network built from the kept channels alone:
    the LRN then normalizes each kept channel by its kept neighbours."""
    model = _lrn_model()
    blocked = groups_by_source(analyze(model, allow_norm_stats=False))[("c1",)]
    assert not blocked.prunable and any(
        "LRN 'lrn' cross-channel window" in r for r in blocked.reasons
    )
    analysis = analyze(model, allow_norm_stats=True)
    group = groups_by_source(analysis)[("c1",)]
    assert group.prunable and group.stats_coupled
    _assert_equals_kept_network(model, analysis, (1, 4, 5))


def test_a_weight_with_one_batch_slice_is_a_dense_layer():
    """MatMul by a constant [1, K, N] (an unsqueezed Linear weight): its N output units are
    prunable like a [K, N] layer's, and its K inputs follow the layer before."""
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="first"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "w2"], ["m"], name="second"),
        helper.make_node("Relu", ["m"], ["s"], name="relu2"),
        helper.make_node("ReduceMean", ["s"], ["p"], name="pool", axes=[1], keepdims=0),
        helper.make_node("Gemm", ["p", "fc"], ["out"], name="fc"),
    ]
    model = make_model(
        nodes,
        [tensor("x", ["N", 3, 4])],
        [tensor("out", ["N", 2])],
        [weights("w1", (1, 4, 6), 1), weights("w2", (1, 6, 5), 2), weights("fc", (5, 2), 3)],
    )
    analysis = analyze(model)
    groups = groups_by_source(analysis)
    assert groups[("first",)].prunable and groups[("second",)].prunable
    for seed in range(3):
        assert_mask_equivalent(analysis, random_removal(analysis, seed=seed))


def _normalized_model(node, opset=17, extra_inits=()):
    """Conv(3→8) → ``node`` (input 'a', output 'n') → Conv(8→6) → head."""
    nodes, inits = chain(conv("c1", "x", "a", 3, 8))
    c2, c2_inits = conv("c2", "n", "b", 8, 6, seed=3)
    h_nodes, h_inits = head("b", 6, 8)
    model = build([*nodes, node, c2, *h_nodes], inits + list(extra_inits) + c2_inits + h_inits,
                  opset=opset)  # fmt: skip
    if opset >= 21:
        model.ir_version = 10
    return model


def _assert_equals_kept_network(model, analysis, removed_channels, sliced=()):
    """The pruned model computes what the same network built from the kept channels alone
    computes (``sliced``: other initializers cut along axis 0 with c1's channels)."""
    from onnxprune.rewrite import apply_removal
    from tests.oracle import session

    group = groups_by_source(analysis)[("c1",)]
    removed = {int(c) for c in group.clusters[list(removed_channels)]}
    pruned = apply_removal(analysis, removed)
    onnx.checker.check_model(pruned, full_check=True)
    kept = [c for c in range(8) if c not in removed_channels]
    reference = onnx.ModelProto()
    reference.CopyFrom(model)
    for init in reference.graph.initializer:
        value = numpy_helper.to_array(init)
        if init.name in ("c1.w", "c1.b", *sliced):
            init.CopyFrom(numpy_helper.from_array(value[kept], init.name))
        elif init.name == "c2.w":
            init.CopyFrom(numpy_helper.from_array(value[:, kept], init.name))
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    (expected,) = session(reference).run(None, {"x": x})
    (actual,) = session(pruned).run(None, {"x": x})
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("node", "opset"),
    [
        (helper.make_node("LpNormalization", ["a"], ["n"], name="norm", axis=-1, p=1), 17),
        (helper.make_node("LpNormalization", ["a"], ["n"], name="norm", axis=2, p=2), 17),
        (
            helper.make_node(
                "MeanVarianceNormalization", ["a"], ["n"], name="norm", axes=[0, 2, 3]
            ),
            13,
        ),
        (helper.make_node("MeanVarianceNormalization", ["a"], ["n"], name="norm", axes=[2, 3]), 9),
    ],
)
def test_normalization_within_each_channel_is_mask_equivalent(node, opset):
    """LpNormalization along a spatial axis and MeanVarianceNormalization over axes without
    the channel axis (its default 0, 2, 3) normalize every channel by its own values."""
    analysis = analyze(_normalized_model(node, opset), allow_norm_stats=False)
    group = groups_by_source(analysis)[("c1",)]
    assert group.prunable and not group.stats_coupled
    for seed in range(3):
        assert_mask_equivalent(analysis, random_removal(analysis, seed=seed))


@pytest.mark.parametrize(
    ("node", "opset", "params"),
    [
        (helper.make_node("LpNormalization", ["a"], ["n"], name="norm", axis=1, p=2), 17, ()),
        (
            helper.make_node(
                "MeanVarianceNormalization", ["a"], ["n"], name="norm", axes=[1, 2, 3]
            ),
            13,
            (),
        ),
        (
            helper.make_node("RMSNormalization", ["a", "rms.s"], ["n"], name="norm", axis=1),
            23,
            (("rms.s", (8, 1, 1)),),
        ),
    ],
)
def test_normalization_over_channels_is_statistics_coupled(node, opset, params):
    """Normalized over the channel axis (L2-normalized features, MVN across channels, RMSNorm
    over [C, H, W]): blocked with the reason when norm statistics are not allowed; allowed, the
    pruned model equals the network built from the kept channels (scale sliced with them)."""
    extra = [weights(name, shape, 5) for name, shape in params]
    model = _normalized_model(node, opset, extra)
    blocked = groups_by_source(analyze(model, allow_norm_stats=False))[("c1",)]
    assert not blocked.prunable and any(
        f"{node.op_type} 'norm' statistics" in r for r in blocked.reasons
    )
    analysis = analyze(model, allow_norm_stats=True)
    group = groups_by_source(analysis)[("c1",)]
    assert group.prunable and group.stats_coupled
    _assert_equals_kept_network(model, analysis, (1, 4, 5), sliced=[name for name, _ in params])
