"""GuardEvaluator: held-out split, default metric, quick subset, latency, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.errors import InputError
from onnxprune.evaluate.fidelity import kl_divergence
from onnxprune.evaluate.inversion import InversionSettings
from onnxprune.evaluate.metrics import top1
from onnxprune.pipeline.evaluation import (
    DEFAULT_FLOOR_FACTOR,
    INVERTED_SAMPLES,
    QUICK_SAMPLES,
    SYNTHETIC_SAMPLES,
    GuardEvaluator,
    synthesize_inputs,
)
from tests.evaluate.tiny import conv_classifier, grey_photos, linear_model

W = np.eye(3, dtype=np.float32)


def _labelled(n, seed=0):
    """Random rows (distinct, so splits can be traced); labels = argmax, 20 % shifted."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    labels = x.argmax(axis=1)
    labels[: n // 5] = (labels[: n // 5] + 1) % 3  # 20 % wrong for the identity model
    return x, labels


def test_split_is_disjoint_and_baseline_is_measured_on_held_out_samples():
    x, labels = _labelled(50)
    evaluator = GuardEvaluator.create(
        linear_model(W), data={"x": x, "labels": labels}, eval_split=0.4
    )
    held, calib = evaluator.evaluation, evaluator.calibration
    assert len(held) == 20 and len(calib) == 30
    held_rows = {tuple(r) for r in held.inputs["x"].tolist()}
    calib_rows = {tuple(r) for r in calib.inputs["x"].tolist()}
    assert held_rows.isdisjoint(calib_rows) and len(held_rows | calib_rows) == 50
    assert evaluator.metric_name == "top1" and evaluator.metric_source == "labels"
    assert evaluator.accuracy_measured
    assert evaluator.baseline == pytest.approx(top1([held.inputs["x"]], held.labels))
    assert evaluator.evaluate(linear_model(W)) == pytest.approx(evaluator.baseline)
    described = evaluator.describe()
    assert described["evaluation"]["samples"] == 20 and described["calibration"]["samples"] == 30
    assert "held out" in described["evaluation"]["source"]


def test_groups_of_data_are_held_out_whole_by_the_guard():
    x, _ = _labelled(40)
    groups = np.arange(40) // 8  # 5 sources of 8 samples
    evaluator = GuardEvaluator.create(linear_model(W), data={"x": x, "groups": groups})
    held, calib = evaluator.evaluation, evaluator.calibration
    assert set(held.groups).isdisjoint(set(calib.groups)) and len(held) == 16
    assert any("groups of --data" in note for note in evaluator.notes)
    assert not any("cannot see over-fitting" in note for note in evaluator.notes)
    plain = GuardEvaluator.create(linear_model(W), data={"x": x})
    assert any("'groups' array" in note for note in plain.notes)


def test_eval_data_is_used_whole_and_data_is_calibration():
    x, _ = _labelled(10)
    ex, elabels = _labelled(12, seed=1)
    evaluator = GuardEvaluator.create(
        linear_model(W), data={"x": x}, eval_data={"x": ex, "labels": elabels}
    )
    assert len(evaluator.evaluation) == 12 and len(evaluator.calibration) == 10
    assert evaluator.baseline == pytest.approx(top1([ex], elabels))
    only_eval = GuardEvaluator.create(linear_model(W), eval_data={"x": ex})
    assert only_eval.calibration is None
    assert any("no calibration data" in n for n in only_eval.notes)


def test_no_labels_means_expected_top1_against_the_original():
    x, _ = _labelled(20)
    evaluator = GuardEvaluator.create(linear_model(W), data={"x": x})
    assert evaluator.metric_name == "expected_top1" and evaluator.metric_source == "reference"
    held = evaluator.evaluation.inputs["x"]
    probabilities = np.exp(held) / np.exp(held).sum(axis=1, keepdims=True)
    assert evaluator.baseline == pytest.approx(100 * probabilities.max(axis=1).mean())
    swap = W[:, [1, 0, 2]]
    chosen = (held @ swap).argmax(axis=1)
    expected = 100 * probabilities[np.arange(len(held)), chosen].mean()
    assert evaluator.evaluate(linear_model(swap)) == pytest.approx(expected)
    assert evaluator.guard.higher_is_better and evaluator.guard.unit == "%"


def test_class_scores_come_from_the_first_float_output_when_a_label_output_is_first():
    x, labels = _labelled(30)
    model = linear_model(W, label_first=True)
    labelled = GuardEvaluator.create(model, data={"x": x, "labels": labels})
    held = labelled.evaluation
    assert labelled.metric_name == "top1"
    assert labelled.baseline == pytest.approx(top1([held.inputs["x"]], held.labels))
    unlabelled = GuardEvaluator.create(model, data={"x": x})
    assert unlabelled.metric_name == "expected_top1"
    rows = unlabelled.evaluation.inputs["x"]
    probabilities = np.exp(rows) / np.exp(rows).sum(axis=1, keepdims=True)
    assert unlabelled.baseline == pytest.approx(100 * probabilities.max(axis=1).mean())


def test_a_lower_is_better_metric_guards_its_rise():
    x, _ = _labelled(20)
    evaluator = GuardEvaluator.create(linear_model(W), data={"x": x}, metric="kl")
    assert not evaluator.guard.higher_is_better and evaluator.guard.unit == "nats"
    assert evaluator.baseline == pytest.approx(0.0, abs=1e-12)
    swap = W[:, [1, 0, 2]]
    held = evaluator.evaluation.inputs["x"]
    value = evaluator.evaluate(linear_model(swap))
    assert value == pytest.approx(kl_divergence(held @ swap, held))
    assert evaluator.loss(value) == pytest.approx(value) and value > 0


def test_noise_floor_and_default_tolerance():
    x, _ = _labelled(200)
    evaluator = GuardEvaluator.create(linear_model(W), eval_data={"x": x}, metric="kl")
    guard = evaluator.guard
    noisy = x + np.random.default_rng(3).standard_normal(x.shape) * 0.01 * x.std()
    # the floor's perturbation part is the KL of the model under 1 % input noise
    assert guard.noise.perturbation_loss == pytest.approx(kl_divergence(noisy, x), rel=0.5)
    assert guard.noise.floor >= guard.noise.perturbation_loss > 0
    # the default is the metric's own (1.0) unless DEFAULT_FLOOR_FACTOR floors are larger
    assert guard.max_drop == max(1.0, DEFAULT_FLOOR_FACTOR * guard.noise.floor)
    relative = GuardEvaluator.create(
        linear_model(W), eval_data={"x": x}, metric="kl", max_drop="3x"
    )
    assert relative.guard.threshold == pytest.approx(3 * relative.guard.noise.floor)
    assert relative.guard.max_drop_source == "3 x noise floor"
    # an absolute tolerance below the floor is raised to the floor: noise is never rolled back
    strict = GuardEvaluator.create(linear_model(W), eval_data={"x": x}, metric="kl", max_drop=0)
    assert strict.guard.max_drop == 0 and strict.guard.threshold == guard.noise.floor
    silent = GuardEvaluator.create(linear_model(W), eval_data={"x": x}, noise_sigma=0)
    assert silent.guard.noise.floor == 0 and silent.guard.noise.perturbed_inputs == []
    with pytest.raises(InputError, match="relative to the noise floor"):
        GuardEvaluator.create(linear_model(W), eval_data={"x": x}, noise_sigma=0, max_drop="2x")
    with pytest.raises(InputError, match="max-drop"):
        GuardEvaluator.create(linear_model(W), eval_data={"x": x}, max_drop="lots")


def test_a_noisy_metric_gets_a_tolerance_relative_to_its_floor():
    """Hard agreement on near-ties flips under 1 % input noise: the default tolerance grows
    to DEFAULT_FLOOR_FACTOR floors instead of a 1-point guard no step could meet."""
    rng = np.random.default_rng(5)
    level = rng.standard_normal((300, 1))  # the rows' spread sets the noise scale
    x = (level + 1e-4 * rng.standard_normal((300, 3))).astype(np.float32)  # near-ties
    evaluator = GuardEvaluator.create(linear_model(W), eval_data={"x": x}, metric="agreement")
    guard = evaluator.guard
    assert guard.noise.perturbation_loss > 10.0
    assert guard.max_drop == pytest.approx(DEFAULT_FLOOR_FACTOR * guard.noise.floor)
    assert "noise floor" in guard.max_drop_source


def test_label_guard_keeps_one_point_and_bootstraps_the_floor():
    x, labels = _labelled(300)
    evaluator = GuardEvaluator.create(linear_model(W), eval_data={"x": x, "labels": labels})
    guard = evaluator.guard
    assert guard.metric == "top1" and guard.higher_is_better
    assert guard.max_drop == max(1.0, DEFAULT_FLOOR_FACTOR * guard.noise.floor)
    assert guard.noise.bootstrap_std > 0 and guard.threshold == guard.max_drop


def test_no_data_uses_synthetic_inputs_and_says_so():
    evaluator = GuardEvaluator.create(linear_model(W))
    assert len(evaluator.evaluation) == SYNTHETIC_SAMPLES and evaluator.calibration is None
    assert not evaluator.accuracy_measured
    assert evaluator.metric_name == "expected_top1"
    assert any("accuracy not measured" in n for n in evaluator.notes)
    assert evaluator.describe()["calibration"] == {
        "source": "none",
        "samples": 0,
        "has_labels": False,
    }


def test_quick_subset_reports_the_drop_measured_on_the_subset():
    n = 2 * QUICK_SAMPLES
    x, labels = _labelled(n)
    evaluator = GuardEvaluator.create(
        linear_model(W), eval_data={"x": x, "labels": labels}, max_eval_samples=n
    )
    subset, index = evaluator.quick_set
    assert len(subset) == QUICK_SAMPLES
    assert evaluator.evaluate(linear_model(W), quick=True) == pytest.approx(evaluator.baseline)
    swap = W[:, [1, 0, 2]]
    drop_on_subset = top1([x[index]], labels[index]) - top1([x[index] @ swap], labels[index])
    quick = evaluator.evaluate(linear_model(swap), quick=True)
    assert evaluator.baseline - quick == pytest.approx(drop_on_subset)


def test_max_eval_samples_and_custom_metric():
    x, labels = _labelled(40)
    evaluator = GuardEvaluator.create(
        linear_model(W),
        eval_data={"x": x, "labels": labels},
        max_eval_samples=7,
        metric=lambda outputs, y: float(len(y)),
    )
    assert len(evaluator.evaluation) == 7
    assert evaluator.baseline == 7.0 and evaluator.metric_source == "custom"


def test_latency_and_comparison():
    evaluator = GuardEvaluator.create(linear_model(W))
    assert evaluator.latency_batch() == 1
    assert evaluator.latency(linear_model(W)) > 0
    result = evaluator.compare_latency(linear_model(W), linear_model(2 * W))
    assert result["batch"] == 1 and result["runs"] >= 3
    for side in ("before", "after"):
        assert result[side]["p50_ms"] > 0 and "p90_ms" in result[side]
    assert result["ratio_p50"] == pytest.approx(
        result["after"]["p50_ms"] / result["before"]["p50_ms"]
    )


def test_bad_inputs():
    x, _ = _labelled(10)
    with pytest.raises(InputError, match="needs labels"):
        GuardEvaluator.create(linear_model(W), data={"x": x}, metric="top1")
    with pytest.raises(InputError, match="noise-sigma"):
        GuardEvaluator.create(linear_model(W), data={"x": x}, noise_sigma=-1)
    with pytest.raises(InputError, match="unknown metric"):
        GuardEvaluator.create(linear_model(W), data={"x": x}, metric="bogus")
    with pytest.raises(InputError, match="axis 1: 4 != 3"):
        GuardEvaluator.create(linear_model(W), data={"x": np.zeros((5, 4), np.float32)})
    with pytest.raises(InputError, match="between 0 and 1"):
        GuardEvaluator.create(linear_model(W), data={"x": x}, eval_split=0.0)
    with pytest.raises(InputError, match="max-eval-samples"):
        GuardEvaluator.create(linear_model(W), data={"x": x}, max_eval_samples=0)


def test_no_data_inverts_a_small_classifier_for_calibration_and_guard():
    evaluator = GuardEvaluator.create(conv_classifier())
    assert evaluator.calibration is not None and not evaluator.accuracy_measured
    total = len(evaluator.calibration) + len(evaluator.evaluation)
    assert total == INVERTED_SAMPLES
    assert "inverted" in evaluator.describe()["calibration"]["source"]
    assert any("synthesized by inverting the model" in n for n in evaluator.notes)


def test_gaussian_synthesis_keeps_random_inputs_and_no_calibration():
    evaluator = GuardEvaluator.create(conv_classifier(), synthesize="gaussian")
    assert evaluator.calibration is None and len(evaluator.evaluation) == SYNTHETIC_SAMPLES


def test_auto_synthesis_over_budget_falls_back_to_gaussian_with_a_note():
    notes: list[str] = []
    specs = [("x", np.float32, ["batch", 1, 12, 12])]
    small = InversionSettings(budget_macs=1.0)
    assert synthesize_inputs(conv_classifier(), specs, None, "auto", 0, notes, None, small) is None
    assert "over the automatic budget" in notes[0] and "--synthesize inverted" in notes[0]
    slow = InversionSettings(budget_seconds=1e-9)
    assert synthesize_inputs(conv_classifier(), specs, None, "auto", 0, notes, None, slow) is None
    assert "over the budget" in notes[1]
    forced = synthesize_inputs(
        conv_classifier(),
        specs,
        None,
        "inverted",
        0,
        [],
        None,
        InversionSettings(steps=3, budget_seconds=1e-9),
    )
    assert forced is not None and len(forced) == INVERTED_SAMPLES


def test_a_model_that_cannot_be_inverted_gets_gaussian_inputs_and_says_why():
    notes: list[str] = []
    result = synthesize_inputs(
        linear_model(W), [("x", np.float32, ["b", 3])], None, "auto", 0, notes
    )
    assert result is None and "not synthesized by inversion" in notes[0]


def test_an_unknown_synthesis_mode_is_bad_input():
    with pytest.raises(InputError, match="synthesize must be one of"):
        GuardEvaluator.create(conv_classifier(), synthesize="dream")


def _offset_model():
    """y = 0.05 · x + (100, 120, 80) for x (N, 1, 3): points [N, 1, 3] that sit around a fixed
    layout."""
    from onnx import helper

    from tests.oracle import const, make_model, tensor

    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
        helper.make_node("Add", ["h", "layout"], ["y"], name="add"),
    ]
    inits = [
        const("w", np.eye(3, dtype=np.float32) * 0.05),
        const("layout", np.array([100.0, 120.0, 80.0], np.float32)),
    ]
    return make_model(nodes, [tensor("x", ["N", 1, 3])], [tensor("y", ["N", 1, 3])], inits)


