"""Per-operator-type time from ONNX Runtime's profiler (``SessionOptions.enable_profiling``).

:func:`op_type_times` runs a model under the profiler and returns, per operator type as ONNX
Runtime executed it (after its graph fusions, e.g. ``FusedConv``), the kernel time per run in
milliseconds: the sum of the ``dur`` of the trace's ``Node`` events named ``*_kernel_time``
over the profiled runs, divided by their number. Warm-up runs happen before the profiler's
trace is kept (they are filtered out by run index).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np


def parse_trace(events: list[dict[str, Any]], skip_runs: int = 0) -> tuple[dict[str, float], int]:
    """(op type -> total kernel microseconds, runs counted) of a profiler trace.

    Runs are delimited by the ``model_run`` events of category ``Session``; node events before
    the end of the first ``skip_runs`` runs are ignored.
    """
    runs = sorted(
        (event["ts"], event["ts"] + event["dur"])
        for event in events
        if event.get("cat") == "Session" and event.get("name") == "model_run"
    )
    start = runs[skip_runs - 1][1] if 0 < skip_runs <= len(runs) else float("-inf")
    totals: dict[str, float] = defaultdict(float)
    for event in events:
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        if event["ts"] < start:
            continue
        op_type = event.get("args", {}).get("op_name", "?")
        totals[op_type] += float(event["dur"])
    return dict(totals), max(len(runs) - skip_runs, 0)


def op_type_times(
    model: str | os.PathLike,
    feeds: dict[str, np.ndarray],
    *,
    runs: int = 10,
    warmup: int = 2,
    provider: str = "cpu",
    threads: int | None = None,
) -> dict[str, float]:
    """Operator type -> kernel milliseconds per run (profiled ``runs`` after ``warmup`` runs)."""
    from onnxprune.runtime.session import create_session

    with create_session(model, provider=provider, threads=threads, profile=True) as runner:
        runner.bind(feeds)
        for _ in range(warmup + runs):
            runner.run_bound()
        trace = runner.end_profiling()
        events = json.loads(Path(trace).read_text())
    totals, counted = parse_trace(events, skip_runs=warmup)
    counted = max(counted, 1)
    return {op: micros / 1e3 / counted for op, micros in sorted(totals.items())}
