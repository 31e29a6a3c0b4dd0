"""The pruned-model configurations compared by the benchmark, registered by name.

Each configuration is a function ``(bench, cut) -> Candidate`` that returns an ONNX model with
about ``cut`` of the original MACs removed (counted with :func:`effnet.measure.count_macs`) and
the wall time of its data-dependent work (calibration + recovery; 0 for data-free methods).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from effnet.measure import INPUT, SHAPE, count_macs
from effnet.search import search_ratio


@dataclass
class Candidate:
    """A pruned model, its measured MAC cut, and how it was obtained."""

    model: onnx.ModelProto
    cut: float
    seconds: float = 0.0
    detail: str = ""


@dataclass
class Bench:
    """What every configuration needs: the original (torch and ONNX), MACs, calibration crops."""

    torch_model: object
    onnx_model: onnx.ModelProto
    macs: int
    calibration: np.ndarray
    workdir: Path
    progress: Callable[[str], None] = print
    cache: dict[str, dict] = field(default_factory=dict)

    def cut_of(self, model: onnx.ModelProto) -> float:
        return 1.0 - count_macs(model) / self.macs


CONFIGS: dict[str, Callable[[Bench, float], Candidate]] = {}


def register(name: str):
    def decorate(fn):
        CONFIGS[name] = fn
        return fn

    return decorate


@register("torch-pruning l1")
def torch_pruning_l1(bench: Bench, cut: float) -> Candidate:
    """Torch-Pruning MagnitudePruner (L1), uniform ratio searched to hit ``cut``; no data."""
    from effnet.tp_baseline import export_onnx, prune_torch

    state = bench.cache.setdefault("tp", {"known": {}, "files": {}})

    def cut_of(ratio: float) -> float:
        model = export_onnx(prune_torch(bench.torch_model, ratio), bench.workdir, f"tp_{ratio}")
        state["files"][ratio] = bench.workdir / f"tp_{ratio}.onnx"
        value = bench.cut_of(model)
        bench.progress(f"  torch-pruning ratio {ratio:.4f}: MAC cut {value:.2%}")
        return value

    found = search_ratio(cut_of, cut, known=state["known"])
    model = onnx.load(str(state["files"][found.ratio]))
    return Candidate(model, found.cut, 0.0, f"ratio {found.ratio:.4f}")


@register("onnxprune l1")
def onnxprune_l1(bench: Bench, cut: float) -> Candidate:
    """onnxprune.prune, L1 criterion, uniform ratio searched to hit ``cut``; no recovery."""
    from onnxprune.prune import prune

    state = bench.cache.setdefault("l1", {"known": {}, "models": {}})

    def cut_of(ratio: float) -> float:
        result = prune(
            bench.onnx_model, ratio=ratio, criterion="l1", round_to=1, input_shapes={INPUT: SHAPE}
        )
        state["models"][ratio] = result.model
        return bench.cut_of(result.model)

    found = search_ratio(cut_of, cut, known=state["known"])
    return Candidate(state["models"][found.ratio], found.cut, 0.0, f"ratio {found.ratio:.4f}")


@dataclass(frozen=True)
class DataDriven:
    """A data-driven onnxprune configuration (all steps through the public API).

    ``criterion`` scores clusters from calibration statistics; ``allocation`` is "sensitivity"
    (per-group drops measured with :func:`onnxprune.sensitivity.measure_sensitivity`, then
    :func:`~onnxprune.sensitivity.allocate.allocate_by_sensitivity` for the MAC cut) or
    "uniform" (one ratio for every group, searched to hit the cut); ``recovery`` is the
    :func:`onnxprune.recover.make_recovery` method applied to the pruned model.
    """

    criterion: str
    allocation: str
    recovery: str
    sensitivity_recovery: str = "bias"
    sensitivity_ratios: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75)
    sensitivity_samples: int = 32
    ignore: tuple[str, ...] = ()
    distill_steps: int = 0  # recovery "lsq+distill": Adam steps after the refit
    distill_batch: int = 8

    def run(self, bench: Bench, cut: float) -> Candidate:
        from onnxprune.analysis import analyze
        from onnxprune.importance import score_clusters
        from onnxprune.passes.prepare import prepare
        from onnxprune.recover import make_recovery
        from onnxprune.rewrite import apply_removal, check_model

        data = {INPUT: bench.calibration}
        samples = len(bench.calibration)
        # scores and the sensitivity table do not depend on the final recovery: share them
        key = repr(dataclasses.replace(self, recovery="", distill_steps=0))
        state = bench.cache.setdefault(key, {})
        if "analysis" not in state:
            _, prepared, _ = prepare(bench.onnx_model, {INPUT: SHAPE})
            state["analysis"] = analyze(prepared, {INPUT: SHAPE})
        analysis = state["analysis"]
        shared = 0.0  # data work done once for every cut (scores, sensitivity table)
        if "scores" not in state:
            bench.progress(f"  scoring ({self.criterion}, {samples} calibration crops)")
            (state["scores"], state["score_s"]) = _timed(
                lambda: score_clusters(
                    analysis, self.criterion, original=bench.onnx_model, calibration=data
                )
            )
        shared += state["score_s"]
        if self.allocation == "sensitivity":
            removed, detail, seconds = self._sensitivity(bench, analysis, cut, state, data)
            shared += seconds
        else:
            removed, detail = self._uniform(bench, analysis, cut, state)
        pruned = apply_removal(analysis, removed)
        bench.progress(f"  recovery ({self.recovery}, {samples} calibration crops)")
        if self.recovery == "lsq+distill":
            from onnxprune.recover.distill import make_distill_recovery

            recover = make_distill_recovery(
                analysis,
                data,
                base="lsq",
                max_samples=samples,
                progress=bench.progress,
                steps=self.distill_steps,
                batch_size=self.distill_batch,
                eval_every=5,
                patience=2,
            )
        else:
            recover = make_recovery(
                self.recovery, analysis, data, max_samples=samples, progress=bench.progress
            )
        model, recovery_s = _timed(lambda: recover(analysis, set(removed), pruned))
        check_model(model)
        detail += f"; scores+sensitivity {shared:.0f} s, recovery {recovery_s:.0f} s"
        return Candidate(model, bench.cut_of(model), shared + recovery_s, detail)

    def _sensitivity(self, bench, analysis, cut, state, data):
        from onnxprune.recover import make_recovery
        from onnxprune.sensitivity import measure_sensitivity
        from onnxprune.sensitivity.allocate import allocate_by_sensitivity

        if "table" not in state:
            bench.progress(
                f"  sensitivity ({self.sensitivity_samples} crops, ratios "
                f"{self.sensitivity_ratios}, recovery {self.sensitivity_recovery})"
            )
            recover = (
                None
                if self.sensitivity_recovery == "none"
                else make_recovery(
                    self.sensitivity_recovery, analysis, data, max_samples=len(bench.calibration)
                )
            )
            state["table"], state["table_s"] = _timed(
                lambda: measure_sensitivity(
                    analysis,
                    data,
                    ratios=self.sensitivity_ratios,
                    scores=state["scores"],
                    recover=recover,
                    max_samples=self.sensitivity_samples,
                    batch_size=self.sensitivity_samples,
                    original=bench.onnx_model,
                )
            )
        allocation = allocate_by_sensitivity(
            state["table"], analysis, cut * analysis.total_macs, protected=list(self.ignore)
        )
        pruned_groups = sum(1 for count in allocation.per_group.values() if count)
        detail = f"{pruned_groups} groups pruned, largest group ratio {max(allocation.ratios.values()):.2f}"
        return set(allocation.removed), detail, state["table_s"]

    def _uniform(self, bench, analysis, cut, state):
        from onnxprune.allocate import AllocationPolicy, select_removal
        from onnxprune.rewrite import apply_removal

        known = state.setdefault("known", {})
        removals = state.setdefault("removals", {})

        def cut_of(ratio: float) -> float:
            policy = AllocationPolicy(ratio=ratio, ignore=list(self.ignore))
            removals[ratio] = set(select_removal(analysis, state["scores"], policy))
            return bench.cut_of(apply_removal(analysis, removals[ratio]))

        found = search_ratio(cut_of, cut, known=known)
        return removals[found.ratio], f"uniform ratio {found.ratio:.4f}"


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def temporary_workdir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="bench_effnet_")


CONFIGS["onnxprune obs+sens.+bias"] = DataDriven("obs", "sensitivity", "bias").run
CONFIGS["onnxprune obs+sens.+lsq"] = DataDriven("obs", "sensitivity", "lsq").run
CONFIGS["onnxprune obs+sens.+lsq+distill"] = DataDriven(
    "obs", "sensitivity", "lsq+distill", distill_steps=20, distill_batch=8
).run
