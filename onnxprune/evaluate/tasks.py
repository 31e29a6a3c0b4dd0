"""Detection and segmentation as evaluation tasks: a declared :class:`TaskSpec` (task,
decoder, thresholds) turns a registered ``task`` metric into one the guard and ``validate``
can run on every output of a candidate and its reference model.

``score_task(metric, candidate, reference, targets)``:

1. decode the candidate's outputs with ``spec.decoder`` (:mod:`onnxprune.evaluate.decoders`);
2. the truth: for a ``NAME_vs_original`` metric, the reference's decoded outputs (detections
   with score ≥ the pseudo-truth threshold, or its label map) — pseudo ground truth for data
   without labels; otherwise the data's ``boxes``/``box_labels`` or ``masks``
   (:mod:`onnxprune.evaluate.targets`);
3. the metric's formula on (predictions, truth). Segmentation maps at another resolution than
   the masks are resized to the masks' size (nearest neighbour) first.

Pseudo-truth threshold (:func:`reference_threshold`): ``spec.score_threshold``, unless the
reference finds fewer than ``MIN_REFERENCE_BOXES_PER_IMAGE`` boxes per image above it on the
scored images (a detector shown photos without its classes). Then it is lowered to the score
of the reference's k-th best box over those images, k = ⌈n · MIN_REFERENCE_BOXES_PER_IMAGE⌉
(all its boxes when it has fewer), and a ``_vs_original`` metric compares the candidate's most
confident boxes with the reference's: P/R/F1 count the candidate's boxes at the same lowered
threshold. Without the lowering the pseudo truth is empty, every candidate that predicts any
box scores 0 — the original against itself included — and a guard on that metric is blind.
The original against itself always scores 100: its boxes above the threshold are the truth and
rank first. A reference with no box at all (not even of ``min_score``), or a single-channel
segmentation map without a foreground pixel, leaves the metric undefined:
:func:`check_reference` says so.

Defaults (:func:`default_metric_name`): ``map50`` / ``miou`` / ``mask_iou`` with ground truth,
their ``_vs_original`` forms without.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from onnxprune.errors import InputError
from onnxprune.evaluate.decoders import TASK_DETECT, TASK_SEGMENT, get_decoder
from onnxprune.evaluate.registry import KIND_TASK, Metric, get_metric, metric_names
from onnxprune.evaluate.targets import truth_detections, truth_masks

VS_ORIGINAL = "_vs_original"
TASKS = (TASK_DETECT, TASK_SEGMENT)
BINARY_DECODERS = ("probability", "binary-logits")


@dataclass(frozen=True)
class TaskSpec:
    """What the outputs mean and how to threshold them.

    ``score_threshold``: detections counted by precision/recall/F1 and kept as pseudo ground
    truth; ``nms_iou``: IoU above which NMS suppresses a same-class box; ``min_score``:
    candidates kept before NMS (low, so mAP sees the whole ranking); ``max_detections`` per
    image; ``mask_threshold``: probability at which a single-channel map is foreground.
    """

    task: str
    decoder: str
    score_threshold: float = 0.25
    nms_iou: float = 0.5
    min_score: float = 0.001
    max_detections: int = 300
    mask_threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise InputError(f"unknown task '{self.task}' (known: {', '.join(TASKS)})")
        get_decoder(self.decoder, self.task)
        for name in ("score_threshold", "nms_iou", "min_score", "mask_threshold"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise InputError(f"{name.replace('_', '-')} must be in [0, 1], got {value}")
        if int(self.max_detections) < 1:
            raise InputError(f"max-detections must be >= 1, got {self.max_detections}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def make_task_spec(task: str | None, decoder: str | None, **thresholds: Any) -> TaskSpec | None:
    """A TaskSpec from CLI/config values (None when no task is given; thresholds left None
    keep their defaults). A task without a decoder is an InputError."""
    if not task:
        if decoder:
            raise InputError("--decoder needs --task detect or --task segment")
        return None
    if not decoder:
        raise InputError(
            f"--task {task} needs --decoder (one of: "
            f"{', '.join(_decoders(task))}); decoders are declared, never guessed"
        )
    given = {k: v for k, v in thresholds.items() if v is not None}
    return TaskSpec(task, decoder, **given)


def _decoders(task: str) -> list[str]:
    from onnxprune.evaluate.decoders import decoder_names

    return decoder_names(task)


def default_metric_name(spec: TaskSpec, has_truth: bool) -> str:
    """``map50`` (detect), ``mask_iou`` (single-channel segment decoders) or ``miou``; with
    the ``_vs_original`` suffix when the data has no ground truth."""
    if spec.task == TASK_DETECT:
        name = "map50"
    else:
        name = "mask_iou" if spec.decoder in BINARY_DECODERS else "miou"
    return name if has_truth else name + VS_ORIGINAL


def has_truth(spec: TaskSpec, targets: Mapping[str, Any]) -> bool:
    """Whether ``targets`` hold ground truth for ``spec.task``."""
    if spec.task == TASK_DETECT:
        return "boxes" in targets and "box_labels" in targets
    labels = targets.get("labels")
    return "masks" in targets or (labels is not None and np.ndim(labels) == 3)


def bind_task_metric(metric: Metric | str | None, spec: TaskSpec, targets=None) -> Metric:
    """The task metric ``metric`` (a name, a Metric, or None for the default given whether
    ``targets`` has ground truth) with ``spec`` attached; InputError when it belongs to
    another task or is not a task metric."""
    if metric is None or (isinstance(metric, str) and not metric.strip()):
        metric = default_metric_name(spec, has_truth(spec, dict(targets or {})))
    if isinstance(metric, str):
        metric = get_metric(metric.strip())
    if metric.kind != KIND_TASK:
        return metric
    if metric.task != spec.task:
        raise InputError(
            f"metric '{metric.name}' is a {metric.task} metric but --task is {spec.task} "
            f"({spec.task} metrics: {', '.join(task_metric_names(spec.task))})"
        )
    return dataclasses.replace(metric, spec=spec)


def task_metric_names(task: str) -> list[str]:
    """Registered task metric names of ``task``."""
    return [n for n in metric_names(KIND_TASK) if get_metric(n).task == task]


def task_targets(dataset: Any) -> dict[str, np.ndarray]:
    """A Dataset's targets plus its ``labels`` (if any), as the mapping task metrics read."""
    targets = dict(getattr(dataset, "targets", {}) or {})
    labels = getattr(dataset, "labels", None)
    if labels is not None:
        targets["labels"] = labels
    return targets


