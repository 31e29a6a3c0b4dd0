"""Latency benchmark of one or more models on identical inputs, runs interleaved (A B A B ...).

Protocol, per batch size (ascending):

1. Identical synthetic inputs for every model (:func:`synthetic_feeds`), bound once
   (device-resident on CUDA, see :mod:`.session`).
2. First run of each model timed apart (``first_run_ms``: lazy allocations, kernel selection).
3. Warm-up rounds, each running every model once, until ``warmup_runs`` rounds or
   ``warmup_seconds`` of warm-up, whichever comes first (at least one round).
4. Timed rounds A B A B ...: ``runs`` rounds, or fewer when ``time_budget_s`` (timed phase of
   this batch size, all models together) runs out, never fewer than ``MIN_RUNS``; or more,
   until ``min_seconds`` of timed rounds have passed (at most ``MAX_ROUNDS``): the same pair
   of 2 ms models (a 4 % MAC cut) timed 8 times gave p50 ratios anywhere in 0.88–1.26 with 50
   rounds, 0.95–1.13 when the rounds filled 2 s, on a shared 2-core machine
   (docs/benchmarks.md, "Latency ratios: how many timed runs").
5. The uncertainty of each ratio to the first model: a paired bootstrap over rounds
   (:func:`ratio_interval`), ``ratio_p50_low`` / ``ratio_p50_high``. It holds the noise of
   the rounds, not what differs between two sessions of the same model (memory placement,
   thread wake-ups): on models under 0.1 ms the repeats spread wider than their intervals.

Session creation (``create_s``) is timed once per model, before any run. Statistics per model
and batch size are in :func:`summarize`; ratios are to the first model at the same batch size.
Peak memory is measured per model and batch size in a child process (:mod:`.memory`).
Interleaving makes every model see the same machine load, so on a shared machine the ratios
are more trustworthy than the absolute times.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from onnxprune.errors import InputError, input_shape_hint
from onnxprune.graph.input_ranges import (
    DEFAULT_HIGH,
    InputRange,
    integer_input_ranges,
    random_integers,
)
from onnxprune.io.external_data import model_file_bytes
from onnxprune.runtime.session import InputSpec, _load_graph, create_session

#: Never fewer timed runs per model and batch size, even when the time budget is spent.
MIN_RUNS = 3
#: Never more timed rounds than this, however fast the models (``min_seconds``).
MAX_ROUNDS = 5000
#: Bootstrap resamples of :func:`ratio_interval`, and its coverage.
BOOTSTRAP_RESAMPLES = 1000
INTERVAL_COVERAGE = 0.95
#: Percentiles reported, name -> q (linear interpolation between order statistics).
PERCENTILES: dict[str, float] = {"p50_ms": 50.0, "p90_ms": 90.0, "p99_ms": 99.0}

Clock = Callable[[], float]


def summarize(times_s: Sequence[float], batch: int) -> dict[str, float]:
    """Statistics of per-run times (seconds) at batch size ``batch``.

    ``pXX_ms`` = ``numpy.percentile(times, XX)`` (linear interpolation) in ms;
    ``mean_ms`` = arithmetic mean in ms; ``min_ms`` = fastest run;
    ``throughput`` = ``batch / mean`` in samples per second; ``runs`` = number of runs.
    """
    if not len(times_s):
        raise ValueError("no timed runs")
    values = np.asarray(times_s, dtype=np.float64)
    stats = {name: float(np.percentile(values, q) * 1e3) for name, q in PERCENTILES.items()}
    mean = float(values.mean())
    stats["mean_ms"] = mean * 1e3
    stats["min_ms"] = float(values.min() * 1e3)
    stats["throughput"] = batch / mean if mean > 0 else float("inf")
    stats["runs"] = len(values)
    return stats


def batch_shapes(
    specs: Sequence[InputSpec], batch: int, input_shapes: dict[str, list[int]] | None = None
) -> dict[str, list[int]]:
    """Concrete shape of every input: axis 0 = ``batch``; other dynamic axes from ``input_shapes``.

    ``input_shapes[name]`` gives a full shape whose axis 0 is replaced by ``batch``; its other
    axes must agree with the model's static ones. A model whose axis 0 is fixed runs only at
    that batch size. Raises InputError naming the input and axis that cannot be resolved.
    """
    input_shapes = input_shapes or {}
    unknown = sorted(set(input_shapes) - {spec.name for spec in specs})
    if unknown:
        raise InputError(f"input_shapes names unknown input {unknown[0]!r}")
    shapes = {}
    for spec in specs:
        given = input_shapes.get(spec.name)
        if given is not None and len(given) != len(spec.shape):
            raise InputError(
                f"input_shapes[{spec.name!r}]: {len(given)} dimensions, the model has {len(spec.shape)}"
            )
        shape = []
        for axis, dim in enumerate(spec.shape):
            if axis == 0:
                if isinstance(dim, int) and dim != batch:
                    raise InputError(
                        f"input {spec.name!r} has a fixed batch dimension of {dim}: "
                        f"cannot run batch size {batch}"
                    )
                shape.append(batch)
            elif given is not None:
                if isinstance(dim, int) and given[axis] != dim:
                    raise InputError(
                        f"input_shapes[{spec.name!r}]: dimension {axis} is {given[axis]}, "
                        f"the model fixes it to {dim}"
                    )
                shape.append(given[axis])
            elif isinstance(dim, int):
                shape.append(dim)
            else:
                raise InputError(
                    f"input {spec.name!r} has a dynamic dimension {dim or '?'} at axis {axis}: "
                    f"give {input_shape_hint(spec.name)} (or time on data: data=...)"
                )
        shapes[spec.name] = shape
    return shapes


def synthetic_feeds(
    specs: Sequence[InputSpec],
    shapes: dict[str, list[int]],
    seed: int = 0,
    ranges: Mapping[str, InputRange] | None = None,
) -> dict[str, np.ndarray]:
    """Seeded random inputs of the given shapes, respecting dtypes.

    Floats: standard normal; bool: fair coin; integers: in the input's range from ``ranges``
    (:func:`onnxprune.graph.input_ranges.integer_input_ranges`: embedding-table size for ids,
    a 0/1 padding mask for masks), else uniform in [0, 10).
    """
    rng = np.random.default_rng(seed)
    ranges = ranges or {}
    feeds = {}
    for spec in specs:
        shape = shapes[spec.name]
        if np.issubdtype(spec.dtype, np.floating):
            array = rng.standard_normal(shape).astype(spec.dtype)
        elif spec.dtype == np.bool_:
            array = rng.random(shape) < 0.5
        else:
            value_range = ranges.get(spec.name) or InputRange(0, DEFAULT_HIGH, "unknown", "")
            array = random_integers(rng, tuple(shape), spec.dtype, value_range)
        feeds[spec.name] = array
    return feeds


def data_feeds(
    specs: Sequence[InputSpec], data: Mapping[str, np.ndarray], batch: int
) -> dict[str, np.ndarray]:
    """The first ``batch`` samples of the user's ``data`` (arrays by input name, first axis =
    samples; repeated when there are fewer), cast to the model's dtypes."""
    feeds = {}
    for spec in specs:
        if spec.name not in data:
            raise InputError(f"data has no array for input {spec.name!r}")
        array = np.asarray(data[spec.name])
        if array.ndim == 0 or array.shape[0] == 0:
            raise InputError(f"data for input {spec.name!r} has no samples")
        rows = np.arange(batch) % array.shape[0]
        feeds[spec.name] = np.ascontiguousarray(array[rows]).astype(spec.dtype, copy=False)
    return feeds


