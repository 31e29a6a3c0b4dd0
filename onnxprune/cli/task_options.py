"""The detection/segmentation options shared by ``optimize`` and ``validate``: ``--task``,
``--decoder`` and the thresholds, and how they turn ``--metric`` into a task metric."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

TASK_HELP = (
    "Judge a detector or segmenter: 'detect' or 'segment' (needs --decoder). Metrics: map50, "
    "map50_95, det_precision/recall/f1; miou, pixel_accuracy, mask_iou, mask_f1; each also "
    "NAME_vs_original (the original model's predictions as ground truth, for data without "
    "boxes/masks)."
)
DECODER_HELP = (
    "How to read the outputs (declared, never guessed): yolov8 [N,4+C,A], yolov5 [N,A,5+C], "
    "boxes-scores (boxes [N,A,4] xyxy + scores [N,A,C]), decoded (NMS in the model: [N,K,6] or "
    "boxes/scores/labels); segment: logits [N,C,H,W], probability (one map in [0,1]), "
    "binary-logits."
)


def task_options(command: Callable) -> Callable:
    """Add --task, --decoder, --score-threshold, --nms-iou, --mask-threshold to ``command``."""
    for option in reversed(
        (
            click.option("--task", type=click.Choice(["detect", "segment"]), help=TASK_HELP),
            click.option("--decoder", help=DECODER_HELP),
            click.option(
                "--score-threshold",
                type=float,
                help="Detections counted by precision/recall/F1 and kept as pseudo ground "
                "truth (default 0.25).",
            ),
            click.option(
                "--nms-iou", type=float, help="IoU above which NMS drops a box (default 0.5)."
            ),
            click.option(
                "--mask-threshold",
                type=float,
                help="Foreground probability of a single-channel map (default 0.5).",
            ),
        )
    ):
        command = option(command)
    return command


def task_spec(options: Any):
    """The TaskSpec of ``options`` (attributes task, decoder, thresholds), or None."""
    from onnxprune.evaluate.tasks import make_task_spec

    return make_task_spec(
        getattr(options, "task", None),
        getattr(options, "decoder", None),
        score_threshold=getattr(options, "score_threshold", None),
        nms_iou=getattr(options, "nms_iou", None),
        mask_threshold=getattr(options, "mask_threshold", None),
    )


def guard_metric(options: Any):
    """``options.metric`` as the guard takes it: unchanged without --task; with --task the
    named metric bound to the task, or the TaskSpec itself (the task's default metric)."""
    spec = task_spec(options)
    if spec is None:
        return options.metric
    from onnxprune.evaluate.tasks import bind_task_metric

    return bind_task_metric(options.metric, spec) if options.metric else spec


def attach_task_report(report: Any, options: Any, model_path: str, pruned: Any) -> None:
    """Measure every task metric on the evaluation samples the guard used (the same seeded
    split of --data, or --eval; synthetic inputs without data) for the original and the
    pruned model, and put the summary and the image grid on ``report``."""
    spec = task_spec(options)
    if spec is None:
        return
    from onnxprune.evaluate.data import load_data, model_input_specs
    from onnxprune.evaluate.runner import run_dataset
    from onnxprune.evaluate.tasks import task_targets
    from onnxprune.graph.input_affine import image_pixel_scales
    from onnxprune.io import load_model
    from onnxprune.report.task import grid_png, task_summary

    original = load_model(model_path)
    specs = model_input_specs(original)
    shapes = options.input_shape or None
    seed = options.seed
    scales = image_pixel_scales(original)
    if options.eval:
        evaluation = load_data(options.eval, specs, shapes, seed=seed + 1, pixel_scales=scales)
    elif options.data:
        full = load_data(options.data, specs, shapes, seed=seed, pixel_scales=scales)
        evaluation = full.split(options.eval_split, seed)[1]
    else:
        evaluation = load_data("synthetic:16", specs, shapes, seed=seed)
    limit = options.max_eval_samples
    if limit is not None and len(evaluation) > limit:
        import numpy as np

        chosen = np.sort(np.random.default_rng(seed).choice(len(evaluation), limit, replace=False))
        evaluation = evaluation.subset(chosen)
    run = {"provider": options.provider, "batch_size": options.batch_size}
    before = run_dataset(original, evaluation, **run)
    after = run_dataset(pruned, evaluation, **run)
    targets = task_targets(evaluation)
    report.task = task_summary(spec, before, after, targets)
    report.task["samples"] = len(evaluation)
    images = next(iter(evaluation.inputs.values()))
    report.task_grid_png = grid_png(spec, images, before, after)