def _arrays_names(outputs: Any) -> tuple[list[np.ndarray], list[str]]:
    arrays = getattr(outputs, "arrays", None)
    if arrays is not None:
        return list(arrays), list(outputs.names)
    if isinstance(outputs, np.ndarray):
        return [outputs], ["output0"]
    arrays = list(outputs)
    return arrays, [f"output{i}" for i in range(len(arrays))]


def decode(spec: TaskSpec, outputs: Any) -> Any:
    """Decoded predictions of one model's outputs (a list of arrays or ModelOutputs)."""
    arrays, names = _arrays_names(outputs)
    return get_decoder(spec.decoder, spec.task)(arrays, names, spec)


#: the reference must find this many boxes per image on average above the pseudo-truth threshold
MIN_REFERENCE_BOXES_PER_IMAGE = 1.0


def reference_threshold(spec: TaskSpec, decoded: Sequence[Any]) -> float:
    """The score from which the reference's detections are pseudo ground truth (module doc):
    ``spec.score_threshold``, or the score of its k-th best box when fewer pass it."""
    scores = np.sort(np.concatenate([d.scores for d in decoded] or [np.zeros(0)]))[::-1]
    wanted = int(np.ceil(len(decoded) * MIN_REFERENCE_BOXES_PER_IMAGE))
    if scores.size == 0 or int(np.sum(scores >= spec.score_threshold)) >= wanted:
        return float(spec.score_threshold)
    return float(scores[min(wanted, scores.size) - 1])


def reference_spec(spec: TaskSpec, decoded_reference: Sequence[Any]) -> TaskSpec:
    """``spec`` with the pseudo-truth threshold of ``decoded_reference`` (detection only)."""
    if spec.task != TASK_DETECT:
        return spec
    threshold = reference_threshold(spec, decoded_reference)
    if threshold == spec.score_threshold:
        return spec
    return dataclasses.replace(spec, score_threshold=threshold)


def check_reference(spec: TaskSpec, reference: Any, what: str) -> str | None:
    """A note when the pseudo-truth threshold on ``reference`` (every output of the original
    on ``what``) is lowered; InputError when the original detects nothing at all there, or
    (single-channel segmentation decoders) marks no foreground pixel: binary IoU/F1 against an
    empty truth are 100 for an empty map and 0 for any other, so they measure nothing."""
    decoded = decode(spec, reference)
    if spec.task == TASK_SEGMENT:
        if spec.decoder in BINARY_DECODERS and not np.any(np.asarray(decoded) != 0):
            raise InputError(
                f"the original model marks no foreground pixel on {what} "
                f"({len(decoded)} images): *_vs_original mask metrics have nothing to compare; "
                "give other images or ground-truth masks"
            )
        return None
    if not any(len(d) for d in decoded):
        raise InputError(
            f"the original model detects no box of score >= {spec.min_score:g} on {what} "
            f"({len(decoded)} images): a *_vs_original detection metric has nothing to compare; "
            "give other images or ground-truth boxes"
        )
    threshold = reference_threshold(spec, decoded)
    if threshold == spec.score_threshold:
        return None
    above = sum(int(np.sum(d.scores >= spec.score_threshold)) for d in decoded)
    return (
        f"the original finds {above} box(es) of score >= {spec.score_threshold:g} on {what} "
        f"({len(decoded)} images): *_vs_original metrics take its boxes of score >= "
        f"{threshold:.4g} as the truth there (its most confident, "
        f"{MIN_REFERENCE_BOXES_PER_IMAGE:g} per image)"
    )


