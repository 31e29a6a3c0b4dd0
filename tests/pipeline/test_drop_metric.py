"""The sensitivity table's drop metric follows the guard: ``kl`` for classifiers, the task
metric against the original for a declared task; ``sensitivity_metric`` overrides."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.errors import InputError
from onnxprune.evaluate import get_metric
from onnxprune.evaluate.tasks import TaskSpec, bind_task_metric
from onnxprune.pipeline.drop_metric import (
    choose_drop_metric,
    choose_gain_metric,
    guard_drop_metric,
)
from onnxprune.sensitivity.metrics import DROP_METRICS, kl_divergence

DETECT = TaskSpec("detect", "yolov8")


def head(rows) -> list[np.ndarray]:
    """yolov8 output [1, 4 + 2, A] from rows (cx, cy, w, h, s0, s1)."""
    return [np.array(rows, dtype=np.float32).T[None]]


ORIGINAL = head([[15, 15, 10, 10, 0.9, 0.0], [45, 45, 10, 10, 0.0, 0.8]])
# the second box's class score collapses; its coordinates do not move
LOST_CLASS = head([[15, 15, 10, 10, 0.9, 0.0], [45, 45, 10, 10, 0.0, 0.0001]])


def test_a_task_guard_measures_the_task_not_a_softmax_over_the_raw_head():
    drop = guard_drop_metric(bind_task_metric("map50", DETECT))
    assert callable(drop) and drop.__name__ == "100 - map50_vs_original"
    assert drop(ORIGINAL, ORIGINAL) == pytest.approx(0.0)
    assert drop(ORIGINAL, LOST_CLASS) == pytest.approx(50.0)  # one of two classes lost
    # the softmax over axis 1 is dominated by the pixel coordinates: it barely moves
    assert kl_divergence(ORIGINAL, LOST_CLASS) < 1e-3


def test_other_guards_keep_kl_and_the_option_overrides():
    top1 = get_metric("top1")
    assert guard_drop_metric(top1) == "kl"
    assert choose_drop_metric(top1, None) == "kl"
    assert choose_drop_metric(top1, "rel_mse") == "rel_mse"
    task = bind_task_metric("map50_vs_original", DETECT)
    assert choose_drop_metric(task, "kl") == "kl"
    assert callable(choose_drop_metric(task, "task"))
    with pytest.raises(InputError, match="needs a task guard"):
        choose_drop_metric(top1, "task")
    with pytest.raises(InputError, match="unknown sensitivity metric 'nope'"):
        choose_drop_metric(top1, "nope")


def test_embedding_and_token_guards_use_the_drop_of_their_distillation_loss():
    assert guard_drop_metric(get_metric("embedding_cosine")) == "rel_mse"
    assert guard_drop_metric(get_metric("token_agreement")) == "kl_last_axis"
    assert guard_drop_metric(get_metric("expected_top1")) == "kl"
    # cosine: the guard of outputs that are not class scores along axis 1
    assert guard_drop_metric(get_metric("cosine")) == "rel_mse"
    assert get_metric("cosine").distill_loss == "mse"


def test_kl_last_axis_reads_the_last_axis():
    from onnxprune.sensitivity.metrics import kl_last_axis

    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 5, 3))
    assert kl_last_axis([logits], [logits]) == pytest.approx(0.0)
    moved = logits.copy()
    moved[:, :, 0] += 1.0
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    q = np.exp(moved) / np.exp(moved).sum(-1, keepdims=True)
    expected = float((p * (np.log(p) - np.log(q))).sum(-1).mean())
    assert kl_last_axis([logits], [moved]) == pytest.approx(expected)


def test_segmentation_logits_keep_kl_and_single_channel_maps_use_the_task():
    logits = bind_task_metric("miou_vs_original", TaskSpec("segment", "logits"))
    assert guard_drop_metric(logits) == "kl"
    binary = bind_task_metric("mask_iou_vs_original", TaskSpec("segment", "probability"))
    drop = guard_drop_metric(binary)
    assert callable(drop)
    original = [np.array([[[[0.9, 0.1], [0.8, 0.2]]]], dtype=np.float32)]
    half = [np.array([[[[0.9, 0.1], [0.2, 0.2]]]], dtype=np.float32)]
    assert kl_divergence(original, half) == 0.0  # one channel: softmax is 1, kl is blind
    assert drop(original, half) == pytest.approx(50.0)  # foreground 2 pixels -> 1


def test_gain_metric_is_std_mse_for_task_guards_and_rel_mse_otherwise():
    """A 1 % probe moves a task metric or top-1 by nothing: gains need a smooth measure, and a
    detection head needs its channels weighed alike."""
    task = bind_task_metric("map50_vs_original", DETECT)
    assert choose_gain_metric(task, None) == "std_mse"
    assert choose_gain_metric(get_metric("top1"), None) == "rel_mse"
    assert choose_gain_metric(get_metric("top1"), "kl") == "kl"
    with pytest.raises(InputError, match="gain metric 'top1' is not smooth"):
        choose_gain_metric(task, "top1")
    with pytest.raises(InputError, match="unknown sensitivity metric 'nope'"):
        choose_gain_metric(task, "nope")
    # the lost class score registers under std_mse; the coordinates hide it from rel_mse
    assert DROP_METRICS["std_mse"](ORIGINAL, LOST_CLASS) > 0.1
    assert DROP_METRICS["rel_mse"](ORIGINAL, LOST_CLASS) < 1e-3


def test_r2_guard_measures_its_drops_and_gains_per_channel():
    r2 = get_metric("r2")
    assert r2.higher_is_better and r2.unit == "%" and r2.distill_loss == "mse"
    assert guard_drop_metric(r2) == "std_mse"
    assert choose_gain_metric(r2, None) == "std_mse"
    assert guard_drop_metric(get_metric("cosine")) == "rel_mse"
