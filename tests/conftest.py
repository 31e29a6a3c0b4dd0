"""Shared pytest fixtures: the reference model zoo exported to ONNX, cached per test session."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

_REPO_ROOT = Path(__file__).resolve().parents[1]
if str(_REPO_ROOT) not in sys.path:  # `models/` is a top-level package that is never installed
    sys.path.insert(0, str(_REPO_ROOT))

from models import SMALL_CONFIG, build_onnx  # noqa: E402
from onnxprune import defaults  # noqa: E402

# Per-model small settings (width, size and, where it matters, depth) that export in seconds and
# still contain every block type of the architecture. Same object as models.SMALL_CONFIG.
SMALL: dict[str, dict[str, float | int]] = SMALL_CONFIG

ZooOnnx = Callable[..., Path]


@pytest.fixture(autouse=True)
def latency_on_fixed_rounds(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Latency comparisons inside ``optimize`` time their fixed rounds
    (``pipeline.evaluation.LATENCY_RUNS``) without the product's minimum of timed seconds
    (``defaults.LATENCY_MIN_SECONDS``, 2 s: up to 5,000 rounds and a bootstrap over them per
    run, for figures worth reading on a shared machine). Tests check what latency code does,
    never its figures (speed lives in the benchmarks), and the minimum's own logic is tested
    with a fake clock (tests/runtime/test_latency.py). A test marked ``default_latency`` keeps
    the product default."""
    if request.node.get_closest_marker("default_latency") is None:
        monkeypatch.setattr(defaults, "LATENCY_MIN_SECONDS", 0.0)


@pytest.fixture(scope="session")
def zoo_onnx(tmp_path_factory: pytest.TempPathFactory) -> ZooOnnx:
    """Factory ``zoo_onnx(name, exporter="torchscript", width=None, size=None, depth=None,
    keep_batchnorm=False, opset=17) -> Path`` of an exported zoo model.

    Unset width/size/depth come from ``SMALL[name]`` (depth 1.0 if SMALL has none). Files are
    exported once per session into a shared temporary folder and re-used by every test module;
    callers must not modify them (copy first).
    """
    folder = tmp_path_factory.mktemp("zoo_onnx")
    cache: dict[tuple, Path] = {}

    def factory(
        name: str,
        exporter: str = "torchscript",
        width: float | None = None,
        size: int | None = None,
        depth: float | None = None,
        keep_batchnorm: bool = False,
        opset: int = 17,
    ) -> Path:
        small = SMALL[name]
        width = float(small["width"] if width is None else width)
        size = int(small["size"] if size is None else size)
        depth = float(small.get("depth", 1.0) if depth is None else depth)
        key = (name, exporter, width, size, depth, keep_batchnorm, opset)
        if key not in cache:
            suffix = "-bn" if keep_batchnorm else ""
            version = "" if opset == 17 else f"-op{opset}"  # no file name prefixes another
            path = folder / f"{name}-{exporter}{version}-w{width}-s{size}-d{depth}{suffix}.onnx"
            cache[key] = build_onnx(
                name,
                path,
                exporter=exporter,
                width=width,
                size=size,
                depth=depth,
                keep_batchnorm=keep_batchnorm,
                opset=opset,
            )
        return cache[key]

    return factory