def pseudo_truth(spec: TaskSpec, decoded: Any) -> Any:
    """The reference's decoded predictions as ground truth (detections: score ≥ the
    ``spec.score_threshold`` of :func:`reference_spec`)."""
    if spec.task == TASK_DETECT:
        return [d.above(spec.score_threshold) for d in decoded]
    return decoded


def resize_nearest(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Label maps [N, h, w] resized to ``size`` (H, W) by nearest neighbour (pixel centres)."""
    height, width = maps.shape[1:]
    rows = np.minimum(((np.arange(size[0]) + 0.5) * height / size[0]).astype(int), height - 1)
    cols = np.minimum(((np.arange(size[1]) + 0.5) * width / size[1]).astype(int), width - 1)
    return maps[:, rows][:, :, cols]


def _truth(
    metric: Metric, spec: TaskSpec, reference: Any, targets: Mapping[str, Any]
) -> tuple[Any, TaskSpec]:
    """(truth, the spec to score with): see the module doc."""
    if metric.name.endswith(VS_ORIGINAL):
        decoded = decode(spec, reference)
        spec = reference_spec(spec, decoded)
        return pseudo_truth(spec, decoded), spec
    if spec.task == TASK_DETECT:
        return truth_detections(targets), spec
    return truth_masks(targets), spec


def evaluate_decoded(metric: Metric, spec: TaskSpec, predictions: Any, truth: Any) -> float:
    """The metric's formula on decoded predictions and truth (maps resized to the truth)."""
    if spec.task == TASK_SEGMENT:
        truth = np.asarray(truth)
        same_count = truth.ndim == predictions.ndim == 3 and len(truth) == len(predictions)
        if same_count and predictions.shape[1:] != truth.shape[1:]:
            predictions = resize_nearest(predictions, truth.shape[1:])
    return float(metric.fn(predictions, truth, spec))


def score_task(
    metric: Metric,
    candidate: Any,
    reference: Any,
    targets: Mapping[str, Any] | None,
) -> float:
    """Value of a bound task metric (module doc). ``candidate``/``reference``: every output of
    each model (lists of arrays or ModelOutputs), ``targets``: :func:`task_targets`."""
    spec = metric.spec
    if spec is None:
        raise InputError(
            f"metric '{metric.name}' is a {metric.task} metric: give --task {metric.task} and "
            "--decoder NAME so the outputs can be decoded"
        )
    truth, scoring = _truth(metric, spec, reference, dict(targets or {}))
    return evaluate_decoded(metric, scoring, decode(spec, candidate), truth)


def task_values(
    spec: TaskSpec,
    candidate: Any,
    targets: Mapping[str, Any] | None = None,
    reference: Any = None,
) -> dict[str, float]:
    """Every metric of ``spec.task`` that the data allows: against ground truth when
    ``targets`` has it, ``*_vs_original`` when ``reference`` outputs are given. Segmentation
    adds ``iou_class_K`` (percent) per class. Decodes each model once."""
    targets = dict(targets or {})
    predictions = decode(spec, candidate)
    truths: dict[str, tuple[Any, TaskSpec]] = {}
    if has_truth(spec, targets):
        found = truth_detections(targets) if spec.task == TASK_DETECT else truth_masks(targets)
        truths[""] = (found, spec)
    if reference is not None:
        decoded = decode(spec, reference)
        scoring = reference_spec(spec, decoded)
        truths[VS_ORIGINAL] = (pseudo_truth(scoring, decoded), scoring)
    values: dict[str, float] = {}
    for suffix, (truth, scoring) in truths.items():
        for name in task_metric_names(spec.task):
            if name.endswith(VS_ORIGINAL) or (
                spec.task == TASK_SEGMENT and _skip_for_decoder(name, spec)
            ):
                continue
            metric = get_metric(name)
            values[name + suffix] = evaluate_decoded(metric, scoring, predictions, truth)
        if spec.task == TASK_SEGMENT and not suffix:
            from onnxprune.evaluate.segmentation import per_class_iou

            maps = np.asarray(predictions)
            truth_array = np.asarray(truth)
            if maps.shape[1:] != truth_array.shape[1:]:
                maps = resize_nearest(maps, truth_array.shape[1:])
            for label, iou in per_class_iou(maps, truth_array).items():
                values[f"iou_class_{label}"] = 100.0 * iou
    return values


def _skip_for_decoder(name: str, spec: TaskSpec) -> bool:
    """Binary metrics only for single-channel decoders (and always allowed there)."""
    binary = name.startswith("mask_")
    return binary and spec.decoder not in BINARY_DECODERS


def task_metrics_for(names: Sequence[str], spec: TaskSpec) -> list[Metric]:
    """Bound task metrics for several names."""
    return [bind_task_metric(name, spec) for name in names]