def _input_ranges(model: onnx.ModelProto | str | os.PathLike) -> dict[str, InputRange]:
    """Integer input ranges of ``model`` (the graph only; weights are not loaded)."""
    graph = model if isinstance(model, onnx.ModelProto) else _load_graph(model)
    return integer_input_ranges(graph)


@dataclass
class ModelLatency:
    """Latency figures of one model at one batch size (times in ms unless named ``_s``)."""

    model: str
    batch: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    throughput: float
    runs: int
    warmup_runs: int
    create_s: float
    first_run_ms: float
    file_bytes: int
    ratio_p50: float = 1.0
    ratio_mean: float = 1.0
    ratio_p50_low: float = 1.0
    ratio_p50_high: float = 1.0
    peak_rss_mb: float | None = None
    gpu_mb: float | None = None


@dataclass
class LatencyComparison:
    """Result of :func:`compare_latency`: one :class:`ModelLatency` per model and batch size."""

    models: list[str]
    paths: list[str | None]
    provider: str
    requested_provider: str
    batch_sizes: list[int]
    input_shapes: dict[str, dict[str, list[int]]]
    results: list[ModelLatency]
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list, repr=False)

    def get(self, model: str, batch: int) -> ModelLatency:
        """The figures of ``model`` at ``batch``."""
        for result in self.results:
            if result.model == model and result.batch == batch:
                return result
        raise KeyError((model, batch))

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict: settings, notes and one row per model and batch size."""
        return {
            "provider": self.provider,
            "requested_provider": self.requested_provider,
            "models": [
                {"name": name, "path": path}
                for name, path in zip(self.models, self.paths, strict=True)
            ],
            "batch_sizes": self.batch_sizes,
            "input_shapes": self.input_shapes,
            "settings": self.settings,
            "notes": self.notes,
            "results": [asdict(result) for result in self.results],
        }


def _labels(models: Sequence[Any]) -> tuple[list[str], list[str | None]]:
    names, paths = [], []
    for index, model in enumerate(models):
        if isinstance(model, onnx.ModelProto):
            name = model.graph.name or f"model{index}"
            paths.append(None)
        else:
            name = Path(os.fspath(model)).name
            paths.append(os.fspath(model))
        while name in names:
            name = f"{name}#{index}"
        names.append(name)
    return names, paths


def file_bytes(model: Any) -> int:
    """Size on disk of a model file plus its external data files (serialized size for a proto)."""
    if isinstance(model, onnx.ModelProto):
        return model.ByteSize()
    return model_file_bytes(model)


def _same_inputs(names: list[str], specs: list[list[InputSpec]]) -> None:
    reference = {(s.name, s.dtype) for s in specs[0]}
    for name, model_specs in zip(names[1:], specs[1:], strict=True):
        if {(s.name, s.dtype) for s in model_specs} != reference:
            raise InputError(
                f"{name} and {names[0]} have different inputs (names or dtypes): "
                "they cannot be compared on identical data"
            )


def compare_latency(
    models: Sequence[onnx.ModelProto | str | os.PathLike],
    *,
    provider: str = "cpu",
    batch_sizes: Sequence[int] = (1,),
    input_shapes: dict[str, list[int]] | None = None,
    warmup_runs: int = 10,
    warmup_seconds: float = 1.0,
    runs: int = 50,
    time_budget_s: float | None = None,
    min_seconds: float = 0.0,
    threads: int | None = None,
    seed: int = 0,
    measure_memory: bool = True,
    session_options: dict[str, Any] | None = None,
    clock: Clock = time.perf_counter,
    session_factory: Callable[..., Any] = create_session,
    data: Mapping[str, np.ndarray] | None = None,
) -> LatencyComparison:
    """Benchmark ``models`` (paths or ModelProtos) on identical inputs; see the module docstring.

    ``data`` (arrays by input name, first axis = samples): time on the first ``batch`` samples
    of the user's data instead of random inputs (their shapes win over ``input_shapes``).

    ``min_seconds``: keep timing rounds past ``runs`` until this many seconds of timed rounds
    (all models together) have passed, at most :data:`MAX_ROUNDS` (``time_budget_s``, an upper
    bound, wins over it).

    ``session_options`` are passed to :func:`create_session` (e.g. ``cudnn_conv_algo_search``,
    ``cuda_graph``). ``clock`` and ``session_factory`` exist for tests.
    """
    if not models:
        raise InputError("no model to benchmark")
    batches = sorted({int(b) for b in batch_sizes})
    if not batches or batches[0] < 1:
        raise InputError("batch sizes must be positive integers")
    if runs < 1 or warmup_runs < 0:
        raise InputError("runs must be >= 1 and warm-up runs >= 0")
    if not min_seconds >= 0:
        raise InputError(f"min_seconds must be >= 0, got {min_seconds}")
    names, paths = _labels(models)
    options = dict(session_options or {})
    runners, create_s = [], []
    try:
        for model in models:
            start = clock()
            runners.append(session_factory(model, provider=provider, threads=threads, **options))
            create_s.append(clock() - start)
        _same_inputs(names, [r.input_specs for r in runners])
        used = runners[0].provider
        notes = list(dict.fromkeys(note for r in runners for note in r.notes))
        specs = runners[0].input_specs
        sizes = [file_bytes(model) for model in models]
        results: list[ModelLatency] = []
        order: list[str] = []
        shapes_used: dict[str, dict[str, list[int]]] = {}
        feeds_used: dict[int, dict[str, np.ndarray]] = {}
        ranges = {} if data is not None else _input_ranges(models[0])
        if data is not None:
            notes.append("timed on the given data (first samples of each batch size)")
        for batch in batches:
            if data is not None:
                feeds = data_feeds(specs, data, batch)
                shapes = {name: list(array.shape) for name, array in feeds.items()}
            else:
                shapes = batch_shapes(specs, batch, input_shapes)
                feeds = synthetic_feeds(specs, shapes, seed, ranges)
            shapes_used[str(batch)] = shapes
            feeds_used[batch] = feeds
            first_ms = []
            for runner in runners:
                runner.bind(feeds)
                start = clock()
                runner.run_bound()
                first_ms.append((clock() - start) * 1e3)
            warm = _warm_up(runners, warmup_runs, warmup_seconds, clock)
            times = _timed_rounds(runners, names, runs, time_budget_s, clock, order, min_seconds)
            for index, name in enumerate(names):
                stats = summarize(times[index], batch)
                results.append(
                    ModelLatency(
                        model=name,
                        batch=batch,
                        p50_ms=stats["p50_ms"],
                        p90_ms=stats["p90_ms"],
                        p99_ms=stats["p99_ms"],
                        mean_ms=stats["mean_ms"],
                        min_ms=stats["min_ms"],
                        throughput=stats["throughput"],
                        runs=int(stats["runs"]),
                        warmup_runs=warm,
                        create_s=create_s[index],
                        first_run_ms=first_ms[index],
                        file_bytes=sizes[index],
                    )
                )
            _ratios([r for r in results if r.batch == batch])
            _intervals([r for r in results if r.batch == batch], times, seed)
    finally:
        for runner in runners:
            runner.close()
    if measure_memory:
        _measure_memory(models, results, feeds_used, provider, threads, options, notes)
    settings = {
        "warmup_runs": warmup_runs,
        "warmup_seconds": warmup_seconds,
        "runs": runs,
        "time_budget_s": time_budget_s,
        "min_seconds": min_seconds,
        "threads": threads,
        "seed": seed,
        "interleaved": True,
        "session_options": options,
        "io_binding": runners[0].on_device if runners else False,
    }
    return LatencyComparison(
        models=names,
        paths=paths,
        provider=used,
        requested_provider=provider,
        batch_sizes=batches,
        input_shapes=shapes_used,
        results=results,
        settings=settings,
        notes=notes,
        order=order,
    )


def _warm_up(runners: list[Any], rounds: int, seconds: float, clock: Clock) -> int:
    """Interleaved warm-up rounds; returns how many were run."""
    start = clock()
    done = 0
    while done < max(rounds, 1):
        for runner in runners:
            runner.run_bound()
        done += 1
        if clock() - start >= seconds:
            break
    return done


def _timed_rounds(
    runners: list[Any],
    names: list[str],
    runs: int,
    budget: float | None,
    clock: Clock,
    order: list[str],
    min_seconds: float = 0.0,
) -> list[list[float]]:
    """``runs`` rounds A B A B ... (fewer if ``budget`` seconds run out; more, up to
    :data:`MAX_ROUNDS`, until ``min_seconds`` have passed); per-model run times."""
    times: list[list[float]] = [[] for _ in runners]
    phase_start = clock()
    rounds = 0
    while rounds < MAX_ROUNDS:
        for index, runner in enumerate(runners):
            start = clock()
            runner.run_bound()
            times[index].append(clock() - start)
            order.append(names[index])
        rounds += 1
        spent = clock() - phase_start
        if budget is not None and rounds >= MIN_RUNS and spent >= budget:
            break
        if rounds >= runs and spent >= min_seconds:
            break
    return times


def ratio_interval(
    times: Sequence[float], base: Sequence[float], seed: int = 0
) -> tuple[float, float]:
    """Paired bootstrap interval of p50(times) / p50(base) over timed rounds.

    Round r ran both models back to back, so rounds are resampled as pairs (the load a round
    saw stays with both of its times): B = :data:`BOOTSTRAP_RESAMPLES` resamples of the round
    indices with replacement, the ratio of medians of each, and the (1 − c)/2 and (1 + c)/2
    quantiles of those ratios, c = :data:`INTERVAL_COVERAGE`."""
    ours, theirs = np.asarray(times, dtype=np.float64), np.asarray(base, dtype=np.float64)
    count = min(len(ours), len(theirs))
    ours, theirs = ours[:count], theirs[:count]
    if not count:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    chunks = []
    for start in range(0, BOOTSTRAP_RESAMPLES, 100):  # 100 resamples at a time: bounded memory
        picks = rng.integers(0, count, size=(min(100, BOOTSTRAP_RESAMPLES - start), count))
        bottom = np.median(theirs[picks], axis=1)
        chunks.append(np.median(ours[picks], axis=1) / np.where(bottom > 0, bottom, np.nan))
    ratios = np.concatenate(chunks)
    ratios = ratios[np.isfinite(ratios)]
    if not len(ratios):  # a base time of 0 in most resamples: no ratio to bound
        return float("nan"), float("nan")
    tail = (1.0 - INTERVAL_COVERAGE) / 2
    low, high = np.quantile(ratios, [tail, 1.0 - tail])
    return float(low), float(high)


def _intervals(rows: list[ModelLatency], times: list[list[float]], seed: int) -> None:
    for row, row_times in zip(rows[1:], times[1:], strict=True):
        row.ratio_p50_low, row.ratio_p50_high = ratio_interval(row_times, times[0], seed)


def _ratios(rows: list[ModelLatency]) -> None:
    base = rows[0]
    for row in rows:
        row.ratio_p50 = row.p50_ms / base.p50_ms if base.p50_ms > 0 else float("nan")
        row.ratio_mean = row.mean_ms / base.mean_ms if base.mean_ms > 0 else float("nan")


def _measure_memory(
    models: Sequence[Any],
    results: list[ModelLatency],
    feeds_used: dict[int, dict[str, np.ndarray]],
    provider: str,
    threads: int | None,
    options: dict[str, Any],
    notes: list[str],
) -> None:
    from onnxprune.runtime.memory import measure_session_memory

    with tempfile.TemporaryDirectory(prefix="onnxprune-bench-") as folder:
        files = []
        for index, model in enumerate(models):
            if isinstance(model, onnx.ModelProto):
                path = Path(folder) / f"model{index}.onnx"
                copy = onnx.ModelProto()  # saving with external data rewrites the proto
                copy.CopyFrom(model)
                too_big = model.ByteSize() >= 2**31 - 2**20
                onnx.save_model(copy, str(path), save_as_external_data=too_big)
                files.append(path)
            else:
                files.append(Path(os.fspath(model)))
        by_name = dict(zip(_labels(models)[0], files, strict=True))
        for row in results:
            feeds = feeds_used[row.batch]
            usage = measure_session_memory(
                by_name[row.model],
                feeds,
                provider=provider,
                threads=threads,
                session_options=options,
            )
            row.peak_rss_mb = usage.peak_rss_mb
            row.gpu_mb = usage.gpu_mb
            for note in usage.notes:
                if note not in notes:
                    notes.append(note)