def test_default_guard_reads_offsets_and_embedding_heads_from_data_and_graph():
    """Points around a fixed layout get r2; features normalized by a BatchNormalization get
    cosine; plain (N, C) logits keep expected_top1; Gaussian inputs say nothing about what an
    output is."""
    from tests.graph.test_output_producer import _head

    rng = np.random.default_rng(5)
    x = rng.standard_normal((40, 1, 3)).astype(np.float32)
    offset = _offset_model()
    assert GuardEvaluator.create(offset, data={"x": x}).metric_name == "r2"
    gaussian = GuardEvaluator.create(offset, synthesize="gaussian")
    assert gaussian.metric_name == "cosine"
    features = rng.standard_normal((40, 6)).astype(np.float32)
    embedding = GuardEvaluator.create(_head("BatchNormalization"), data={"x": features})
    assert embedding.metric_name == "cosine"
    logits = GuardEvaluator.create(_head("Relu"), data={"x": features})
    assert logits.metric_name == "expected_top1"


def _points_and_flag(flag_weight: float):
    """y = 0.05 · x + layout (points around a fixed layout) and f = flag_weight · x[:, :1]
    (a score beside them), as a landmark model returns."""
    from onnx import helper

    from tests.oracle import const, make_model, tensor

    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
        helper.make_node("Add", ["h", "layout"], ["y"], name="add"),
        helper.make_node("MatMul", ["x", "wf"], ["f"], name="flag"),
    ]
    inits = [
        const("w", np.eye(3, dtype=np.float32) * 0.05),
        const("layout", np.array([100.0, 120.0, 80.0], np.float32)),
        const("wf", np.array([[flag_weight], [0.0], [0.0]], np.float32)),
    ]
    outputs = [tensor("y", ["N", 3]), tensor("f", ["N", 1])]
    return make_model(nodes, [tensor("x", ["N", 3])], outputs, inits)


