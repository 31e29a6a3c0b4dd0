"""Per-operator-type time from ONNX Runtime's profiler (``SessionOptions.enable_profiling``).

:func:`op_type_times` runs a model under the profiler and returns, per operator type as ONNX
Runtime executed it (after its graph fusions and layout changes, e.g. ``ReorderInput``), the
kernel time per run in milliseconds: for each profiled run, the sum of the ``dur`` of the
trace's ``Node`` events named ``*_kernel_time`` inside that run's ``model_run`` event; then the
median over runs (robust to a co-tenant stealing the CPU during one run). The pseudo op type
``OUTSIDE`` is the run's time not spent in any kernel (executor, allocation, thread hand-off).
Warm-up runs are profiled too but dropped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: Pseudo op type: time of a run outside every kernel.
OUTSIDE = "(outside kernels)"


def op_label(event: dict[str, Any]) -> str:
    """The event's op type (``args.op_name``)."""
    return event.get("args", {}).get("op_name", "?")


def conv_kind_label(event: dict[str, Any]) -> str:
    """Op type, with convolutions split by weight shape [M, C/group, kH, kW] into
    ``Conv[dw]`` (one input channel per group, depthwise), ``Conv[1x1]`` and ``Conv[kxk]``."""
    op = op_label(event)
    if op not in ("Conv", "FusedConv"):
        return op
    shapes = event.get("args", {}).get("input_type_shape", [])
    try:
        weight = next(iter(shapes[1].values()))
    except (IndexError, AttributeError, StopIteration):
        return op
    if len(weight) < 3:
        return op
    if weight[1] == 1:
        return "Conv[dw]"
    return "Conv[1x1]" if all(d == 1 for d in weight[2:]) else "Conv[kxk]"


def parse_trace(
    events: list[dict[str, Any]],
    skip_runs: int = 0,
    label: Callable[[dict[str, Any]], str] = op_label,
) -> list[dict[str, float]]:
    """Per run (after the first ``skip_runs``): label -> kernel microseconds, plus OUTSIDE.

    A node event belongs to the ``model_run`` (category ``Session``) whose interval holds its
    start time; node events outside every run are ignored. ``label`` names an event's bucket.
    """
    runs = sorted(
        (event["ts"], event["ts"] + event["dur"])
        for event in events
        if event.get("cat") == "Session" and event.get("name") == "model_run"
    )
    per_run: list[dict[str, float]] = [{} for _ in runs]
    for event in events:
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        for index, (begin, end) in enumerate(runs):
            if begin <= event["ts"] <= end:
                op_type = label(event)
                totals = per_run[index]
                totals[op_type] = totals.get(op_type, 0.0) + float(event["dur"])
                break
    for (begin, end), totals in zip(runs, per_run, strict=True):
        totals[OUTSIDE] = max((end - begin) - sum(totals.values()), 0.0)
    return per_run[skip_runs:]


def op_type_times(
    model: str | os.PathLike,
    feeds: dict[str, np.ndarray],
    *,
    runs: int = 10,
    warmup: int = 2,
    provider: str = "cpu",
    threads: int | None = None,
    label: Callable[[dict[str, Any]], str] = op_label,
) -> dict[str, float]:
    """Operator type (or ``label``) -> median kernel ms per run over ``runs`` runs after ``warmup``."""
    (times,) = interleaved_op_type_times(
        [model], [feeds], runs=runs, warmup=warmup, provider=provider, threads=threads, label=label
    )
    return times


def interleaved_op_type_times(
    models: list[str | os.PathLike],
    feeds: list[dict[str, np.ndarray]],
    *,
    runs: int = 10,
    warmup: int = 2,
    provider: str = "cpu",
    threads: int | None = None,
    label: Callable[[dict[str, Any]], str] = op_label,
) -> list[dict[str, float]]:
    """:func:`op_type_times` of several models, their runs interleaved (A B A B ...) so that
    each sees the same machine load; one dict per model."""
    from onnxprune.runtime.session import create_session

    runners = [
        create_session(model, provider=provider, threads=threads, profile=True) for model in models
    ]
    try:
        for runner, data in zip(runners, feeds, strict=True):
            runner.bind(data)
        for _ in range(warmup + runs):
            for runner in runners:
                runner.run_bound()
        results = []
        for runner in runners:
            events = json.loads(Path(runner.end_profiling()).read_text())
            results.append(median_times(parse_trace(events, skip_runs=warmup, label=label)))
    finally:
        for runner in runners:
            runner.close()
    return results


def median_times(per_run: list[dict[str, float]]) -> dict[str, float]:
    """Op type -> median over runs of its microseconds, in milliseconds (0 where absent)."""
    ops = sorted({op for run in per_run for op in run})
    return {op: float(np.median([run.get(op, 0.0) for run in per_run])) / 1e3 for op in ops}
