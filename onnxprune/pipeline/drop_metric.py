"""The sensitivity table's drop metric, chosen from the guard's metric.

The table measures, on calibration samples, how much each group's removal changes the model
(:mod:`onnxprune.sensitivity`). Its default drop is ``kl``: a softmax along axis 1 of every
float output. That reads class scores well, and a detector's raw head badly: a YOLO output
[N, 4 + C, A] holds box coordinates in pixels beside class scores in [0, 1], so the softmax
(or a squared error) over axis 1 sees the coordinates only, and the class branch — the part a
detection guard is most sensitive to — looks free to prune.

A single-channel segmentation map is worse still: the softmax over one channel is 1 and the KL
is 0 whatever changes. So when the guard measures a declared task (``--task``) other than
multi-class segmentation logits (where axis 1 *is* the class axis and ``kl`` is the smooth
measure of the same thing), the drop is that task's metric on the same calibration samples,
against the original's own predictions:

    drop = 100 − M_vs_original(candidate outputs; original outputs)

with M the guard's task metric (its ``_vs_original`` form: calibration data carries no ground
truth) and the pseudo truth of :mod:`onnxprune.evaluate.tasks`.

Other guards: the drop is measured with the loss that distillation minimizes for the guard's
metric (``Metric.distill_loss``, which already says what the outputs are):
``kl`` → ``kl`` (class scores along axis 1), ``mse`` → ``rel_mse`` (embeddings: hidden states
[N, T, H], where a softmax along axis 1 would compare distributions over tokens; ``cosine``
and the error metrics, the guard of outputs that are not class scores), ``kl_last_axis`` →
``kl_last_axis`` (per-position class scores [N, T, C]: token logits, a CTC recognizer).
The channel kind's option ``sensitivity_metric`` (``--kind-option sensitivity_metric=NAME``)
overrides the choice: a registered drop metric (``kl``, ``top1``, ``rel_mse``, ...) or ``task``.

The sparsity kind measures each layer's *gain* to the outputs with a 1 % probe and divides the
drop by the probe (:mod:`onnxprune.sparsity.curves`), so its measure must be smooth in the
outputs: a task metric or top-1 agreement steps and reads 0 there. :func:`choose_gain_metric`
picks it from the guard: ``std_mse`` (each output channel's squared error over its spread)
for a task guard, whose raw head mixes quantities of different scales (a YOLO output holds box
coordinates in pixels beside class scores in [0, 1]: the relative squared error sees only the
pixels, and the class branch measured free was sparsified first: 6.6 % weight sparsity at the
guard on YOLOv8n, 48.8 % with ``std_mse``); ``rel_mse`` (relative squared error of all
outputs together) for the others. Measured on EfficientNet-Lite2 at 50 % sparsity, the
gains by ``rel_mse`` keep more top-1 agreement than those by ``std_mse`` or by ``kl``
(docs/benchmarks.md, "Output gains of the sparsity kind"). ``gain_metric=NAME`` (kind option)
overrides the choice with any registered smooth drop metric.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from onnxprune.errors import InputError
from onnxprune.evaluate.decoders import TASK_SEGMENT
from onnxprune.evaluate.registry import KIND_TASK, Metric
from onnxprune.evaluate.tasks import BINARY_DECODERS, VS_ORIGINAL, bind_task_metric, score_task
from onnxprune.sensitivity.metrics import (
    DropMetric,
    resolve_drop_metric,
    resolve_smooth_drop_metric,
)

DEFAULT_DROP_METRIC = "kl"
#: drop metric by the guard metric's distillation loss (module doc)
DROP_FOR_DISTILL_LOSS = {"kl": "kl", "mse": "rel_mse", "kl_last_axis": "kl_last_axis"}
#: the sparsity gains' measure by the guard: task guards, others (module doc)
GAIN_METRIC_TASK, GAIN_METRIC_DEFAULT = "std_mse", "rel_mse"


def guard_drop_metric(metric: Metric) -> str | DropMetric:
    """The guard metric's own ``drop_metric`` when it names one (``r2``: ``std_mse``); for a
    task guard ``100 − M_vs_original``; else the drop metric of the guard metric's
    distillation loss (module doc; ``kl`` when it has none listed)."""
    if getattr(metric, "drop_metric", None):
        return metric.drop_metric
    if metric.kind != KIND_TASK or metric.spec is None:
        loss = getattr(metric, "distill_loss", None) or DEFAULT_DROP_METRIC
        return DROP_FOR_DISTILL_LOSS.get(loss, DEFAULT_DROP_METRIC)
    if metric.spec.task == TASK_SEGMENT and metric.spec.decoder not in BINARY_DECODERS:
        return DEFAULT_DROP_METRIC
    name = metric.name if metric.name.endswith(VS_ORIGINAL) else metric.name + VS_ORIGINAL
    bound = bind_task_metric(name, metric.spec)
    higher_is_better = bound.higher_is_better

    def task_drop(reference: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> float:
        value = score_task(bound, list(outputs), list(reference), {})
        return 100.0 - value if higher_is_better else value

    task_drop.__name__ = f"100 - {name}"
    return task_drop


def choose_drop_metric(metric: Metric, requested: str | None) -> str | DropMetric:
    """The run's drop metric: ``requested`` when given (a registered name, or ``task``: the
    guard's task metric, an InputError for another guard), else :func:`guard_drop_metric`."""
    if requested is None:
        return guard_drop_metric(metric)
    if requested == "task":
        if metric.kind != KIND_TASK:
            raise InputError(
                f"sensitivity_metric=task needs a task guard (--task); the guard is {metric.name}"
            )
        return guard_drop_metric(metric)
    return resolve_drop_metric(requested)[0]


def choose_gain_metric(metric: Metric, requested: str | None) -> str:
    """The measure of the sparsity kind's output gains: ``requested`` when given (a registered
    drop metric that is smooth, else an InputError), ``std_mse`` for a task guard or a guard
    whose drop is ``std_mse`` (``r2``), else ``rel_mse`` (module doc)."""
    if requested is None:
        centered = metric.kind == KIND_TASK or getattr(metric, "drop_metric", None) == "std_mse"
        return GAIN_METRIC_TASK if centered else GAIN_METRIC_DEFAULT
    return resolve_smooth_drop_metric(requested)[0]