def test_r2_guards_every_float_output():
    """The points are the score output; a change of the flag alone must still count."""
    x = np.random.default_rng(6).standard_normal((40, 3)).astype(np.float32)
    evaluator = GuardEvaluator.create(_points_and_flag(1.0), data={"x": x}, metric="r2")
    assert evaluator.baseline == pytest.approx(100.0)
    flag = evaluator.evaluation.inputs["x"][:, 0].astype(np.float64)  # f on the held-out rows
    expected = 100 * (1 - ((0.5 * flag) ** 2).sum() / ((flag - flag.mean()) ** 2).sum())
    assert evaluator.evaluate(_points_and_flag(0.5)) == pytest.approx(expected, rel=1e-4)
    assert expected < 80  # the points alone would read 100


def test_the_default_metric_probe_spreads_over_the_data():
    from onnxprune.evaluate.data import Dataset
    from onnxprune.pipeline.evaluation import DEFAULT_METRIC_SAMPLES, _spread_sample

    data = Dataset({"x": np.arange(100, dtype=np.float32)[:, None]}, None, "test")
    picked = _spread_sample(data).inputs["x"][:, 0]
    assert len(picked) == DEFAULT_METRIC_SAMPLES and picked[0] == 0 and picked[-1] == 99
    small = Dataset({"x": np.zeros((5, 1), np.float32)}, None, "test")
    assert len(_spread_sample(small)) == 5


