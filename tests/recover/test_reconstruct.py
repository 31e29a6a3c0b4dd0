"""Whole-network reconstruction: exact refits, depthwise per-channel refit, block-output
targets, and no layer's calibration error grows."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprune.calibrate.session import ExposedRunner
from onnxprune.errors import InputError
from onnxprune.recover import make_recovery
from onnxprune.recover.reconstruct import Fold, _probe_fold, find_fold, plan_fits
from onnxprune.recover.registry import RecoverySettings
from onnxprune.rewrite import apply_removal
from tests.calibrate.tiny import analysed, conv_chain, gemm_chain, run, source_clusters

SHAPE = [1, 3, 8, 8]


def residual_block(seed: int = 0) -> onnx.ModelProto:
    """x → Conv c0 (3×3, 3→5) → Relu → Conv c1 (1×1, 5→6) → Relu → h; h → Conv a (1×1, 6→8)
    → Relu → depthwise Conv dw (3×3) → Relu → Conv p (1×1, 8→6) → Add(·, h) → s → Conv head
    (3×3, 6→4) → y: a stem and an inverted residual block."""
    rng = np.random.default_rng(seed)
    inits = {
        "w0": 0.5 * rng.normal(size=(5, 3, 3, 3)),
        "w1": 0.5 * rng.normal(size=(6, 5, 1, 1)),
        "wa": 0.6 * rng.normal(size=(8, 6, 1, 1)),
        "ba": 0.2 * rng.normal(size=8),
        "wd": 0.4 * rng.normal(size=(8, 1, 3, 3)),
        "bd": 0.2 * rng.normal(size=8),
        "wp": 0.4 * rng.normal(size=(6, 8, 1, 1)),
        "bp": 0.1 * rng.normal(size=6),
        "wh": 0.3 * rng.normal(size=(4, 6, 3, 3)),
    }
    conv = helper.make_node
    nodes = [
        conv("Conv", ["x", "w0"], ["c0"], name="c0", pads=[1] * 4),
        conv("Relu", ["c0"], ["r0"], name="relu_0"),
        conv("Conv", ["r0", "w1"], ["c1"], name="c1"),
        conv("Relu", ["c1"], ["h"], name="relu_1"),
        conv("Conv", ["h", "wa", "ba"], ["a"], name="a"),
        conv("Relu", ["a"], ["ra"], name="relu_a"),
        conv("Conv", ["ra", "wd", "bd"], ["d"], name="dw", group=8, pads=[1] * 4),
        conv("Relu", ["d"], ["rd"], name="relu_d"),
        conv("Conv", ["rd", "wp", "bp"], ["p"], name="p"),
        conv("Add", ["p", "h"], ["s"], name="add"),
        conv("Conv", ["s", "wh"], ["y"], name="head", pads=[1] * 4),
    ]
    graph = helper.make_graph(
        nodes,
        "block",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 8, 8])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.fixture(scope="module")
def block():
    model = residual_block()
    analysis = analysed(model, {"x": SHAPE})
    rng = np.random.default_rng(3)
    calib = rng.normal(size=(24, 3, 8, 8)).astype(np.float32)
    removed = np.concatenate(
        [source_clusters(analysis, "c0")[[1, 3]], source_clusters(analysis, "a")[[1, 4, 6]]]
    )
    pruned = apply_removal(analysis, removed)
    return model, analysis, removed, pruned, calib


def _recover(block, **options):
    _, analysis, removed, pruned, calib = block
    settings = {"positions": None, "rows_per_column": None, "ridge": 1e-6, **options}
    recovered = make_recovery("reconstruct", analysis, {"x": calib}, **settings)(
        analysis, removed, pruned
    )
    onnx.checker.check_model(recovered, full_check=True)
    return recovered


KEPT = [0, 2, 3, 5, 7]  # channels of a / dw left by the removal of the fixture


def _error(model, reference, x, name="y", channels=None) -> float:
    elem = {name: TensorProto.FLOAT}
    ours = ExposedRunner(model, [name], elem)({"x": x})[name]
    theirs = ExposedRunner(reference, [name], elem)({"x": x})[name]
    theirs = theirs if channels is None else theirs[:, channels]
    return float(np.square(ours - theirs).sum())


def test_exact_when_the_removed_channels_are_scaled_copies():
    rng = np.random.default_rng(0)
    w1, b1 = 0.4 * rng.normal(size=(6, 3, 3, 3)), 0.3 * rng.normal(size=6)
    for copy, (source, factor) in enumerate([(0, 2.0), (1, 0.5), (2, 3.0)], start=3):
        w1[copy], b1[copy] = factor * w1[source], factor * b1[source]
    model = conv_chain(w1, b1, 0.3 * rng.normal(size=(4, 6, 3, 3)), 0.1 * rng.normal(size=4))
    calib = rng.normal(size=(16, 3, 8, 8)).astype(np.float32)
    test = rng.normal(size=(8, 3, 8, 8)).astype(np.float32)
    analysis = analysed(model, {"x": SHAPE})
    removed = source_clusters(analysis, "a")[[3, 4, 5]]
    pruned = apply_removal(analysis, removed)
    recovered = make_recovery("reconstruct", analysis, {"x": calib}, ridge=1e-9, positions=None)(
        analysis, removed, pruned
    )
    assert np.abs(run(model, test) - run(pruned, test)).max() > 0.1
    assert np.abs(run(model, test) - run(recovered, test)).max() < 1e-4


@pytest.mark.parametrize("matmul", [False, True])
def test_exact_for_gemm_and_matmul_when_removed_features_are_combinations(matmul):
    rng = np.random.default_rng(1)
    w1, b1 = rng.normal(size=(6, 4)), rng.normal(size=6)
    w1[4], b1[4] = w1[0] + 2 * w1[1], b1[0] + 2 * b1[1]
    w1[5], b1[5] = w1[2] - w1[3] + 0.5 * w1[0], b1[2] - b1[3] + 0.5 * b1[0]
    model = gemm_chain(w1, b1, rng.normal(size=(6, 3)), matmul=matmul)
    calib = rng.normal(size=(32, 4)).astype(np.float32)
    test = rng.normal(size=(8, 4)).astype(np.float32)
    analysis = analysed(model, {"x": [1, 4]})
    removed = source_clusters(analysis, "a")[[4, 5]]
    pruned = apply_removal(analysis, removed)
    recovered = make_recovery("reconstruct", analysis, {"x": calib}, ridge=1e-9)(
        analysis, removed, pruned
    )
    onnx.checker.check_model(recovered, full_check=True)
    assert np.abs(run(model, test) - run(recovered, test)).max() < 1e-3


def test_plan_covers_every_layer_with_levels_and_the_block_target(block):
    _, analysis, removed, pruned, _ = block
    plans = {p.fit.node: p for p in plan_fits(analysis, removed, pruned, RecoverySettings(), print)}
    order = ("c0", "c1", "a", "dw", "p", "head")
    assert set(plans) == set(order)
    assert [plans[n].level for n in order] == [0, 1, 2, 3, 4, 5]
    assert plans["dw"].fit.groups == 5 and plans["dw"].columns == 9
    assert (plans["p"].target, plans["p"].other) == ("s", "h")
    assert plans["head"].other is None and plans["a"].target == "a"


def test_depthwise_conv_is_refitted_per_channel(block):
    _, _, _, pruned, _ = block
    recovered = _recover(block, block_output=False)
    weights = {init.name: numpy_helper.to_array(init) for init in recovered.graph.initializer}
    node = next(n for n in recovered.graph.node if n.name == "dw")
    before = {init.name: numpy_helper.to_array(init) for init in pruned.graph.initializer}
    old = before[next(n for n in pruned.graph.node if n.name == "dw").input[1]]
    new = weights[node.input[1]]
    assert new.shape == old.shape == (5, 1, 3, 3)
    assert not np.allclose(new, old)


def test_reconstruction_beats_the_pruned_model_and_lsq(block):
    model, analysis, removed, pruned, calib = block
    test = np.random.default_rng(9).normal(size=(16, 3, 8, 8)).astype(np.float32)
    lsq = make_recovery("lsq", analysis, {"x": calib}, positions=None)(analysis, removed, pruned)
    recovered = _recover(block)
    assert (
        _error(recovered, model, calib) < _error(lsq, model, calib) < _error(pruned, model, calib)
    )
    assert _error(recovered, model, test) < _error(pruned, model, test)


def test_block_output_target_matches_the_residual_stream_better(block):
    model, *_, calib = block
    plain = _recover(block, block_output=False)
    blocked = _recover(block, block_output=True)
    assert _error(blocked, model, calib, "s") < _error(plain, model, calib, "s")


def _with_layer_from(model: onnx.ModelProto, source: onnx.ModelProto, node_name: str):
    """``model`` with the weight and bias of ``node_name`` taken from ``source``."""
    mixed = onnx.ModelProto()
    mixed.CopyFrom(model)
    arrays = {init.name: init for init in source.graph.initializer}
    giver = next(n for n in source.graph.node if n.name == node_name)
    taker = next(n for n in mixed.graph.node if n.name == node_name)
    for position in (1, 2):
        tensor = onnx.TensorProto()
        if position < len(giver.input):
            tensor.CopyFrom(arrays[giver.input[position]])
        elif position < len(taker.input):  # the refit added a bias: before, it was zero
            rows = numpy_helper.to_array(arrays[giver.input[1]]).shape[0]
            tensor = numpy_helper.from_array(np.zeros(rows, np.float32))
        else:
            continue
        tensor.name = f"{node_name}__before_{position}"
        mixed.graph.initializer.append(tensor)
        taker.input[position] = tensor.name
    return mixed


@pytest.mark.parametrize("node", ["c1", "a", "dw", "p"])
def test_no_layer_calibration_error_grows(block, node):
    """With its upstream as recovered, each layer's refit output is at least as close to its
    target on the calibration data as the layer before the refit."""
    model, _, _, pruned, calib = block
    recovered = _recover(block, ridge=1.0)  # a strong ridge: the solution is not exact
    before = _with_layer_from(recovered, pruned, node)
    output, kept = {"c1": ("c1", None), "a": ("a", KEPT), "dw": ("d", KEPT), "p": ("s", None)}[node]
    after_error = _error(recovered, model, calib, output, kept)
    assert after_error <= _error(before, model, calib, output, kept) + 1e-6


def _token_mlp(sequence_first: bool, folded: bool = False) -> onnx.ModelProto:
    """x [N, T, 4] -> MatMul a -> Relu -> MatMul b -> y [N, T, 3]; ``sequence_first``: the
    MatMuls run on [T, N, C] between two Transposes (nn.MultiheadAttention's projections in
    a TorchScript export); ``folded``: b runs on the rows [T·N, 6] (its out-projection), or
    on [N·T, 6] when not sequence-first."""
    rng = np.random.default_rng(2)
    inits = {
        "w1": rng.normal(size=(4, 6)),
        "w2": rng.normal(size=(6, 3)),
        "rows": np.array([-1, 6]),
        "back": np.array([5, -1, 3]) if sequence_first else np.array([-1, 5, 3]),
    }
    node = helper.make_node
    source, result = ("xt", "yt") if sequence_first else ("x", "y")
    nodes = [
        node("MatMul", [source, "w1"], ["h"], name="a"),
        node("Relu", ["h"], ["r"], name="relu"),
    ]
    if folded:
        nodes += [
            node("Reshape", ["r", "rows"], ["r2"], name="to_rows"),
            node("MatMul", ["r2", "w2"], ["y2"], name="b"),
            node("Reshape", ["y2", "back"], [result], name="from_rows"),
        ]
    else:
        nodes.append(node("MatMul", ["r", "w2"], [result], name="b"))
    if sequence_first:
        nodes.insert(0, node("Transpose", ["x"], ["xt"], name="to_seq", perm=[1, 0, 2]))
        nodes.append(node("Transpose", ["yt"], ["y"], name="to_batch", perm=[1, 0, 2]))
    graph = helper.make_graph(
        nodes,
        "tokens",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5, 3])],
        [
            numpy_helper.from_array(v.astype(np.float32 if v.dtype.kind == "f" else np.int64), k)
            for k, v in inits.items()
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _reconstructed(model, messages=None):
    analysis = analysed(model, {"x": [1, 5, 4]})
    removed = source_clusters(analysis, "a")[[1, 4]]
    pruned = apply_removal(analysis, removed)
    calib = np.random.default_rng(5).normal(size=(41, 5, 4)).astype(np.float32)
    recovered = make_recovery(
        "reconstruct", analysis, {"x": calib}, batch_size=32, positions=None,
        rows_per_column=None, progress=(messages.append if messages is not None else None),
    )(analysis, removed, pruned)  # fmt: skip
    return pruned, recovered


def test_sequence_first_layers_are_refitted_like_batch_first_ones():
    """The targets' batch is axis 1 there (and the last calibration batch is smaller: its
    width once ended reconstruction in a numpy error); the refit must equal the batch-first
    model's."""
    test = np.random.default_rng(6).normal(size=(3, 5, 4)).astype(np.float32)
    pruned, recovered = _reconstructed(_token_mlp(sequence_first=True))
    _, reference = _reconstructed(_token_mlp(sequence_first=False))
    assert np.abs(run(recovered, test) - run(pruned, test)).max() > 1e-3
    np.testing.assert_allclose(run(recovered, test), run(reference, test), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("sequence_first", [True, False])
def test_a_layer_whose_rows_fold_the_batch_is_refitted_like_an_unfolded_one(sequence_first):
    """[T·N, C] (nn.MultiheadAttention's out-projection) and [N·T, C] rows: the fold is read
    from one run on the first sample, and the refit equals the batch-first model's."""
    messages: list[str] = []
    test = np.random.default_rng(7).normal(size=(3, 5, 4)).astype(np.float32)
    pruned, recovered = _reconstructed(_token_mlp(sequence_first, folded=True), messages)
    _, reference = _reconstructed(_token_mlp(sequence_first=False))
    assert not any("left as it is" in m for m in messages), messages
    assert np.abs(run(recovered, test) - run(pruned, test)).max() > 1e-3
    np.testing.assert_allclose(run(recovered, test), run(reference, test), rtol=1e-4, atol=1e-4)


def test_find_fold_tells_batch_major_from_sample_major_rows():
    rng = np.random.default_rng(8)
    samples = rng.normal(size=(4, 3, 2))  # 4 samples, 3 rows each, 2 channels
    batch_major = samples.reshape(12, 2)
    sample_major = samples.transpose(1, 0, 2).reshape(12, 2)
    assert find_fold(batch_major, samples[0], 4) == Fold(True, 3)
    assert find_fold(sample_major, samples[0], 4) == Fold(False, 3)
    np.testing.assert_array_equal(Fold(True, 3).unfold(batch_major), samples)
    np.testing.assert_array_equal(Fold(False, 3).unfold(sample_major), samples)


def test_a_model_that_cannot_run_one_sample_has_no_fold():
    """A fixed-batch model fails on the single-sample probe: the layer keeps its weights
    (no fold), the failure is not taken for a bug, and the probe runs once per batch."""
    calls = []

    def runner(batch):
        calls.append(batch)
        raise InputError("the model's batch is fixed at 4")

    rows = np.random.default_rng(10).normal(size=(12, 2))
    single: list = []
    batch = {"x": np.zeros((4, 3))}
    assert _probe_fold(runner, batch, single, "t", rows, 4) is None
    assert _probe_fold(runner, batch, single, "u", rows, 4) is None
    assert len(calls) == 1


def test_find_fold_declines_rows_that_do_not_tell_the_samples_apart():
    same = np.ones((12, 2))
    assert find_fold(same, np.ones((3, 2)), 4) is None  # both folds fit
    rows = np.random.default_rng(9).normal(size=(12, 2))
    assert find_fold(rows, np.zeros((3, 2)), 4) is None  # neither fits
    assert find_fold(rows, rows, 1) is None  # one sample: nothing to tell
    assert find_fold(rows, rows[:5], 4) is None  # 12 rows are not 4 samples of 5
