"""Validate a candidate model against a reference: accuracy of both on labelled data and
fidelity of every candidate output to the reference's (the engine of ``onnxprune validate``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from onnxprune.errors import InputError
from onnxprune.evaluate.data import Dataset, load_data
from onnxprune.evaluate.embedding import TEXT_METRICS, attention_mask, has_token_input
from onnxprune.evaluate.fidelity import NotApplicable
from onnxprune.evaluate.normalization_probe import photo_classifier
from onnxprune.evaluate.registry import (
    KIND_CUSTOM,
    KIND_LABELS,
    KIND_REFERENCE,
    KIND_TASK,
    Metric,
    metric_names,
)
from onnxprune.evaluate.runner import ModelOutputs, open_runner, run_dataset
from onnxprune.evaluate.user_metric import resolve_metric
from onnxprune.graph.class_names import declared_class_names
from onnxprune.graph.input_affine import pixel_scales_of
from onnxprune.graph.input_ranges import input_ranges_of

DEFAULT_SYNTHETIC = "synthetic:64"


@dataclass
class ValidationResult:
    """Metric values: ``accuracy[model][metric]`` for ``reference`` and ``candidate``,
    ``fidelity[output][metric]`` of the candidate against the reference (None: not
    applicable to that output)."""

    reference: str
    candidate: str
    provider: str
    data: dict[str, Any]
    accuracy: dict[str, dict[str, float]]
    fidelity: dict[str, dict[str, float | None]]
    units: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def clean(value):
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, float) and not math.isfinite(value):
                return None
            return value

        return clean(
            {
                "reference": self.reference,
                "candidate": self.candidate,
                "provider": self.provider,
                "data": self.data,
                "accuracy": self.accuracy,
                "fidelity": self.fidelity,
                "units": self.units,
                "notes": self.notes,
            }
        )


def _label(model) -> str:
    return "<in-memory model>" if hasattr(model, "graph") else str(model)


def select_metrics(
    specs: Sequence[str | Callable] | None, has_labels: bool, text_model: bool = False
) -> list[Metric]:
    """Resolve ``specs``; by default every label metric (with labels) and every reference
    metric (the text-encoder ones of :mod:`.embedding` only for a ``text_model``, one with
    integer inputs). A label metric without labels is an InputError."""
    if not specs:
        names = (metric_names(KIND_LABELS) if has_labels else []) + metric_names(KIND_REFERENCE)
        if not text_model:
            names = [name for name in names if name not in TEXT_METRICS]
        return [resolve_metric(name) for name in names]
    metrics = []
    for spec in specs:
        metric = resolve_metric(spec)
        if metric.kind == KIND_LABELS and not has_labels:
            raise InputError(
                f"metric '{metric.name}' needs labels and the data has none "
                "(add a 'labels' array or use a reference metric such as agreement)"
            )
        metrics.append(metric)
    return metrics


def align_outputs(reference: ModelOutputs, candidate: ModelOutputs, notes: list[str]) -> list[str]:
    """Output names to compare; candidate outputs are matched by name, else by position."""
    if reference.names == candidate.names:
        return list(reference.names)
    if len(reference.names) != len(candidate.names):
        raise InputError(
            f"the models have different outputs: reference {reference.names}, "
            f"candidate {candidate.names}"
        )
    notes.append("output names differ: outputs compared by position")
    candidate.names = list(reference.names)
    return list(reference.names)


def apply_metric(metric: Metric, outputs: ModelOutputs, labels: np.ndarray | None) -> float:
    """Value of a label or custom metric on one model's outputs; a user metric's failure is an
    InputError naming it."""
    try:
        value = metric.fn(outputs.arrays, labels)
    except InputError:
        raise
    except Exception as error:  # user code
        if metric.kind != KIND_CUSTOM:
            raise
        raise InputError(
            f"metric '{metric.name}' failed: {type(error).__name__}: {error}"
        ) from None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"metric '{metric.name}' returned {value!r}, not a number") from None


def validate(
    reference,
    candidate,
    data: Any = None,
    *,
    metrics: Sequence[str | Callable] | None = None,
    labels_key: str | None = None,
    provider: str = "cpu",
    batch_size: int = 64,
    input_shapes: dict[str, list[int]] | None = None,
    preprocess: Any = None,
    max_samples: int | None = None,
    seed: int = 0,
    task: Any = None,
) -> ValidationResult:
    """Run both models on ``data`` (see :func:`~onnxprune.evaluate.data.load_data`; None:
    synthetic inputs) and compute ``metrics`` (see :func:`select_metrics`). With ``task`` (a
    :class:`~onnxprune.evaluate.tasks.TaskSpec`) every task metric the data allows is added to
    ``accuracy`` for both models (``*_vs_original`` against the reference's predictions)."""
    if batch_size < 1:
        raise InputError(f"batch size must be >= 1, got {batch_size}")
    notes: list[str] = []
    ref_runner = open_runner(reference, provider)
    try:
        cand_runner = open_runner(candidate, provider)
        try:
            _same_inputs(ref_runner.input_specs, cand_runner.input_specs)
            if data is None:
                notes.append("no data given: synthetic inputs, accuracy not measured")
            dataset: Dataset = load_data(
                DEFAULT_SYNTHETIC if data is None else data,
                ref_runner.input_specs,
                input_shapes,
                preprocess,
                labels_key=labels_key,
                seed=seed,
                input_ranges=input_ranges_of(reference) if data is None else None,
                pixel_scales=pixel_scales_of(reference) if data is not None else None,
                classify=photo_classifier(reference) if data is not None else None,
                class_names=declared_class_names(reference) if data is not None else None,
            )
            if max_samples is not None:
                dataset = dataset.take(max_samples)
            notes += dataset.notes
            text_model = has_token_input(
                [(name, np.asarray(array).dtype, np.shape(array))
                 for name, array in dataset.inputs.items()]
            )  # fmt: skip
            chosen = select_metrics(metrics, dataset.has_labels, text_model)
            ref_out = run_dataset(reference, dataset, batch_size=batch_size, runner=ref_runner)
            cand_out = run_dataset(candidate, dataset, batch_size=batch_size, runner=cand_runner)
            notes += [n for n in ref_out.notes + cand_out.notes if n not in notes]
            provider_used = ref_runner.provider
        finally:
            cand_runner.close()
    finally:
        ref_runner.close()

    names = align_outputs(ref_out, cand_out, notes)
    units: dict[str, str] = {}
    accuracy: dict[str, dict[str, float]] = {"reference": {}, "candidate": {}}
    fidelity: dict[str, dict[str, float | None]] = {name: {} for name in names}
    mask = attention_mask(dataset.inputs)
    for metric in chosen:
        if metric.kind == KIND_TASK:
            if task is None:
                raise InputError(
                    f"metric '{metric.name}' is a {metric.task} metric: give --task "
                    f"{metric.task} and --decoder NAME"
                )
            continue  # every task metric the data allows is added below
        if metric.kind == KIND_REFERENCE:
            extra = {"mask": mask} if getattr(metric.fn, "uses_mask", False) else {}
            for position, name in enumerate(names):
                try:
                    value = metric.fn(cand_out.arrays[position], ref_out.arrays[position], **extra)
                except NotApplicable:
                    value = None
                fidelity[name][metric.name] = value
        else:
            accuracy["reference"][metric.name] = apply_metric(metric, ref_out, dataset.labels)
            accuracy["candidate"][metric.name] = apply_metric(metric, cand_out, dataset.labels)
    if task is not None:
        from onnxprune.evaluate.tasks import check_reference, task_targets, task_values

        targets = task_targets(dataset)
        note = check_reference(task, ref_out, f"'{dataset.source}'")
        if note:
            notes.append(note)
        for model, outputs in (("reference", ref_out), ("candidate", cand_out)):
            values = task_values(task, outputs, targets, reference=ref_out)
            accuracy[model].update(values)
            units.update(dict.fromkeys(values, "%"))
    return ValidationResult(
        reference=_label(reference),
        candidate=_label(candidate),
        provider=provider_used,
        data=dataset.describe(),
        accuracy=accuracy,
        fidelity=fidelity,
        units={**{m.name: m.unit for m in chosen}, **units},
        notes=notes,
    )


def _same_inputs(reference, candidate) -> None:
    ref = {spec[0]: spec for spec in reference}
    cand = {spec[0]: spec for spec in candidate}
    if set(ref) != set(cand):
        raise InputError(
            f"the models have different inputs: reference {sorted(ref)}, candidate {sorted(cand)}"
        )
    for name, spec in ref.items():
        if np.dtype(spec[1]) != np.dtype(cand[name][1]):
            raise InputError(
                f"input '{name}' has dtype {spec[1]} in the reference and {cand[name][1]} in the "
                "candidate"
            )
