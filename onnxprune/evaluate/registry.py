"""The metric registry: every metric usable by name (CLI ``--metric NAME``) is a :class:`Metric`.

Three kinds, by what the function compares:

* ``labels`` — ``fn(outputs, labels) -> float`` (the model's outputs against the data's labels;
  built-ins in :mod:`onnxprune.evaluate.metrics`);
* ``reference`` — ``fn(candidate, reference) -> float`` on ONE output tensor of the evaluated
  model and the same output of the reference model (:mod:`onnxprune.evaluate.fidelity`);
* ``custom`` — a user function ``fn(outputs, labels) -> float`` (``labels`` is None when the
  data has none), registered with :func:`register_metric`;
* ``task`` — a detection or segmentation metric ``fn(predictions, truths, spec) -> float`` on
  DECODED predictions and ground truth (:mod:`onnxprune.evaluate.detection`,
  :mod:`onnxprune.evaluate.segmentation`); ``task`` says which task it belongs to. It sees
  every output of both models: :func:`onnxprune.evaluate.tasks.bind_task_metric` sets its
  ``spec`` (task, decoder, thresholds) and :func:`onnxprune.evaluate.tasks.score_task`
  decodes candidate and reference outputs and builds the truth (the data's boxes/masks, or
  for ``*_vs_original`` names the reference model's own decoded predictions).

Plug-ins: an installed package can make metrics usable by name from the CLI with an entry
point in the group ``onnxprune.metrics`` (``name = "package.module:function"``); they are
loaded when an unknown name is asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from onnxprune.errors import InputError

KIND_LABELS = "labels"
KIND_REFERENCE = "reference"
KIND_CUSTOM = "custom"
KIND_TASK = "task"
ENTRY_POINT_GROUP = "onnxprune.metrics"


@dataclass(frozen=True)
class Metric:
    """A named metric: its function, kind, direction and unit (``%`` for 0-100 values)."""

    name: str
    fn: Callable
    kind: str
    higher_is_better: bool = True
    unit: str = ""
    default_max_drop: float | None = None  # the guard's default tolerance, in ``unit``
    task: str = ""
    spec: Any = None
    distill_loss: str = "kl"  # the distillation loss serving this metric (recover/distill_losses)
    drop_metric: str | None = None  # the sensitivity drop serving it (None: by distill_loss)
    all_outputs: bool = False  # a reference metric read on every float output, the worst kept
    sample_share: bool = False  # 100 x the share of samples that pass: steps of 100 / n points

    def __call__(self, *args):
        return self.fn(*args)


METRICS: dict[str, Metric] = {}
ALIASES: dict[str, str] = {}


def _add(metric: Metric, aliases: tuple[str, ...] = ()) -> None:
    METRICS[metric.name] = metric
    for alias in aliases:
        ALIASES[alias] = metric.name


def builtin(
    name: str,
    kind: str,
    *,
    higher_is_better: bool = True,
    unit: str = "",
    aliases: tuple[str, ...] = (),
    default_max_drop: float | None = None,
    task: str = "",
    distill_loss: str = "kl",
    drop_metric: str | None = None,
    all_outputs: bool = False,
    sample_share: bool = False,
) -> Callable[[Callable], Callable]:
    """Decorator registering a built-in metric function under ``name`` (``default_max_drop``:
    the guard's default tolerance in the metric's unit, when it has one; ``task``: the task of
    a ``task`` metric, ``detect`` or ``segment``; ``distill_loss``: the registered
    distillation loss that ``--recover distill`` minimizes for this metric; ``drop_metric``:
    the sensitivity drop metric that measures what it measures, when the one of its
    distillation loss does not: :mod:`onnxprune.pipeline.drop_metric`; ``all_outputs``: a
    reference metric that the guard reads on every float output, keeping the worst value,
    instead of on the score output alone; ``sample_share``: the value is 100 × the share of
    samples that pass a per-sample test, so it moves in steps of 100 / n points on n
    samples)."""

    def decorate(fn: Callable) -> Callable:
        metric = Metric(
            name,
            fn,
            kind,
            higher_is_better,
            unit,
            default_max_drop=default_max_drop,
            task=task,
            distill_loss=distill_loss,
            drop_metric=drop_metric,
            all_outputs=all_outputs,
            sample_share=sample_share,
        )
        _add(metric, aliases)
        return fn

    return decorate


def register_metric(
    name: str,
    fn: Callable,
    *,
    higher_is_better: bool = True,
    unit: str = "",
    overwrite: bool = False,
) -> Metric:
    """Register a user metric ``fn(outputs, labels) -> float`` so ``--metric NAME`` (CLI) and
    ``metric="NAME"`` (API) find it. Built-in names cannot be replaced; a user name only with
    ``overwrite``."""
    if not callable(fn):
        raise InputError(f"metric '{name}' must be callable")
    key = str(name)
    existing = METRICS.get(ALIASES.get(key, key))
    if existing is not None and (existing.kind != KIND_CUSTOM or not overwrite):
        raise InputError(f"metric '{name}' is already registered")
    metric = Metric(key, fn, KIND_CUSTOM, higher_is_better, unit)
    _add(metric)
    return metric


def unregister_metric(name: str) -> None:
    """Remove a user metric (built-ins stay)."""
    metric = METRICS.get(name)
    if metric is not None and metric.kind == KIND_CUSTOM:
        del METRICS[name]


def get_metric(name: str) -> Metric:
    """The registered metric called ``name`` (or an alias); InputError when unknown."""
    _load_builtins()
    key = ALIASES.get(name, name)
    if key not in METRICS:
        _load_entry_point(key)
    if key not in METRICS:
        raise InputError(
            f"unknown metric '{name}' (known: {', '.join(sorted(METRICS))}; or module:function)"
        )
    return METRICS[key]


def metric_names(kind: str | None = None) -> list[str]:
    """Registered metric names (of one kind), in registration order."""
    _load_builtins()
    return [n for n, m in METRICS.items() if kind is None or m.kind == kind]


def _load_entry_point(name: str) -> None:
    """Register the ``onnxprune.metrics`` entry point called ``name``, if one is installed."""
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name != name:
            continue
        try:
            fn = entry.load()
        except Exception as error:  # a broken plug-in is the user's input
            raise InputError(
                f"metric '{name}': cannot load plug-in {entry.value}: {type(error).__name__}: "
                f"{error}"
            ) from None
        register_metric(name, fn)
        return


def _load_builtins() -> None:
    from onnxprune.evaluate import (  # noqa: F401 - registers on import
        detection,
        embedding,
        fidelity,
        metrics,
        segmentation,
    )
