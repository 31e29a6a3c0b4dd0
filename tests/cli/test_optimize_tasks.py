"""``optimize`` / ``validate`` with --task on the shipped shapes detector and segmenter: the
guard measures mAP / mIoU (or their *_vs_original forms) on every output and rolls back a
harmful step; reports carry the task metrics and the prediction grid; bad inputs exit 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from onnxprune.cli import cli
from onnxprune.report.schema import validate_report

SHAPES = Path(__file__).resolve().parents[2] / "models" / "shapes"
CALIB = SHAPES / "shapes_calib.npz"
TEST = SHAPES / "shapes_test.npz"
FAST = ("--criterion", "l1", "--allocation", "global", "--recover", "none")


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def small_eval(tmp_path_factory) -> Path:
    """The first 48 test images with their boxes and masks."""
    path = tmp_path_factory.mktemp("shapes") / "eval.npz"
    with np.load(TEST) as test:
        np.savez(path, **{key: test[key][:48] for key in test.files})
    return path


def copy(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    shutil.copy(SHAPES / name, path)
    return path


@pytest.mark.slow
def test_detector_guard_rolls_back_and_reports_map(tmp_path, small_eval):
    model = copy(tmp_path, "shapes_detector.onnx")
    report_json, report_html = tmp_path / "r.json", tmp_path / "r.html"
    result = invoke(
        "optimize", model, "-o", tmp_path / "out.onnx", "--data", CALIB, "--eval", small_eval,
        "--task", "detect", "--decoder", "yolov8", "--target", "macs=0.4", "--steps", "1",
        "--max-drop", "0.5", *FAST, "--report-json", report_json, "--report-html", report_html,
        "--quiet",
    )  # fmt: skip
    assert result.exit_code in (0, 3), result.output
    report = json.loads(report_json.read_text())
    assert validate_report(report) == []
    assert report["metric_name"] == "map50" and report["metric_source"] == "task"
    assert any(step["status"] == "rolled_back" for step in report["steps"])
    assert report["metric_drop"] <= 0.5
    task = report["task"]
    assert task["task"] == "detect" and task["before"]["map50"] == pytest.approx(
        report["metric_before"]
    )
    assert {"map50_95", "det_f1", "map50_vs_original"} <= set(task["after"])
    html = report_html.read_text()
    assert "Task: detect" in html and html.count("data:image/png;base64") >= 3


@pytest.mark.slow
def test_segmenter_without_masks_uses_miou_vs_original(tmp_path, small_eval):
    model = copy(tmp_path, "shapes_segmenter.onnx")
    images_only = tmp_path / "images.npz"
    with np.load(small_eval) as data:
        np.savez(images_only, images=data["images"])
    report_json = tmp_path / "r.json"
    result = invoke(
        "optimize", model, "-o", tmp_path / "out.onnx", "--data", images_only,
        "--task", "segment", "--decoder", "logits", "--target", "macs=0.8", "--steps", "1",
        "--max-drop", "5", *FAST, "--report-json", report_json, "--quiet",
    )  # fmt: skip
    assert result.exit_code in (0, 3), result.output
    report = json.loads(report_json.read_text())
    assert report["metric_name"] == "miou_vs_original"
    assert report["metric_before"] == pytest.approx(100.0)
    assert "miou" not in report["task"]["after"]  # no masks: no ground-truth metric


def test_validate_with_task_reports_both_models(tmp_path, small_eval):
    result = invoke(
        "validate", SHAPES / "shapes_detector.onnx", SHAPES / "shapes_detector.onnx",
        "--data", small_eval, "--task", "detect", "--decoder", "yolov8", "--metric", "agreement",
        "--json", "-", "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    values = json.loads(result.output)["accuracy"]
    assert values["candidate"]["map50"] == values["reference"]["map50"] >= 80.0
    assert values["candidate"]["map50_vs_original"] == pytest.approx(100.0)


def test_wrong_decoder_is_one_line_exit_2_naming_outputs(tmp_path, small_eval):
    result = invoke(
        "validate", SHAPES / "shapes_detector.onnx", SHAPES / "shapes_detector.onnx",
        "--data", small_eval, "--task", "segment", "--decoder", "logits", "--quiet",
    )  # fmt: skip
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "decoder 'logits'" in lines[0] and "output0 [48, 7, 84]" in lines[0]


def test_box_outside_image_and_task_without_decoder_exit_2(tmp_path, small_eval):
    bad = tmp_path / "bad.npz"
    with np.load(small_eval) as data:
        arrays = {key: data[key] for key in data.files}
    arrays["boxes"] = arrays["boxes"].copy()
    arrays["boxes"][3, 0] = [50, 50, 70, 60]
    arrays["box_labels"] = arrays["box_labels"].copy()
    arrays["box_labels"][3, 0] = 1
    np.savez(bad, **arrays)
    model = SHAPES / "shapes_detector.onnx"
    result = invoke(
        "validate", model, model, "--data", bad, "--task", "detect", "--decoder", "yolov8"
    )
    assert result.exit_code == 2 and "sample 3 box 0" in result.output
    assert "outside the 64x64 input" in result.output
    result = invoke("validate", model, model, "--data", small_eval, "--task", "detect")
    assert result.exit_code == 2 and "needs --decoder" in result.output


def test_config_task_section(tmp_path):
    from onnxprune.pipeline.config import merge_options, read_config

    path = tmp_path / "c.toml"
    path.write_text(
        '[optimize]\nmax-drop = 1.5\n[task]\nname = "detect"\ndecoder = "yolov5"\n'
        "score-threshold = 0.3\n"
    )
    options = merge_options(read_config(path), {"nms_iou": 0.6})
    assert (options.task, options.decoder) == ("detect", "yolov5")
    assert (options.score_threshold, options.nms_iou, options.max_drop) == (0.3, 0.6, 1.5)
    path.write_text('[task]\nname = "detect"\nthreshold = 0.3\n')
    from onnxprune.errors import InputError

    with pytest.raises(InputError, match="unknown option 'threshold' in \\[task\\]"):
        read_config(path)


@pytest.fixture(scope="module")
def images_only(tmp_path_factory, small_eval) -> Path:
    """The small evaluation images without boxes or masks (so *_vs_original metrics)."""
    path = tmp_path_factory.mktemp("shapes_images") / "images.npz"
    with np.load(small_eval) as data:
        np.savez(path, images=data["images"][:24])
    return path


def test_validate_lowers_the_pseudo_truth_threshold_and_says_so(tmp_path, images_only):
    # no box of the shipped detector scores 0.99999: the pseudo truth would be empty and the
    # original would score 0 against itself
    result = invoke(
        "validate", SHAPES / "shapes_detector.onnx", SHAPES / "shapes_detector.onnx",
        "--data", images_only, "--task", "detect", "--decoder", "yolov8",
        "--score-threshold", "0.99999", "--json", tmp_path / "v.json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["accuracy"]["candidate"]["map50_vs_original"] == pytest.approx(100.0)
    assert report["accuracy"]["candidate"]["det_recall_vs_original"] == pytest.approx(100.0)
    assert any("as the truth there" in note for note in report["notes"])


def test_optimize_guard_is_not_blind_when_the_original_finds_few_boxes(tmp_path, images_only):
    report_json = tmp_path / "r.json"
    result = invoke(
        "optimize", SHAPES / "shapes_detector.onnx", "-o", tmp_path / "out.onnx",
        "--data", images_only, "--task", "detect", "--decoder", "yolov8",
        "--score-threshold", "0.99999", "--target", "macs=0.9", "--steps", "1",
        "--max-drop", "100", *FAST, "--report-json", report_json, "--quiet",
    )  # fmt: skip
    assert result.exit_code in (0, 3), result.output
    report = json.loads(report_json.read_text())
    assert report["metric_name"] == "map50_vs_original"
    assert report["metric_before"] == pytest.approx(100.0)
    assert any("as the truth there" in note for note in report["notes"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ((), "drop metric 100 - map50_vs_original"),
        (("--kind-option", "sensitivity_metric=kl"), "drop metric kl"),
    ],
)
def test_the_sensitivity_table_measures_the_task(tmp_path, images_only, extra, expected):
    report_json = tmp_path / "r.json"
    result = invoke(
        "optimize", SHAPES / "shapes_detector.onnx", "-o", tmp_path / "out.onnx",
        "--data", images_only, "--task", "detect", "--decoder", "yolov8",
        "--target", "macs=0.9", "--steps", "1", "--max-drop", "100", "--criterion", "l1",
        "--allocation", "sensitivity", "--recover", "none", *extra,
        "--report-json", report_json, "--quiet",
    )  # fmt: skip
    assert result.exit_code in (0, 3), result.output
    notes = json.loads(report_json.read_text())["notes"]
    assert any(expected in note for note in notes), notes


def test_distillation_of_a_detector_fails_closed_before_any_work(tmp_path, images_only):
    out = tmp_path / "out.onnx"
    result = invoke(
        "optimize", SHAPES / "shapes_detector.onnx", "-o", out, "--data", images_only,
        "--task", "detect", "--decoder", "yolov8", "--target", "macs=0.9",
        "--recover", "lsq+distill",
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "no distillation loss serves the guard metric 'map50_vs_original'" in result.output
    assert not out.exists()


def test_task_metrics_name_the_distillation_loss_that_serves_them():
    from onnxprune.evaluate import get_metric

    assert get_metric("map50").distill_loss == "" == get_metric("det_f1_vs_original").distill_loss
    assert get_metric("mask_iou_vs_original").distill_loss == "mse"
    assert get_metric("miou").distill_loss == "kl"
