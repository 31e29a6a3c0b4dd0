"""The Python API ``optimize``: in-memory model and data, callable metric, result.save."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from onnxprune.errors import InputError
from onnxprune.evaluate import Dataset
from onnxprune.io import save_model
from onnxprune.io.external_data import model_file_bytes
from onnxprune.pipeline.api import optimize
from tests.io.tiny_models import mlp_model
from tests.oracle import session

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"


@pytest.fixture(scope="module")
def digits():
    model = onnx.load(DIGITS / "digits_vgg.onnx")
    test = np.load(DIGITS / "digits_test.npz")
    calib = np.load(DIGITS / "digits_calib.npz")
    eval_x, eval_y = test["input"][:120], test["labels"][:120]
    return (
        model,
        {"input": calib["input"], "labels": calib["labels"]},
        Dataset({"input": eval_x}, eval_y),
    )


def test_in_memory_model_and_data_with_a_callable_metric(digits, tmp_path):
    model, calib, evaluation = digits
    before = model.SerializeToString()

    def accuracy(outputs, labels):
        return float(100 * np.mean(outputs[0].argmax(1) == labels))

    result = optimize(
        model,
        "macs=0.9",
        data=calib,
        eval_data=evaluation,
        metric=accuracy,
        max_drop=2.0,
        steps=1,
        measure_latency=False,
    )
    assert model.SerializeToString() == before  # never modified
    report = result.report
    assert report.metric_name == "accuracy" and report.metric_source == "custom"
    assert report.input_model is None and report.latency is None
    logits = session(result.model).run(None, {"input": evaluation.inputs["input"]})[0]
    assert report.metric_after == pytest.approx(accuracy([logits], evaluation.labels))
    assert report.metric_before == pytest.approx(
        accuracy(
            [session(model).run(None, {"input": evaluation.inputs["input"]})[0]], evaluation.labels
        )
    )
    assert result.ok == (report.status == "ok")
    path = result.save(tmp_path / "pruned.onnx")
    assert report.output_model == str(path) and report.file_bytes_after == path.stat().st_size
    with pytest.raises(InputError, match="exists"):
        result.save(path)
    result.save(path, force=True)


def test_a_metric_that_degrades_rolls_every_step_back(digits):
    model, calib, evaluation = digits
    reference = session(model).run(None, {"input": evaluation.inputs["input"]})[0]

    def closeness(outputs, labels):
        """0 for the original's outputs, negative for any change."""
        return -1000.0 * float(np.abs(outputs[0] - reference).mean())

    result = optimize(
        model,
        "macs=0.7",
        data=calib,
        eval_data=evaluation,
        metric=closeness,
        max_drop=1e-3,
        noise_sigma=0.0,
        steps=1,
        measure_latency=False,
    )
    report = result.report
    assert report.guard["noise"]["floor"] == 0.0 and report.guard["threshold"] == 1e-3
    assert report.status == "guard_not_met" and not result.ok
    assert report.steps and all(s.status == "rolled_back" for s in report.steps)
    assert all(s.drop > 1e-3 for s in report.steps)
    # nothing removed; metric values differ from 0 only by float rounding (ONNX Runtime's
    # graph optimizations, BN folding), far below the guard
    assert report.macs_after == report.macs_before
    assert abs(report.metric_before) < 1e-3 and abs(report.metric_after) < 1e-3
    assert "no step fits the guard (threshold 0.001)" in report.reason


def test_bad_arguments(digits):
    model, calib, _ = digits
    with pytest.raises(InputError, match="max-drop"):
        optimize(model, "macs=0.9", data=calib, max_drop=-1, measure_latency=False)
    with pytest.raises(InputError, match="needs labels"):
        optimize(
            model, "macs=0.9", data={"input": calib["input"]}, metric="top1", measure_latency=False
        )
    with pytest.raises(InputError, match="no array for model input"):
        optimize(
            model,
            "macs=0.9",
            data={"a": calib["input"], "b": calib["input"]},
            measure_latency=False,
        )


def test_attention_unit_reaches_the_analysis(zoo_onnx):
    """``attention_unit="head_dim"`` keeps the 3 heads of ViT-Tiny's small export and narrows
    them (qkv width a multiple of 3 parts x 3 heads, not of 3 x 16); a misspelt unit is bad
    input before any work."""
    from onnx import numpy_helper

    model = onnx.load(zoo_onnx("vit_tiny", "torchscript"))
    with pytest.raises(InputError, match="attention unit must be one of head, head_dim"):
        optimize(model, "macs=0.8", attention_unit="heads", measure_latency=False)
    result = optimize(
        model, "macs=0.8", attention_unit="head_dim", synthesize="gaussian", steps=1,
        max_drop=100.0, round_to=1, criterion="l1", allocation="uniform", recover="none",
        measure_latency=False,
    )  # fmt: skip
    weights = {i.name: numpy_helper.to_array(i) for i in result.model.graph.initializer}
    widths = {
        weights[node.input[1]].shape[-1]
        for node in result.model.graph.node
        if node.op_type == "MatMul" and "qkv" in node.name
    }
    assert widths and all(w < 144 and w % 9 == 0 and w % 48 for w in widths), widths