def test_class_scores_that_noise_reorders_are_not_class_scores():
    """y = 50 · x (N, 20) with x a fixed layout whose two largest values tie, scaled per sample:
    read as class scores by shape, but 1 % input noise reorders the tied largest values, so
    expected_top1's own noise floor is far above a classifier's (0-0.05 points on photo
    crops, 17 points on a pose model's landmarks); the guard falls back to r2 and says why."""
    from onnx import helper

    from onnxprune.pipeline.evaluation import CLASS_SCORE_MAX_FLOOR
    from tests.oracle import const, make_model, tensor

    nodes = [helper.make_node("Mul", ["x", "gain"], ["y"], name="gain")]
    inits = [const("gain", np.float32(50.0))]
    model = make_model(nodes, [tensor("x", ["N", 20])], [tensor("y", ["N", 20])], inits)
    rng = np.random.default_rng(7)
    layout = np.linspace(0, 19, 20)
    layout[-2:] = 19.0
    x = layout * rng.uniform(0.5, 1.5, (64, 1)) + rng.normal(0, 0.01, (64, 20))
    x = x.astype(np.float32)
    evaluator = GuardEvaluator.create(model, data={"x": x}, eval_data={"x": x})
    assert evaluator.metric_name == "r2"
    note = next(n for n in evaluator.notes if "read the output as class scores" in n)
    floor = float(note.split("moved by ")[1].split(" points")[0])
    assert floor > CLASS_SCORE_MAX_FLOOR
    asked = GuardEvaluator.create(model, data={"x": x}, eval_data={"x": x}, metric="expected_top1")
    assert asked.metric_name == "expected_top1"  # a metric the user names is kept


