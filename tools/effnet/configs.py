"""The pruned-model configurations compared by the benchmark, registered by name.

Each configuration is a function ``(bench, cut) -> Candidate`` that returns an ONNX model with
about ``cut`` of the original MACs removed (counted with :func:`effnet.measure.count_macs`) and
the wall time of its data-dependent work (calibration + recovery; 0 for data-free methods).
"""

from __future__ import annotations

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
        result = prune(bench.onnx_model, ratio=ratio, criterion="l1", input_shapes={INPUT: SHAPE})
        state["models"][ratio] = result.model
        return bench.cut_of(result.model)

    found = search_ratio(cut_of, cut, known=state["known"])
    return Candidate(state["models"][found.ratio], found.cut, 0.0, f"ratio {found.ratio:.4f}")


def temporary_workdir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="bench_effnet_")


def timed(fn: Callable[[], onnx.ModelProto]) -> tuple[onnx.ModelProto, float]:
    start = time.perf_counter()
    model = fn()
    return model, time.perf_counter() - start