def test_data_driven_methods_are_the_default_only_with_calibration_data():
    from onnxprune.pipeline.scheme import _resolve_methods

    assert _resolve_methods(None, None, None, True) == ("obs", "sensitivity", "lsq")
    # Many calibration samples: every layer is refitted (reconstruct), few: lsq.
    assert _resolve_methods(None, None, None, True, 255)[2] == "lsq"
    assert _resolve_methods(None, None, None, True, 256)[2] == "reconstruct"
    assert _resolve_methods(None, None, "lsq", True, 512)[2] == "lsq"
    assert _resolve_methods(None, None, None, False) == ("l1", "global", "none")
    assert _resolve_methods("l2", "uniform", "bias", True) == ("l2", "uniform", "bias")

    def my_recovery(analysis, removed, model):
        return model

    assert _resolve_methods(None, None, my_recovery, True)[2] == "my_recovery"


def _dynamic_image_model(seed: int = 0) -> onnx.ModelProto:
    """Conv(3->16) -> Relu -> Conv(16->16) -> GlobalAveragePool -> Flatten -> Gemm(16->5) on
    an input whose batch, height and width are all dynamic."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def init(name, *shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c2"], ["g"], name="pool"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "dynamic",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
        [
            init("w1", 16, 3, 3, 3),
            init("b1", 16),
            init("w2", 16, 16, 3, 3),
            init("b2", 16),
            init("w3", 5, 16),
            init("b3", 5),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def test_dynamic_height_and_width_are_taken_from_the_data():
    from onnxprune.stats import count_macs

    model = _dynamic_image_model()
    x = np.random.default_rng(1).standard_normal((24, 3, 12, 10)).astype(np.float32)
    result = optimize(model, "macs=0.9", data={"x": x}, steps=1, measure_latency=False)
    report = result.report
    assert report.macs_before == count_macs(model, {"x": [1, 3, 12, 10]}).total
    assert any("'x' shape [1, 3, 12, 10] taken from the data" in n for n in report.notes)
    # the written model keeps its dynamic dimensions
    dims = result.model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["N", "", "H", "W"] or not dims[2].HasField("dim_value")


def test_a_model_exported_at_batch_1_is_calibrated_one_sample_at_a_time(digits):
    """Every calibration path (OBS statistics, least-squares refit, guard) feeds batches the
    model accepts when its batch dimension is fixed (exports at batch 1 are common)."""
    model, calib, test = digits
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for value in [*fixed.graph.input, *fixed.graph.output]:
        first = value.type.tensor_type.shape.dim[0]
        first.Clear()
        first.dim_value = 1
    result = optimize(
        fixed,
        "macs=0.8",
        data={"input": calib["input"][:24]},
        eval_data=test,
        criterion="obs",
        allocation="global",
        recover="lsq",
        steps=1,
        max_drop=100,
        measure_latency=False,
    )
    assert result.report.macs_after < result.report.macs_before
    assert result.model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1


def test_a_model_with_nothing_prunable_says_so_not_to_loosen_the_guard():
    """Every group blocked (a Gemm straight to the output): the stop reason names the analysis
    and gives no guard advice, since no step was ever tried."""
    from tests.graph.test_output_producer import _head

    x = np.random.default_rng(0).normal(size=(64, 6)).astype(np.float32)
    result = optimize(_head("Relu"), "macs=0.9", data={"x": x}, measure_latency=False, steps=1)
    reason = result.report.reason
    assert result.report.status == "target_not_reached"
    assert "nothing to prune" in reason and "inspect MODEL --groups" in reason
    assert "to go further" not in reason and "max-drop" not in reason


def test_optimize_reports_the_size_of_a_model_with_external_data(tmp_path):
    # Exporters (torch.onnx's dynamo path) write the weights beside the graph: the size
    # before must count them, or a pruned model written inline looks many times larger.
    path = save_model(mlp_model(), tmp_path / "ext.onnx", external_data=True)
    x = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)
    result = optimize(str(path), "macs=0.8", data={"x": x}, steps=1, measure_latency=False)
    assert result.report.file_bytes_before == model_file_bytes(path)
    result.save(tmp_path / "out.onnx")
    assert result.report.file_bytes_after == model_file_bytes(tmp_path / "out.onnx")
    assert result.report.file_bytes_after < result.report.file_bytes_before