def test_a_calibration_folder_of_few_photos_gives_crops_held_out_by_photo(tmp_path):
    from onnxprune.defaults import PHOTO_CALIBRATION_SAMPLES

    photos = grey_photos(tmp_path / "photos", 6, seed=7, size=(30, 40))
    evaluator = GuardEvaluator.create(conv_classifier(), data=str(photos))
    held, calib = evaluator.evaluation, evaluator.calibration
    per_photo = -(-PHOTO_CALIBRATION_SAMPLES // 6)
    assert len(held) + len(calib) == 6 * per_photo
    assert set(held.groups).isdisjoint(set(calib.groups))
    assert any("random resized crops" in note for note in evaluator.notes)
    assert any("photos of an image folder" in note for note in evaluator.notes)
    # an --eval folder is measured as it is: one sample per photo
    evaluator = GuardEvaluator.create(
        conv_classifier(),
        data=str(photos),
        eval_data=str(grey_photos(tmp_path / "other", 3, seed=8, size=(30, 40))),
    )
    assert len(evaluator.evaluation) == 3 and len(evaluator.calibration) == 6 * per_photo


def _yolo_shaped(size: int = 64, classes: int = 2):
    """Pools of stride 8, 16 and 32, a 1 × 1 conv to 4 + classes rows each, flattened and
    concatenated: the [N, 4 + C, A] layout of a YOLOv8 head (A = 64 + 16 + 4 at 64 × 64)."""
    from onnx import TensorProto, helper

    from tests.oracle import make_model, weights

    rows = 4 + classes
    nodes, parts, initializers = [], [], [weights("w", (rows, 3, 1, 1), 0)]
    initializers.append(helper.make_tensor("flat", TensorProto.INT64, [3], [0, rows, -1]))
    for stride in (8, 16, 32):
        nodes += [
            helper.make_node(
                "AveragePool",
                ["x"],
                [f"p{stride}"],
                kernel_shape=[stride] * 2,
                strides=[stride] * 2,
            ),
            helper.make_node("Conv", [f"p{stride}", "w"], [f"c{stride}"]),
            helper.make_node("Reshape", [f"c{stride}", "flat"], [f"r{stride}"]),
        ]
        parts.append(f"r{stride}")
    nodes.append(helper.make_node("Concat", parts, ["y"], axis=2))
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, size, size])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", rows, 84])]
    return make_model(nodes, inputs, outputs, initializers)


