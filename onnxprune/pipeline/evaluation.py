"""The guard's measurements for ``optimize``: metric of a candidate model on held-out data,
and latency on the chosen provider.

:meth:`GuardEvaluator.create` loads the data once and splits it: calibration samples (for
data-driven criteria and recovery) and evaluation samples (the guard's metric) never overlap.

* ``data`` only: a seeded ``eval_split`` share of it is held out for evaluation;
* ``eval_data`` given: it is the evaluation set, ``data`` (if any) all calibration;
* neither: synthetic inputs for evaluation, no calibration, and top-1 agreement with the
  original model as the metric (accuracy is not measured; a note says so).

The metric defaults to ``top1`` when the evaluation data has labels, else a continuous fidelity
measure chosen from the original's first output (:func:`~onnxprune.evaluate.fidelity.
default_reference_metric`: ``expected_top1`` for class scores, ``cosine`` otherwise). Reference metrics
compare the FIRST output of the candidate with the original's. A metric's *loss* is
``baseline - value`` when higher is better and ``value - baseline`` otherwise.

The guard (:class:`Guard`) is calibrated on the data: the noise floor of the metric
(:mod:`onnxprune.evaluate.noise`: the unpruned model under σ = 1 % input noise, and a paired
bootstrap over the evaluation samples) is measured once; ``max_drop`` is a number in the
metric's unit, ``"Nx"`` (N times the floor), or by default the larger of the metric's own
default (1 point for % metrics such as top1 and expected_top1, 0.01 for cosine) and
:data:`DEFAULT_FLOOR_FACTOR` × floor; the threshold a step must meet is ``max(max_drop,
floor)`` so a change within the noise is never rolled back.

Task metrics (detection/segmentation, :mod:`onnxprune.evaluate.tasks`) see EVERY output of
the candidate and of the original plus the data's boxes/masks (``Dataset.targets``, carried
into the bootstrap subsets); ``metric`` may be a :class:`~onnxprune.evaluate.tasks.TaskSpec`
for the task's default (``map50``/``miou`` with ground truth, else ``*_vs_original``).

``evaluate(model, quick=True)`` measures on a seeded subset of at most ``QUICK_SAMPLES``
evaluation samples and returns ``baseline + (metric_subset(model) - metric_subset(original))``
so that its drop is the drop measured on that subset.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import onnx
from onnx import ModelProto

from onnxprune import defaults
from onnxprune.defaults import PHOTO_CALIBRATION_SAMPLES
from onnxprune.errors import InputError
from onnxprune.evaluate.data import Dataset, load_data
from onnxprune.evaluate.fidelity import default_reference_metric
from onnxprune.evaluate.metrics import score_output_index
from onnxprune.evaluate.noise import DEFAULT_SIGMA, NoiseFloor, measure_noise_floor, perturb_inputs
from onnxprune.evaluate.registry import KIND_LABELS, KIND_REFERENCE, KIND_TASK, Metric
from onnxprune.evaluate.runner import ModelOutputs, open_runner, run_dataset, static_batch
from onnxprune.evaluate.tasks import VS_ORIGINAL
from onnxprune.evaluate.user_metric import resolve_metric
from onnxprune.evaluate.validation import apply_metric
from onnxprune.graph.output_producer import is_embedding_head, linear_head_width

SYNTHETIC_SAMPLES = 64
QUICK_SAMPLES = 128
#: samples run to choose the default guard metric (how much the output varies between inputs)
DEFAULT_METRIC_SAMPLES = 16
#: the default metric of (N, C) outputs read as class scores, and the noise floor (points)
#: above which it is not: a classifier's expected top-1 moves by 0-0.05 points under 1 %
#: input noise on random photo crops, a pose model's 195 landmark coordinates by 17 points
CLASS_SCORE_DEFAULT = "expected_top1"
CLASS_SCORE_MAX_FLOOR = 5.0
LATENCY_RUNS = 50
# A default tolerance is at least this many noise floors (a noisier metric gets more room).
DEFAULT_FLOOR_FACTOR = 2.0
# Default tolerance of a label metric (in its unit: points for %) or when no floor is known.
DEFAULT_MAX_DROP = 1.0
LATENCY_WARMUP_RUNS = 10


@dataclass
class Guard:
    """What the guard protects: the metric, its direction and unit, the tolerance asked for
    (``max_drop`` and where it came from), the measured noise floor and the ``threshold`` a
    step's loss must not exceed (``max(max_drop, floor)``)."""

    metric: str
    unit: str
    higher_is_better: bool
    max_drop: float
    max_drop_source: str
    noise: NoiseFloor
    threshold: float

    def describe(self) -> str:
        """One line for the terminal: what was protected and how the threshold was set."""
        unit = f" {self.unit}" if self.unit and self.unit != "%" else self.unit
        way = "drop" if self.higher_is_better else "rise"
        return (
            f"{self.metric} {way} <= {self.threshold:.4g}{unit} ({self.max_drop_source}; "
            f"noise floor {self.noise.floor:.4g}{unit})"
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["noise"] = self.noise.to_dict()
        return data


def resolve_max_drop(spec, metric: Metric, floor: NoiseFloor) -> tuple[float, str]:
    """The tolerance and its source from ``spec``: a number (the metric's unit), ``"Nx"`` (N
    times the noise floor), or None: the larger of the metric's own default tolerance (1 point
    for % metrics and label/custom metrics, 0.01 for cosine) and DEFAULT_FLOOR_FACTOR × floor,
    so a noisy metric gets a tolerance it can meet and a quiet one keeps its default."""
    if isinstance(spec, str) and spec.strip().lower().endswith("x"):
        try:
            factor = float(spec.strip()[:-1])
        except ValueError:
            raise InputError(f"max-drop {spec!r}: expected a number or N x (e.g. 10x)") from None
        if not factor >= 0:
            raise InputError(f"max-drop must be >= 0, got {spec!r}")
        if floor.floor <= 0:
            raise InputError(
                f"max-drop {spec!r} is relative to the noise floor, which measured 0 on this "
                "data; give an absolute max-drop in the metric's unit"
            )
        return factor * floor.floor, f"{factor:g} x noise floor"
    if spec is not None:
        try:
            value = float(spec)
        except (TypeError, ValueError):
            raise InputError(f"max-drop must be a number or N x, got {spec!r}") from None
        if not value >= 0:
            raise InputError(f"max-drop must be >= 0, got {spec!r}")
        return value, "max-drop given"
    base = metric.default_max_drop if metric.default_max_drop is not None else DEFAULT_MAX_DROP
    scaled = DEFAULT_FLOOR_FACTOR * floor.floor
    if scaled > base:
        return scaled, f"default: {DEFAULT_FLOOR_FACTOR:g} x noise floor"
    return base, f"default {base:g}{metric.unit if metric.unit == '%' else ''}"


def coarse_guard_note(metric: Metric, samples: int, threshold: float) -> str:
    """A note when one sample moves a :attr:`~onnxprune.evaluate.registry.Metric.sample_share`
    metric (100 / ``samples`` points) by more than the guard's ``threshold``: then any step
    that turns a single prediction the wrong way is rolled back, and users should know why.
    No note for a threshold of 0: no loss at all is allowed, whatever the sample count."""
    if not metric.sample_share or samples < 1 or threshold <= 0:
        return ""
    step = 100.0 / samples
    if step <= threshold:
        return ""
    way = "drop" if metric.higher_is_better else "rise"
    return (
        f"the guard reads {metric.name} on {samples} evaluation samples: one sample moves it "
        f"by {step:.3g} points, more than the allowed {way} of {threshold:.3g}, so a step that "
        f"turns a single prediction the wrong way is rolled back; "
        f"{math.ceil(100.0 / threshold)} samples or more (or a larger --max-drop) give the "
        "guard room below it"
    )


class GuardEvaluator:
    """Evaluation data, metric and provider of one ``optimize`` run (see module doc)."""

    def __init__(
        self,
        original: ModelProto,
        metric: Metric,
        evaluation: Dataset,
        calibration: Dataset | None,
        *,
        provider: str,
        provider_name: str,
        input_specs: list,
        input_shapes: dict[str, list[int]] | None,
        batch_size: int,
        accuracy_measured: bool,
        seed: int = 0,
        notes: list[str] | None = None,
        max_drop: float | str | None = None,
        noise_sigma: float = DEFAULT_SIGMA,
        progress=None,
    ) -> None:
        self.original = original
        self.noise_sigma = noise_sigma
        self.progress = progress
        self.metric = metric
        self.evaluation = evaluation
        self.calibration = calibration
        self.provider = provider
        self.provider_name = provider_name
        self.input_specs = input_specs
        self.input_shapes = dict(input_shapes or {})
        self.batch_size = batch_size
        self.accuracy_measured = accuracy_measured
        self.seed = seed
        self.notes = list(notes or [])
        self.quick_set = _quick_subset(evaluation, seed)
        self._reference = self._outputs(original, evaluation, "evaluating the original")
        self.notes += [note for note in self._reference.notes if note not in self.notes]
        self._check_pseudo_truth()
        self._quick_reference = _subset_outputs(self._reference, self.quick_set[1])
        self.baseline = self._score(self._reference, evaluation)
        self.quick_baseline = self._score(self._quick_reference, self.quick_set[0])
        self.noise = self._noise_floor()
        limit, source = resolve_max_drop(max_drop, metric, self.noise)
        self.guard = Guard(
            metric=metric.name,
            unit=metric.unit,
            higher_is_better=metric.higher_is_better,
            max_drop=limit,
            max_drop_source=source,
            noise=self.noise,
            threshold=max(limit, self.noise.floor),
        )
        coarse = coarse_guard_note(metric, len(evaluation), self.guard.threshold)
        if coarse:
            self.notes.append(coarse)

    def _check_pseudo_truth(self) -> None:
        """A ``*_vs_original`` task guard needs something from the original: note a lowered
        pseudo-truth threshold, refuse (InputError) when the original detects nothing
        (:func:`~onnxprune.evaluate.tasks.check_reference`)."""
        if self.metric.kind != KIND_TASK or not self.metric.name.endswith(VS_ORIGINAL):
            return
        from onnxprune.evaluate.tasks import check_reference

        what = f"the evaluation data '{self.evaluation.source}'"
        note = check_reference(self.metric.spec, self._reference, what)
        if note and note not in self.notes:
            self.notes.append(note)

    def loss(self, value: float | None, baseline: float | None = None) -> float | None:
        """Quality lost from ``baseline`` (default: the original's) to ``value``, signed by the
        metric's direction (positive = worse)."""
        baseline = self.baseline if baseline is None else baseline
        if value is None or baseline is None:
            return None
        return baseline - value if self.metric.higher_is_better else value - baseline

    def _noise_floor(self) -> NoiseFloor:
        """The unpruned model's loss under input noise, with its bootstrap spread (see
        :mod:`onnxprune.evaluate.noise`)."""
        inputs, names = perturb_inputs(self.evaluation.inputs, self.noise_sigma, self.seed + 3)
        names = names if self.noise_sigma > 0 else []
        noisy = Dataset(inputs, self.evaluation.labels, self.evaluation.source)
        noisy_outputs = (
            self._outputs(self.original, noisy, "noise floor: evaluating")
            if names
            else self._reference
        )
        labels = self.evaluation.labels

        def loss_on(index):
            if index is None:
                return self.loss(self._score(noisy_outputs, self.evaluation, self._reference))
            subset_labels = None if labels is None else labels[index]
            targets = {k: v[index] for k, v in self.evaluation.targets.items()}
            picked = Dataset({"_": np.zeros(len(index))}, subset_labels, "bootstrap", [], targets)
            original = _subset_outputs(self._reference, index)
            value = self._score(_subset_outputs(noisy_outputs, index), picked, original)
            return self.loss(value, self._score(original, picked, original))

        return measure_noise_floor(
            loss_on,
            len(self.evaluation),
            perturbed=bool(names),
            sigma=self.noise_sigma,
            perturbed_inputs=names,
            seed=self.seed,
        )

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        original: ModelProto,
        *,
        data: Any = None,
        eval_data: Any = None,
        metric: str | Any = None,
        provider: str = "cpu",
        input_shapes: dict[str, list[int]] | None = None,
        eval_split: float = 0.3,
        batch_size: int = 64,
        max_eval_samples: int | None = None,
        seed: int = 0,
        max_drop: float | str | None = None,
        noise_sigma: float = DEFAULT_SIGMA,
        progress=None,
        synthesize: str = "auto",
    ) -> GuardEvaluator:
        """Load data, resolve the metric, run the original once (see module doc).

        ``synthesize`` (used only without ``data`` and ``eval_data``): ``auto`` inverts a
        classifier when its estimated cost fits the budget, ``inverted`` always tries,
        ``gaussian`` never (:func:`synthesize_inputs`)."""
        if batch_size < 1:
            raise InputError(f"batch-size must be >= 1, got {batch_size}")
        if not noise_sigma >= 0:
            raise InputError(f"noise-sigma must be >= 0, got {noise_sigma}")
        if max_eval_samples is not None and max_eval_samples < 1:
            raise InputError(f"max-eval-samples must be >= 1, got {max_eval_samples}")
        runner = open_runner(original, provider)
        try:
            specs = list(runner.input_specs)
            provider_name = runner.provider
            notes = list(runner.notes)
        finally:
            runner.close()
        from onnxprune.evaluate.normalization_probe import photo_classifier
        from onnxprune.graph.class_names import declared_class_names
        from onnxprune.graph.input_affine import image_pixel_scales
        from onnxprune.graph.input_ranges import integer_input_ranges

        synthesized = None
        if data is None and eval_data is None:
            synthesized = synthesize_inputs(
                original, specs, input_shapes, synthesize, seed, notes, progress
            )
        calibration, evaluation, measured = _split_data(
            data,
            eval_data,
            specs,
            input_shapes,
            eval_split,
            seed,
            notes,
            ranges=integer_input_ranges(original),
            synthesized=synthesized,
            pixel_scales=image_pixel_scales(original),
            classify=photo_classifier(original),
            class_names=declared_class_names(original),
        )
        if max_eval_samples is not None and len(evaluation) > max_eval_samples:
            chosen = np.sort(
                np.random.default_rng(seed).choice(len(evaluation), max_eval_samples, replace=False)
            )
            evaluation = evaluation.subset(
                chosen, f"{max_eval_samples} samples of {evaluation.source}"
            )
        chosen_metric = _guard_metric(metric, evaluation, original, provider, batch_size, notes)
        for dataset in (calibration, evaluation):
            for note in dataset.notes if dataset is not None else []:
                if note not in notes:
                    notes.append(note)

        def build(guard_metric: Metric, guard_notes: list[str]) -> GuardEvaluator:
            return cls(
                original,
                guard_metric,
                evaluation,
                calibration,
                provider=provider,
                provider_name=provider_name,
                input_specs=specs,
                input_shapes=input_shapes,
                batch_size=batch_size,
                accuracy_measured=measured,
                seed=seed,
                notes=guard_notes,
                max_drop=max_drop,
                noise_sigma=noise_sigma,
                progress=progress,
            )

        evaluator = build(chosen_metric, notes)
        defaulted = metric is None or (isinstance(metric, str) and not metric.strip())
        note = _not_class_scores(evaluator) if defaulted else None
        if note:
            evaluator = build(resolve_metric("r2"), [*notes, note])
        return evaluator

    # -- attributes the pipeline reads -----------------------------------------------------

    @property
    def metric_name(self) -> str:
        return self.metric.name

    @property
    def metric_source(self) -> str:
        return {KIND_LABELS: "labels", KIND_REFERENCE: "reference", KIND_TASK: "task"}.get(
            self.metric.kind, "custom"
        )

    # -- metric ----------------------------------------------------------------------------

    def _outputs(self, model, dataset: Dataset, what: str = "evaluating") -> ModelOutputs:
        say = self.progress
        counter = (
            None if say is None else (lambda done, total: say(f"{what} {done}/{total} samples"))
        )
        return run_dataset(
            model, dataset, provider=self.provider, batch_size=self.batch_size, progress=counter
        )

    def _score(self, outputs: ModelOutputs, dataset: Dataset, reference=None) -> float:
        if self.metric.kind == KIND_REFERENCE:
            reference = reference if reference is not None else outputs
            extra = {}
            if getattr(self.metric.fn, "uses_mask", False) and dataset.inputs:
                from onnxprune.evaluate.embedding import attention_mask

                extra = {"mask": attention_mask(dataset.inputs)}
            if self.metric.all_outputs:
                return _worst_over_outputs(self.metric, outputs.arrays, reference.arrays, extra)
            index = score_output_index(reference.arrays)
            return float(self.metric.fn(outputs.arrays[index], reference.arrays[index], **extra))
        if self.metric.kind == KIND_TASK:
            from onnxprune.evaluate.tasks import score_task, task_targets

            reference = reference if reference is not None else outputs
            return score_task(self.metric, outputs, reference, task_targets(dataset))
        return apply_metric(self.metric, outputs, dataset.labels)

    def evaluate(self, model: ModelProto, quick: bool = False) -> float:
        """The metric of ``model`` on the evaluation data (``quick``: on the subset, shifted
        by the original's full-minus-subset value; see module doc)."""
        if quick:
            dataset, reference = self.quick_set[0], self._quick_reference
        else:
            dataset, reference = self.evaluation, self._reference
        value = self._score(self._outputs(model, dataset), dataset, reference)
        if quick:
            return self.baseline + (value - self.quick_baseline)
        return value

    def distance(self, model: ModelProto, drop) -> float:
        """``drop(original outputs, model outputs)`` over the evaluation data — how far
        ``model``'s outputs are from the original's (0: the same), e.g. the mean KL of class
        scores; ``drop`` is a drop metric (:mod:`onnxprune.sensitivity.metrics`)."""
        outputs = self._outputs(model, self.evaluation)
        return float(drop(self._reference.arrays, outputs.arrays))

    # -- latency ---------------------------------------------------------------------------

    def latency_batch(self) -> int:
        """Batch used for latency: ``input_shapes``' first dimension, else the model's static
        batch, else 1."""
        for spec in self.input_specs:
            fixed = self.input_shapes.get(spec[0])
            if fixed:
                return int(fixed[0])
        return static_batch(self.input_specs) or 1

    def _compare(self, models: list, memory: bool = False) -> dict[str, Any]:
        from onnxprune.runtime import compare_latency

        batch = self.latency_batch()
        comparison = compare_latency(
            models,
            provider=self.provider,
            batch_sizes=(batch,),
            input_shapes=self.input_shapes or None,
            runs=LATENCY_RUNS,
            min_seconds=defaults.LATENCY_MIN_SECONDS,
            warmup_runs=LATENCY_WARMUP_RUNS,
            seed=self.seed,
            measure_memory=memory,
            data=self.evaluation.inputs if self._time_on_data() else None,
        )
        return _latency_rows(comparison, batch, len(models))

    def _time_on_data(self) -> bool:
        """Latency is timed on the evaluation data when the model has integer inputs (random
        ids could be out of range) or dynamic dimensions no input shape fixes."""
        for spec in self.input_specs:
            name, dtype, dims = spec[0], np.dtype(spec[1]), spec[2]
            if np.issubdtype(dtype, np.integer) and name in self.evaluation.inputs:
                return True
            fixed = self.input_shapes.get(name)
            if fixed is None and any(not isinstance(d, int) for d in list(dims)[1:]):
                return True
        return False

    def latency(self, model: ModelProto) -> float:
        """Median (p50) latency of ``model`` in ms at :meth:`latency_batch`."""
        return float(self._compare([model])["rows"][0]["p50_ms"])

    def compare_latency(self, original: ModelProto, pruned: ModelProto) -> dict[str, Any]:
        """Interleaved benchmark of both models: ``{"batch", "runs", "before", "after",
        "ratio_p50", "ratio_p50_interval"}`` with the runtime's per-model figures (``p50_ms``,
        ``p90_ms``, ...); the interval is the paired bootstrap's 95 % interval of the ratio
        (:func:`onnxprune.runtime.latency.ratio_interval`)."""
        rows = self._compare([original, pruned], memory=True)
        before, after = rows["rows"]
        ratio = after["p50_ms"] / before["p50_ms"] if before.get("p50_ms") else None
        return {
            "batch": rows["batch"],
            "runs": before.get("runs", LATENCY_RUNS),
            "provider": self.provider_name,
            "before": before,
            "after": after,
            "ratio_p50": ratio,
            "ratio_p50_interval": [
                _finite_or_none(after.get("ratio_p50_low")),
                _finite_or_none(after.get("ratio_p50_high")),
            ],
        }

    # -- description -----------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """``calibration`` and ``evaluation`` (source, samples, has_labels, ...), the metric
        and the quick subset size (the report's ``data`` object)."""
        calibration = (
            self.calibration.describe()
            if self.calibration is not None
            else {"source": "none", "samples": 0, "has_labels": False}
        )
        return {
            "calibration": calibration,
            "evaluation": self.evaluation.describe(),
            "metric": self.metric_name,
            "metric_source": self.metric_source,
            "metric_unit": self.metric.unit,
            "quick_samples": len(self.quick_set[0]),
            "guard": self.guard.to_dict(),
            "batch_size": self.batch_size,
        }


def _split_data(
    data,
    eval_data,
    specs,
    input_shapes,
    eval_split,
    seed,
    notes,
    ranges=None,
    synthesized: Dataset | None = None,
    pixel_scales=None,
    classify=None,
    class_names=None,
):
    """(calibration, evaluation, accuracy_measured) from the user's data arguments;
    ``synthesized``: inputs made by inverting the model when no data is given (split like
    ``data``: calibration and the guard's held-out share); ``pixel_scales``, ``classify`` and
    ``class_names`` as in :func:`~onnxprune.evaluate.data.load_data`."""
    if data is None and eval_data is None and synthesized is not None:
        calibration, evaluation = synthesized.split(eval_split, seed)
        return calibration, evaluation, False
    if data is None and eval_data is None:
        notes.append(
            "no data given: synthetic inputs, accuracy not measured "
            "(the guard compares outputs with the original model's)"
        )
        evaluation = load_data(
            f"synthetic:{SYNTHETIC_SAMPLES}", specs, input_shapes, seed=seed, input_ranges=ranges
        )
        return None, evaluation, False

    def calibration_set(spec) -> Dataset:
        """A calibration path or object, few photos brought to many crops."""
        return load_data(
            spec,
            specs,
            input_shapes,
            seed=seed,
            augment_to=PHOTO_CALIBRATION_SAMPLES,
            pixel_scales=pixel_scales,
            classify=classify,
            class_names=class_names,
        )

    if eval_data is None:
        full = calibration_set(data)
        calibration, evaluation = full.split(eval_split, seed)
        by_group = full.groups is not None and len(np.unique(full.groups)) >= 2
        notes.extend(note for note in evaluation.notes if note not in full.notes)
        if by_group:
            notes.append(
                f"the guard is measured on {len(np.unique(evaluation.groups))} of the "
                f"{len(np.unique(full.groups))} groups of --data (its 'groups' array, or the "
                "photos of an image folder), held out whole: calibration and recovery never "
                "see them"
            )
        elif not _synthetic(data):
            notes.append(
                "the guard is measured on a held-out share of --data, which also calibrates "
                "the recovery: if --data holds crops or frames of few images, it cannot see "
                "over-fitting to them; give --eval with other images, or a 'groups' array "
                "(one source id per sample) so that whole sources are held out"
            )
        return calibration, evaluation, not _synthetic(data)
    evaluation = load_data(
        eval_data,
        specs,
        input_shapes,
        seed=seed + 1,
        pixel_scales=pixel_scales,
        classify=classify,
        class_names=class_names,
    )
    calibration = None if data is None else calibration_set(data)
    if calibration is None:
        notes.append("no calibration data: only --eval given")
    return calibration, evaluation, not _synthetic(eval_data)


SYNTHESIZE_MODES = ("auto", "inverted", "gaussian")
#: Inputs synthesized by inversion without data (split into calibration and guard samples).
INVERTED_SAMPLES = 256


def synthesize_inputs(
    original: ModelProto,
    specs,
    input_shapes,
    mode: str,
    seed: int,
    notes: list[str],
    progress=None,
    settings=None,
) -> Dataset | None:
    """Calibration inputs made by inverting ``original`` (:mod:`onnxprune.evaluate.inversion`)
    when no data is given, or None (Gaussian inputs then; a note says why).

    ``mode``: ``gaussian`` never inverts; ``inverted`` inverts every eligible model;
    ``auto`` only when the estimated cost fits the budget of ``settings`` (an
    :class:`~onnxprune.evaluate.inversion.InversionSettings`; default: its defaults, about
    one to two minutes on two CPU cores for the digits models)."""
    if mode not in SYNTHESIZE_MODES:
        raise InputError(f"synthesize must be one of {', '.join(SYNTHESIZE_MODES)}, got {mode!r}")
    if mode == "gaussian":
        return None
    from onnxprune.calibrate.data import fixed_batch_size
    from onnxprune.evaluate.inversion import (
        InversionSettings,
        InversionTooSlow,
        estimated_cost,
        inversion_plan,
        invert,
    )
    from onnxprune.stats import count_macs

    plan = inversion_plan(original, specs, input_shapes)
    if isinstance(plan, str):
        notes.append(f"inputs not synthesized by inversion: {plan}")
        return None
    settings = settings or InversionSettings()
    if mode == "inverted":
        settings = dataclasses.replace(settings, budget_seconds=None)
    batch = fixed_batch_size(original) or 1
    shapes = {plan.input: [batch, *plan.sample_shape]}
    forward = count_macs(original, shapes).total / batch
    cost = estimated_cost(forward, INVERTED_SAMPLES, settings)
    if mode == "auto" and cost > settings.budget_macs:
        notes.append(
            f"inputs not synthesized by inversion: estimated {cost:.2g} MACs, over the "
            f"automatic budget {settings.budget_macs:.2g} (--synthesize inverted forces it)"
        )
        return None
    say = progress or (lambda _text: None)
    say(f"synthesizing {INVERTED_SAMPLES} inputs by inverting the model (no data given)")
    tick = time.perf_counter()
    try:
        inputs, _classes = invert(
            original,
            plan,
            INVERTED_SAMPLES,
            seed=seed,
            settings=settings,
            fixed_batch=fixed_batch_size(original),
        )
    except InputError as error:  # e.g. an op without a gradient rule
        if mode == "inverted":
            raise
        notes.append(f"inputs not synthesized by inversion: {error}")
        return None
    except InversionTooSlow as slow:
        notes.append(
            f"inputs not synthesized by inversion: {slow} on this machine "
            "(--synthesize inverted forces it)"
        )
        return None
    notes.append(
        f"no data given: {INVERTED_SAMPLES} inputs synthesized by inverting the model "
        f"(class-conditional, smoothness prior, {settings.steps} steps, "
        f"{time.perf_counter() - tick:.0f} s) calibrate the "
        "recovery and the guard; accuracy not measured (the guard compares outputs with the "
        "original model's on synthesized inputs, which overstates how well real inputs fare)"
    )
    # Inversion runs in float32 (autodiff.precision); the model reads its own input type.
    declared = next(value for value in original.graph.input if value.name == plan.input)
    dtype = onnx.helper.tensor_dtype_to_np_dtype(declared.type.tensor_type.elem_type)
    return Dataset({plan.input: inputs.astype(dtype)}, None, f"inverted:{INVERTED_SAMPLES}")


def _synthetic(spec) -> bool:
    return isinstance(spec, str | os.PathLike) and os.fspath(spec).startswith("synthetic")


def _guard_metric(
    spec, evaluation: Dataset, original, provider: str, batch_size: int, notes: list[str]
) -> Metric:
    """The metric asked for, or the default: ``top1`` with labels, else the fidelity metric
    that fits the original's first output (``DEFAULT_METRIC_SAMPLES`` samples are run to see
    it and how much of it varies between inputs); outputs that a registered decoder
    recognizes get a note naming the task flags (:func:`_task_hint`)."""
    from onnxprune.evaluate.tasks import TaskSpec, bind_task_metric, task_targets

    if isinstance(spec, TaskSpec):
        spec = bind_task_metric(None, spec, task_targets(evaluation))
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        if evaluation.has_labels:
            spec = "top1"
        else:
            probe = run_dataset(
                original, _spread_sample(evaluation), provider=provider, batch_size=batch_size
            )
            spec = _default_metric(original, evaluation, probe, real=not _synthesized(evaluation))
            if hint := _task_hint(probe, evaluation, spec):
                notes.append(hint)
    metric = resolve_metric(spec)
    if metric.kind == KIND_LABELS and not evaluation.has_labels:
        raise InputError(
            f"metric '{metric.name}' needs labels and the evaluation data has none "
            "(add a 'labels' array, or use a fidelity metric such as kl, cosine or agreement)"
        )
    return metric


def _task_hint(probe: ModelOutputs, evaluation: Dataset, metric: str) -> str | None:
    """A note when the original's outputs have a layout a registered decoder recognizes
    (:func:`onnxprune.evaluate.decoders.recognized_decoders`): the default guard compares raw
    outputs, ``--task`` would score what the head predicts. None otherwise."""
    from onnxprune.evaluate.decoders import recognized_decoders
    from onnxprune.evaluate.targets import image_size

    found = recognized_decoders(probe.arrays, image_size(evaluation.inputs))
    if not found:
        return None
    decoder, match = found[0]
    task = {"detect": "detection", "segment": "segmentation"}.get(decoder.task, decoder.task)
    return (
        f"the outputs look like a {task} head — {match}; the default guard compares raw "
        f"outputs ({metric}); --task {decoder.task} --decoder {decoder.name} guards what it "
        "predicts instead (against the original's predictions when the data has no ground "
        "truth)"
    )


def _not_class_scores(evaluator: GuardEvaluator) -> str | None:
    """Why a guard that read an output as class scores by default should not (a note), or
    None: ``expected_top1``'s own noise floor above ``CLASS_SCORE_MAX_FLOOR`` points means
    1 % input noise reorders the argmax, which a class does not do (module constants)."""
    floor = evaluator.noise.floor
    if evaluator.metric.name != CLASS_SCORE_DEFAULT or not floor > CLASS_SCORE_MAX_FLOOR:
        return None
    return (
        f"the default guard read the output as class scores, but {CLASS_SCORE_DEFAULT} moved "
        f"by {floor:.3g} points under {evaluator.noise_sigma:.0%} input noise alone (more than "
        f"{CLASS_SCORE_MAX_FLOOR:g}): an argmax that noise flips is not a class (coordinates "
        "or an embedding?); the guard is r2 (variance explained) instead; give --metric to "
        "choose"
    )


def _spread_sample(evaluation: Dataset) -> Dataset:
    """At most ``DEFAULT_METRIC_SAMPLES`` evaluation samples spread evenly over the data (the
    first ones may all be frames of one clip or crops of one photo)."""
    count = len(evaluation)
    if count <= DEFAULT_METRIC_SAMPLES:
        return evaluation
    index = np.unique(np.linspace(0, count - 1, DEFAULT_METRIC_SAMPLES).round().astype(np.int64))
    return evaluation.subset(index, f"{len(index)} samples of {evaluation.source}")


def _worst_over_outputs(metric: Metric, outputs, reference, extra) -> float:
    """The metric on every float output of the reference (and the candidate's same output),
    the worst value kept (``Metric.all_outputs``)."""
    values = [
        float(metric.fn(candidate, original, **extra))
        for candidate, original in zip(outputs, reference, strict=True)
        if np.issubdtype(np.asarray(original).dtype, np.floating)
    ]
    if not values:
        raise InputError(f"metric '{metric.name}' needs a float output; the model has none")
    return min(values) if metric.higher_is_better else max(values)


def _synthesized(evaluation: Dataset) -> bool:
    """Inputs made up by ``--synthesize`` (Gaussian or inverted), not the user's data."""
    return any(tag in str(evaluation.source) for tag in ("synthetic:", "inverted:"))


def _default_metric(original, evaluation: Dataset, probe: ModelOutputs, *, real: bool) -> str:
    """Without labels: for models with integer inputs (token ids) the text rule of
    :func:`onnxprune.evaluate.embedding.default_metric_name` (embedding cosine for hidden
    states, agreement for logits); otherwise the fidelity metric of the first output
    (:func:`~onnxprune.evaluate.fidelity.default_reference_metric`; how much the output varies
    between inputs is read on ``real`` data only: a classifier shown Gaussian noise answers
    nearly the same logits to every input, which says nothing about what its output is)."""
    from onnxprune.evaluate.embedding import default_metric_name, has_token_input

    specs = [(name, array.dtype, list(array.shape)) for name, array in evaluation.inputs.items()]
    index = score_output_index(probe.arrays)
    if has_token_input(specs):
        first = probe.arrays[index]
        outputs = [(probe.names[index], first.dtype, list(first.shape))]
        name = default_metric_name(specs, outputs, has_labels=False)
        if name != "agreement":
            return name
    graph = original if isinstance(original, ModelProto) else None
    return default_reference_metric(
        probe.arrays[index],
        read_variation=real,
        embedding_head=graph is not None and is_embedding_head(graph, probe.names[index]),
        linear_head=None if graph is None else linear_head_width(graph, probe.names[index]),
    )


def _quick_subset(evaluation: Dataset, seed: int) -> tuple[Dataset, np.ndarray]:
    """(subset, indices): at most QUICK_SAMPLES seeded random evaluation samples."""
    n = len(evaluation)
    if n <= QUICK_SAMPLES:
        return evaluation, np.arange(n)
    index = np.sort(np.random.default_rng(seed + 7).choice(n, QUICK_SAMPLES, replace=False))
    return evaluation.subset(index, f"{QUICK_SAMPLES} samples of {evaluation.source}"), index


def _subset_outputs(outputs: ModelOutputs, index: np.ndarray) -> ModelOutputs:
    return ModelOutputs(
        [a[index] for a in outputs.arrays], list(outputs.names), outputs.provider, []
    )


def _finite_or_none(value: float | None) -> float | None:
    """``value`` when it is a finite number (JSON has no NaN), else None."""
    return value if value is not None and np.isfinite(value) else None


def _latency_rows(comparison, batch: int, count: int) -> dict[str, Any]:
    """Per-model figures at ``batch`` (dicts of the runtime's ``ModelLatency``, model order)."""
    from dataclasses import asdict

    rows = [asdict(r) for r in comparison.results if r.batch == batch]
    if len(rows) != count:
        raise RuntimeError(f"latency result has {len(rows)} rows at batch {batch}, not {count}")
    return {"batch": batch, "rows": rows, "notes": list(comparison.notes)}
