"""Distillation recovery on the digits MobileNetV2: loss goes down, graph unchanged, seeded."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from onnx import numpy_helper

from onnxprune.allocate import AllocationPolicy, select_removal
from onnxprune.analysis import analyze
from onnxprune.calibrate.labelled import load_samples
from onnxprune.errors import InputError
from onnxprune.importance import score_clusters
from onnxprune.passes.prepare import prepare
from onnxprune.recover.distill import DistillReport, distill, make_distill_recovery
from onnxprune.rewrite import apply_removal, check_model

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"
SHAPES = {"input": [1, 1, 32, 32]}


@pytest.fixture(scope="module")
def pruned_mbv2():
    _, prepared, _ = prepare(DIGITS / "digits_mbv2.onnx", SHAPES)
    analysis = analyze(prepared, SHAPES)
    removed = select_removal(analysis, score_clusters(analysis, "l1"), AllocationPolicy(0.3))
    calibration = {"input": np.load(DIGITS / "digits_calib.npz")["input"][:96]}
    return analysis, removed, apply_removal(analysis, removed), calibration


def _weights(model) -> dict[str, np.ndarray]:
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


@pytest.mark.slow
def test_distill_lowers_heldout_loss_and_keeps_the_graph(pruned_mbv2) -> None:
    analysis, _, pruned, calibration = pruned_mbv2
    samples = load_samples(calibration, analysis.model, max_samples=None)
    report = DistillReport()
    options = dict(steps=20, batch_size=16, lr=1e-3, eval_every=10, patience=5, holdout=0.25)
    result = distill(analysis.model, pruned, samples, report=report, **options)
    check_model(result)
    assert report.steps == 20 and report.steps_per_second > 0
    assert report.heldout_after < report.heldout_before
    assert [(n.op_type, list(n.input), list(n.output)) for n in result.graph.node] == [
        (n.op_type, list(n.input), list(n.output)) for n in pruned.graph.node
    ]
    before, after = _weights(pruned), _weights(result)
    assert before.keys() == after.keys()
    assert all(before[k].shape == after[k].shape for k in before)
    assert any(not np.array_equal(before[k], after[k]) for k in before)
    again = distill(analysis.model, pruned, samples, **options)
    assert all(np.array_equal(after[k], v) for k, v in _weights(again).items())


@pytest.mark.slow
def test_make_distill_recovery_contract(pruned_mbv2) -> None:
    analysis, removed, pruned, calibration = pruned_mbv2
    messages: list[str] = []
    recover = make_distill_recovery(
        analysis, calibration, base="lsq", steps=4, eval_every=2, progress=messages.append
    )
    assert recover(analysis, [], pruned) is pruned
    model = recover(analysis, removed, pruned)
    check_model(model)
    assert recover.report.steps >= 2
    assert any("distill step" in message for message in messages)
    # Never worse on held-out data than where it started (the start is kept otherwise).
    assert recover.report.heldout_after <= recover.report.heldout_before


def test_distill_recovery_needs_data() -> None:
    with pytest.raises(InputError, match="calibration data"):
        make_distill_recovery(None, None)
    with pytest.raises(InputError, match="base"):
        make_distill_recovery(None, {"input": np.zeros((1, 1, 32, 32))}, base="bias")


def _mlp(w1: np.ndarray, w2: np.ndarray, batch: int | str = "n", label_first: bool = False):
    """x → Gemm → Relu → Gemm → y; ``label_first``: an int64 output argmax(y) before y (as
    skl2onnx classifiers have)."""
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Gemm", ["x", "w1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Gemm", ["r", "w2"], ["y"], name="fc2"),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 5])]
    if label_first:
        nodes.append(helper.make_node("ArgMax", ["y"], ["label"], axis=1, keepdims=0))
        outputs.insert(0, helper.make_tensor_value_info("label", TensorProto.INT64, [batch]))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 6])],
        outputs,
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("batch", ["n", 8])
def test_distill_with_feature_loss_and_fixed_batch(batch) -> None:
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((6, 7)).astype(np.float32)
    w2 = rng.standard_normal((7, 5)).astype(np.float32)
    original = _mlp(w1, w2, batch)
    student = _mlp(w1 + 0.3 * rng.standard_normal(w1.shape).astype(np.float32), w2, batch)
    samples = load_samples(
        {"x": rng.standard_normal((60, 6)).astype(np.float32)}, original, max_samples=None
    )
    report = DistillReport()
    result = distill(
        original,
        student,
        samples,
        steps=40,
        batch_size=8,
        lr=1e-2,
        features=["h"],
        eval_every=10,
        patience=4,
        report=report,
    )
    assert report.heldout_after < 0.5 * report.heldout_before
    assert _weights(result).keys() == {"w1", "w2"}
    with pytest.raises(InputError, match="feature tensor"):
        distill(original, student, samples, features=["missing"])


def _padded_depthwise(rng: np.random.Generator):
    """x -> Pad -> depthwise Conv (bias) -> Relu -> 1x1 Conv (bias) -> GlobalAveragePool."""
    from onnx import TensorProto, helper

    def value(shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    inits = {
        "pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64),
        "dw": value((4, 1, 3, 3)),
        "dw_b": value(4),
        "pw": value((3, 4, 1, 1)),
        "pw_b": value(3),
    }
    graph = helper.make_graph(
        [
            helper.make_node("Pad", ["x", "pads"], ["padded"], name="pad"),
            helper.make_node("Conv", ["padded", "dw", "dw_b"], ["d"], name="dw_conv", group=4),
            helper.make_node("Relu", ["d"], ["r"], name="relu"),
            helper.make_node("Conv", ["r", "pw", "pw_b"], ["p"], name="pw_conv"),
            helper.make_node("GlobalAveragePool", ["p"], ["g"], name="pool"),
            helper.make_node("Flatten", ["g"], ["y"], name="flatten"),
        ],
        "padded_depthwise",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.fixture(scope="module")
def padded_depthwise():
    rng = np.random.default_rng(3)
    original = _padded_depthwise(rng)
    student = _padded_depthwise(np.random.default_rng(3))
    rng = np.random.default_rng(4)
    for init in student.graph.initializer:
        if init.data_type == 1:
            value = numpy_helper.to_array(init)
            noisy = value + 0.3 * rng.standard_normal(value.shape).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(noisy, init.name))
    samples = load_samples(
        {"x": rng.standard_normal((40, 4, 6, 6)).astype(np.float32)}, original, max_samples=None
    )
    return original, student, samples


@pytest.mark.parametrize(
    ("parameters", "trained"),
    [
        ("all", {"dw", "dw_b", "pw", "pw_b"}),
        ("skip-grouped", {"dw_b", "pw", "pw_b"}),
        ("biases", {"dw_b", "pw_b"}),
    ],
)
def test_distill_parameter_sets(padded_depthwise, parameters, trained) -> None:
    original, student, samples = padded_depthwise
    report = DistillReport()
    options = dict(steps=30, batch_size=8, lr=1e-2, eval_every=10, patience=5, holdout=0.25)
    result = distill(
        original,
        student,
        samples,
        parameters=parameters,
        schedule="cosine",
        report=report,
        **options,
    )
    before, after = _weights(student), _weights(result)
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert changed == trained
    assert report.heldout_after < report.heldout_before
    # The graph that was differentiated had its Pad folded; the result keeps the Pad.
    assert [n.op_type for n in result.graph.node] == [n.op_type for n in student.graph.node]


def test_distill_stops_when_time_is_up(padded_depthwise) -> None:
    original, student, samples = padded_depthwise
    report = DistillReport()
    distill(original, student, samples, steps=50, batch_size=8, max_seconds=0.0, report=report)
    assert report.steps == 1 and len(report.history) == 2


def test_distill_rejects_unknown_settings(padded_depthwise) -> None:
    original, student, samples = padded_depthwise
    with pytest.raises(InputError, match="parameters"):
        distill(original, student, samples, parameters="depthwise")
    with pytest.raises(InputError, match="schedule"):
        distill(original, student, samples, schedule="linear")
    with pytest.raises(InputError, match="distillation loss"):
        distill(original, student, samples, loss="cosine-typo")


def _token_encoder(table: np.ndarray, weight: np.ndarray):
    """ids [n, 5] -> Gather(table) -> MatMul(weight) -> hidden [n, 5, 3] (an embedding model)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "ids"], ["embedded"], name="embed"),
            helper.make_node("MatMul", ["embedded", "weight"], ["hidden"], name="proj"),
        ],
        "encoder",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["n", 5])],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["n", 5, 3])],
        [numpy_helper.from_array(table, "table"), numpy_helper.from_array(weight, "weight")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_distill_mse_on_hidden_states_leaves_lookup_tables() -> None:
    rng = np.random.default_rng(5)
    table = rng.standard_normal((11, 4)).astype(np.float32)
    weight = rng.standard_normal((4, 3)).astype(np.float32)
    original = _token_encoder(table, weight)
    student = _token_encoder(table, weight + 0.5 * rng.standard_normal((4, 3)).astype(np.float32))
    samples = load_samples({"ids": rng.integers(0, 11, (48, 5))}, original, max_samples=None)
    report = DistillReport()
    options = dict(steps=40, batch_size=8, lr=3e-2, eval_every=10, patience=4, holdout=0.25)
    result = distill(original, student, samples, loss="mse", report=report, **options)
    after = _weights(result)
    assert np.array_equal(after["table"], table)  # looked up at run time: never trained
    assert report.heldout_after < 0.5 * report.heldout_before
    # The registered losses state their math; an unknown name lists the known ones.
    from onnxprune.recover.distill_losses import describe_distill_loss, distill_loss_names

    assert {"kl", "mse"} <= set(distill_loss_names())
    assert "mean" in describe_distill_loss("mse")


@pytest.mark.parametrize("keep_zeros", [True, False])
def test_distill_keeps_the_zeros_of_a_sparse_model(padded_depthwise, keep_zeros) -> None:
    original, student, samples = padded_depthwise
    sparse = student.__class__()
    sparse.CopyFrom(student)
    for init in sparse.graph.initializer:
        if init.name == "pw":
            value = numpy_helper.to_array(init).copy()
            value.reshape(-1)[::2] = 0.0  # every other weight zeroed, like a 1:2 mask
            init.CopyFrom(numpy_helper.from_array(value, "pw"))
    zeros = _weights(sparse)["pw"] == 0
    report = DistillReport()
    options = dict(steps=20, batch_size=8, lr=1e-2, eval_every=10, patience=5, holdout=0.25)
    result = distill(original, sparse, samples, keep_zeros=keep_zeros, report=report, **options)
    after = _weights(result)["pw"]
    assert not np.array_equal(after[~zeros], _weights(sparse)["pw"][~zeros])
    assert np.all(after[zeros] == 0) == keep_zeros
    assert report.heldout_after < report.heldout_before


def test_distill_compares_float_outputs_only() -> None:
    # an integer label output has no gradient: the loss reads the scores beside it
    rng = np.random.default_rng(1)
    w1 = rng.standard_normal((6, 7)).astype(np.float32)
    w2 = rng.standard_normal((7, 5)).astype(np.float32)
    original = _mlp(w1, w2, label_first=True)
    student = _mlp(
        w1 + 0.3 * rng.standard_normal(w1.shape).astype(np.float32), w2, label_first=True
    )
    samples = load_samples(
        {"x": rng.standard_normal((60, 6)).astype(np.float32)}, original, max_samples=None
    )
    report = DistillReport()
    distill(original, student, samples, steps=30, batch_size=8, lr=1e-2, eval_every=10,
            report=report)  # fmt: skip
    assert report.heldout_after < report.heldout_before


def _softmax_mlp(w1: np.ndarray, w2: np.ndarray):
    """:func:`_mlp` exported with its softmax: the output is probabilities."""
    from onnx import TensorProto, helper

    model = _mlp(w1, w2)
    model.graph.node.append(helper.make_node("Softmax", ["y"], ["probabilities"], axis=1))
    del model.graph.output[:]
    model.graph.output.append(
        helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", 5])
    )
    return model


def test_a_softmax_output_is_distilled_on_its_logits() -> None:
    from onnxprune.recover.distill import logits_behind_softmax

    rng = np.random.default_rng(2)
    w1 = rng.standard_normal((6, 7)).astype(np.float32)
    w2 = 3.0 * rng.standard_normal((7, 5)).astype(np.float32)
    original = _softmax_mlp(w1, w2)
    assert logits_behind_softmax(original, ["probabilities"], "kl") == ["y"]
    assert logits_behind_softmax(original, ["probabilities"], "mse") == ["probabilities"]
    student = _softmax_mlp(w1 + 0.3 * rng.standard_normal(w1.shape).astype(np.float32), w2)
    samples = load_samples(
        {"x": rng.standard_normal((60, 6)).astype(np.float32)}, original, max_samples=None
    )
    report = DistillReport()
    distill(original, student, samples, steps=40, batch_size=8, lr=1e-2, eval_every=10,
            report=report)  # fmt: skip
    assert report.heldout_after < 0.5 * report.heldout_before


def _masked_scores(weight: np.ndarray):
    """x [n, 4], m [n, 3] -> MatMul(weight) + (one − m)·(−3.4e38) -> softmax -> y: the
    additive padding mask exporters write for attention, its 1 a scalar initializer."""
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("MatMul", ["x", "weight"], ["s"], name="scores"),
        helper.make_node("Sub", ["one", "m"], ["inverted"], name="invert"),
        helper.make_node("Mul", ["inverted", "fill"], ["bias"], name="fill_value"),
        helper.make_node("Add", ["s", "bias"], ["masked"], name="mask"),
        helper.make_node("Softmax", ["masked"], ["y"], name="softmax", axis=-1),
    ]
    inits = [
        numpy_helper.from_array(weight, "weight"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array(np.finfo(np.float32).min, np.float32), "fill"),
    ]
    graph = helper.make_graph(
        nodes,
        "masked",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4]),
            helper.make_tensor_value_info("m", TensorProto.FLOAT, ["n", 3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_single_value_constants_of_the_function_never_train() -> None:
    rng = np.random.default_rng(7)
    weight = rng.standard_normal((4, 3)).astype(np.float32)
    original = _masked_scores(weight)
    student = _masked_scores(weight + 0.5 * rng.standard_normal((4, 3)).astype(np.float32))
    mask = np.ones((48, 3), np.float32)
    mask[:, 2] = rng.integers(0, 2, 48)
    data = {"x": rng.standard_normal((48, 4)).astype(np.float32), "m": mask}
    samples = load_samples(data, original, max_samples=None)
    report = DistillReport()
    options = dict(steps=30, batch_size=8, lr=3e-2, eval_every=10, patience=4, holdout=0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow in Adam's moments
        result = distill(original, student, samples, loss="mse", report=report, **options)
    after = _weights(result)
    assert after["one"] == 1.0 and after["fill"] == np.finfo(np.float32).min
    assert not np.array_equal(after["weight"], _weights(student)["weight"])
    assert report.parameters == weight.size
