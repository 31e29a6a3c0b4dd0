"""Latency benchmark: statistics on a fake clock, interleaving, warm-up and budget rules, real runs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest

from onnxprune.errors import InputError
from onnxprune.runtime import compare_latency
from onnxprune.runtime.latency import (
    MAX_ROUNDS,
    batch_shapes,
    ratio_interval,
    summarize,
    synthetic_feeds,
)
from onnxprune.runtime.session import InputSpec
from tests.runtime.tiny import conv_model, mixed_inputs_model, relu_model

F32 = np.dtype(np.float32)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeRunner:
    """Advances the fake clock by its scheduled durations (seconds), logging every run."""

    def __init__(self, name: str, clock: FakeClock, durations: list[float], log: list[str]):
        self.name, self.clock, self.durations, self.log = name, clock, list(durations), log
        self.provider = "CPUExecutionProvider"
        self.notes: list[str] = []
        self.on_device = False
        self.input_specs = [InputSpec("x", F32, ["N", 2])]
        self.bound: list[tuple[int, ...]] = []
        self.closed = False

    def bind(self, feeds: dict[str, np.ndarray]) -> None:
        self.bound.append(feeds["x"].shape)

    def run_bound(self) -> None:
        self.clock.now += self.durations.pop(0) if len(self.durations) > 1 else self.durations[0]
        self.log.append(self.name)

    def close(self) -> None:
        self.closed = True


def fake_bench(schedules: dict[str, list[float]], create: dict[str, float], **kwargs):
    clock, log, runners = FakeClock(), [], {}

    def factory(model, **options):
        clock.now += create[model.graph.name]
        runner = FakeRunner(model.graph.name, clock, schedules[model.graph.name], log)
        runners[model.graph.name] = runner
        return runner

    models = []
    for name in schedules:
        model = relu_model(2)
        model.graph.name = name
        models.append(model)
    kwargs.setdefault("measure_memory", False)
    result = compare_latency(models, clock=clock, session_factory=factory, **kwargs)
    return result, log, runners


def test_summarize_hand_computed() -> None:
    times = [i / 1000 for i in range(1, 11)]  # 1..10 ms
    stats = summarize(times, batch=4)
    # numpy linear percentiles of 1..10: rank q/100 * 9 from 1 -> p50 5.5, p90 9.1, p99 9.91
    assert stats["p50_ms"] == pytest.approx(5.5)
    assert stats["p90_ms"] == pytest.approx(9.1)
    assert stats["p99_ms"] == pytest.approx(9.91)
    assert stats["mean_ms"] == pytest.approx(5.5)
    assert stats["min_ms"] == pytest.approx(1.0)
    assert stats["throughput"] == pytest.approx(4 / 0.0055)
    assert stats["runs"] == 10
    with pytest.raises(ValueError):
        summarize([], 1)


def test_fake_clock_statistics_ratios_and_interleaving() -> None:
    timed_a = [i / 1000 for i in range(1, 11)]  # 1..10 ms
    timed_b = [2 * t for t in timed_a]  # twice as slow
    warm = [0.5] * 2
    result, log, runners = fake_bench(
        {"a": [0.25, *warm, *timed_a], "b": [0.75, *warm, *timed_b]},
        create={"a": 1.5, "b": 2.5},
        batch_sizes=(3,),
        warmup_runs=2,
        warmup_seconds=100.0,
        runs=10,
    )
    assert result.models == ["a", "b"]
    a, b = result.get("a", 3), result.get("b", 3)
    assert (a.create_s, b.create_s) == (pytest.approx(1.5), pytest.approx(2.5))
    assert (a.first_run_ms, b.first_run_ms) == (pytest.approx(250.0), pytest.approx(750.0))
    assert a.warmup_runs == b.warmup_runs == 2
    assert a.runs == b.runs == 10
    assert (a.p50_ms, a.p90_ms, a.p99_ms) == pytest.approx((5.5, 9.1, 9.91))
    assert (b.p50_ms, b.p90_ms, b.p99_ms) == pytest.approx((11.0, 18.2, 19.82))
    assert a.throughput == pytest.approx(3 / 0.0055)
    assert (a.ratio_p50, b.ratio_p50, b.ratio_mean) == pytest.approx((1.0, 2.0, 2.0))
    # first runs, warm-up rounds and timed rounds all alternate A B A B ...
    assert log == ["a", "b"] * 13
    assert result.order == ["a", "b"] * 10
    assert runners["a"].bound == [(3, 2)] and runners["a"].closed


def test_warmup_stops_after_warmup_seconds() -> None:
    result, _, _ = fake_bench(
        {"a": [0.3]}, create={"a": 0.0}, warmup_runs=10, warmup_seconds=1.0, runs=5
    )
    # 0.3, 0.6, 0.9, 1.2 s: the fourth round reaches 1 s
    assert result.get("a", 1).warmup_runs == 4


def test_time_budget_and_minimum_runs() -> None:
    one_second = {"a": [1.0], "b": [1.0]}
    create = {"a": 0.0, "b": 0.0}
    result, _, _ = fake_bench(one_second, create, warmup_runs=0, runs=50, time_budget_s=10.0)
    assert result.get("a", 1).runs == result.get("b", 1).runs == 5  # 2 s per round
    result, _, _ = fake_bench(one_second, create, warmup_runs=0, runs=50, time_budget_s=0.5)
    assert result.get("a", 1).runs == 3  # MIN_RUNS even when the budget is spent


def test_min_seconds_extends_the_rounds_and_the_budget_still_caps_them() -> None:
    quarter = {"a": [0.25], "b": [0.25]}  # 0.5 s per round
    create = {"a": 0.0, "b": 0.0}
    result, _, _ = fake_bench(quarter, create, warmup_runs=0, runs=4, min_seconds=5.0)
    assert result.get("a", 1).runs == 10  # 4 runs take 2 s: rounds go on until 5 s
    assert result.settings["min_seconds"] == 5.0
    result, _, _ = fake_bench(quarter, create, warmup_runs=0, runs=4, min_seconds=1.0)
    assert result.get("a", 1).runs == 4  # the floor is already passed: runs decide
    result, _, _ = fake_bench(
        quarter, create, warmup_runs=0, runs=4, min_seconds=5.0, time_budget_s=1.5
    )
    assert result.get("a", 1).runs == 3  # an upper bound wins over the floor
    tiny = {"a": [1e-9], "b": [1e-9]}
    result, _, _ = fake_bench(tiny, create, warmup_runs=0, runs=4, min_seconds=5.0)
    assert result.get("a", 1).runs == MAX_ROUNDS  # however fast the models
    with pytest.raises(InputError, match="min_seconds"):
        compare_latency([relu_model()], min_seconds=-1.0)


def test_ratio_interval_pairs_rounds_and_brackets_the_ratio() -> None:
    rng = np.random.default_rng(0)
    load = rng.uniform(1.0, 3.0, size=400)  # a round's machine load hits both models
    base = 0.010 * load * rng.uniform(0.98, 1.02, size=400)
    slower = 0.020 * load * rng.uniform(0.98, 1.02, size=400)
    low, high = ratio_interval(slower, base, seed=1)
    point = np.median(slower) / np.median(base)
    assert low <= point <= high
    assert 1.7 < low < high < 2.3
    assert (low, high) == ratio_interval(slower, base, seed=1)  # deterministic for a seed
    same_low, same_high = ratio_interval(base * rng.uniform(0.9, 1.1, size=400), base)
    assert same_low < 1.0 < same_high
    # fewer rounds, wider interval
    few = ratio_interval(slower[:20], base[:20], seed=1)
    assert few[1] - few[0] > high - low
    # nothing to bound: no rounds, or a base that took no time
    assert all(np.isnan(ratio_interval([], [])))
    assert all(np.isnan(ratio_interval([0.1, 0.1], [0.0, 0.0])))


def test_ratio_intervals_in_the_results() -> None:
    result, _, _ = fake_bench(
        {"a": [0.25, 0.01, 0.01, 0.012], "b": [0.25, 0.02, 0.02, 0.024]},
        create={"a": 0.0, "b": 0.0},
        warmup_runs=0,
        runs=30,
    )
    a, b = result.get("a", 1), result.get("b", 1)
    assert (a.ratio_p50_low, a.ratio_p50_high) == (1.0, 1.0)
    assert b.ratio_p50_low <= b.ratio_p50 <= b.ratio_p50_high
    assert b.ratio_p50 == pytest.approx(2.0)
    assert "ratio_p50_low" in result.to_json()["results"][1]


def test_batch_shapes_rules() -> None:
    specs = [InputSpec("x", F32, ["N", 3, "H", "W"]), InputSpec("m", F32, [1, 4])]
    shapes = batch_shapes(specs[:1], 8, {"x": [1, 3, 16, 20]})
    assert shapes == {"x": [8, 3, 16, 20]}
    with pytest.raises(
        InputError, match=r"dynamic dimension H at axis 2: give input_shapes=\{'x': \["
    ):
        batch_shapes(specs[:1], 1)
    with pytest.raises(InputError, match="fixed batch dimension of 1: cannot run batch size 2"):
        batch_shapes(specs[1:], 2)
    assert batch_shapes(specs[1:], 1) == {"m": [1, 4]}
    with pytest.raises(InputError, match="dimension 1 is 4, the model fixes it to 3"):
        batch_shapes(specs[:1], 1, {"x": [1, 4, 8, 8]})
    with pytest.raises(InputError, match="unknown input 'y'"):
        batch_shapes(specs[:1], 1, {"y": [1]})
    with pytest.raises(InputError, match="2 dimensions, the model has 4"):
        batch_shapes(specs[:1], 1, {"x": [1, 3]})


def test_synthetic_feeds_respect_dtypes_and_seed() -> None:
    specs = [
        InputSpec("f", np.dtype(np.float16), ["N", 2]),
        InputSpec("i", np.dtype(np.int64), ["N"]),
        InputSpec("b", np.dtype(np.bool_), ["N"]),
    ]
    shapes = {"f": [5, 2], "i": [5], "b": [5]}
    feeds = synthetic_feeds(specs, shapes, seed=3)
    assert {k: (v.dtype, v.shape) for k, v in feeds.items()} == {
        "f": (np.float16, (5, 2)),
        "i": (np.int64, (5,)),
        "b": (np.bool_, (5,)),
    }
    assert feeds["i"].min() >= 0 and feeds["i"].max() < 10
    again = synthetic_feeds(specs, shapes, seed=3)
    assert all(np.array_equal(feeds[k], again[k]) for k in feeds)


def test_real_cpu_benchmark_json(tmp_path: Path) -> None:
    wide, narrow = tmp_path / "wide.onnx", tmp_path / "narrow.onnx"
    onnx.save_model(conv_model(16), str(wide))
    onnx.save_model(conv_model(4), str(narrow))
    result = compare_latency(
        [wide, narrow],
        batch_sizes=(2, 1),
        input_shapes={"x": [1, 3, 8, 8]},
        warmup_runs=2,
        warmup_seconds=0.1,
        runs=5,
        threads=1,
        measure_memory=False,  # measured in a child per model and batch: see test_memory.py
    )
    data = result.to_json()
    assert data["provider"] == "CPUExecutionProvider"
    assert data["batch_sizes"] == [1, 2]
    assert data["input_shapes"]["2"] == {"x": [2, 3, 8, 8]}
    assert [(row["model"], row["batch"]) for row in data["results"]] == [
        ("wide.onnx", 1),
        ("narrow.onnx", 1),
        ("wide.onnx", 2),
        ("narrow.onnx", 2),
    ]
    keys = {"p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput", "create_s", "first_run_ms"}
    keys |= {"peak_rss_mb", "file_bytes", "ratio_p50"}
    for row in data["results"]:
        assert keys <= set(row)
        assert row["runs"] == 5 and row["p50_ms"] > 0 and row["peak_rss_mb"] is None
    wide_row, narrow_row = data["results"][2], data["results"][3]
    assert wide_row["ratio_p50"] == 1.0
    assert narrow_row["ratio_p50"] == pytest.approx(narrow_row["p50_ms"] / wide_row["p50_ms"])
    assert wide_row["file_bytes"] == os.path.getsize(wide)
    assert narrow_row["file_bytes"] == os.path.getsize(narrow)


def test_models_with_different_inputs_cannot_be_compared() -> None:
    with pytest.raises(InputError, match="different inputs"):
        compare_latency([relu_model(4), mixed_inputs_model()], measure_memory=False)


def test_bad_arguments() -> None:
    with pytest.raises(InputError, match="no model"):
        compare_latency([])
    with pytest.raises(InputError, match="batch sizes must be positive"):
        compare_latency([relu_model()], batch_sizes=(0,))


def _lookup_model(rows: int = 3) -> onnx.ModelProto:
    """y = table[ids] with a ``rows``-row table: ids >= rows make ONNX Runtime fail."""
    table = onnx.numpy_helper.from_array(np.ones((rows, 4), np.float32), "table")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Gather", ["table", "ids"], ["y"])],
        "lookup",
        [onnx.helper.make_tensor_value_info("ids", onnx.TensorProto.INT64, ["N", "L"])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [table],
    )
    return onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8
    )


def test_random_token_ids_stay_inside_the_table() -> None:
    result = compare_latency(
        [_lookup_model(3)],
        input_shapes={"ids": [2, 64]},
        runs=3,
        warmup_runs=0,
        measure_memory=False,
    )
    assert result.results[0].runs == 3


def test_latency_on_given_data_uses_its_shapes() -> None:
    data = {"ids": np.array([[0, 1, 2, 1, 0]] * 3, dtype=np.int32)}
    result = compare_latency(
        [_lookup_model(3)],
        data=data,
        batch_sizes=(4,),
        runs=3,
        warmup_runs=0,
        measure_memory=False,
    )
    assert any("given data" in note for note in result.notes)
    assert result.input_shapes == {"4": {"ids": [4, 5]}}