def test_outputs_a_decoder_recognizes_get_a_note_naming_the_task_flags():
    images = np.random.default_rng(0).random((24, 3, 64, 64)).astype(np.float32)
    evaluator = GuardEvaluator.create(_yolo_shaped(), data={"x": images})
    (hint,) = [n for n in evaluator.notes if "look like a detection head" in n]
    assert "--task detect --decoder yolov8" in hint and "[N, 4 + 2, 84]" in hint
    # a metric given means the user chose: no hint
    chosen = GuardEvaluator.create(_yolo_shaped(), data={"x": images}, metric="cosine")
    assert not any("look like" in n for n in chosen.notes)


def test_a_guard_coarser_than_its_tolerance_says_so():
    x, labels = _labelled(40)
    few = GuardEvaluator.create(linear_model(W), eval_data={"x": x, "labels": labels})
    (note,) = [n for n in few.notes if n.startswith("the guard reads top1 on 40")]
    assert "moves it by 2.5 points, more than the allowed drop of 1" in note
    assert "100 samples or more" in note
    x, labels = _labelled(120)
    enough = GuardEvaluator.create(linear_model(W), eval_data={"x": x, "labels": labels})
    assert not any(n.startswith("the guard reads") for n in enough.notes)
    loose = GuardEvaluator.create(
        linear_model(W), eval_data={"x": x[:40], "labels": labels[:40]}, max_drop=3
    )
    assert not any(n.startswith("the guard reads") for n in loose.notes)
    exact = GuardEvaluator.create(
        linear_model(W), eval_data={"x": x[:40], "labels": labels[:40]}, max_drop=0
    )
    assert not any(n.startswith("the guard reads") for n in exact.notes)  # nothing to widen
    kl = GuardEvaluator.create(linear_model(W), eval_data={"x": x[:40]}, metric="kl")
    assert not any(n.startswith("the guard reads") for n in kl.notes)  # not a sample share
