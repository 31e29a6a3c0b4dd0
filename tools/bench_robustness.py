"""Measure the validation layer: load+validate time per model, and the fuzz corpus outcome.

Writes the section between ``<!-- issue-10:start -->`` / ``<!-- issue-10:end -->`` in
docs/benchmarks.md. Usage (from the repo root)::

    PYTHONPATH=$PWD python tools/bench_robustness.py [--models 120] [--data 50] [--no-write]

Models timed: a full-size ResNet-50 (TorchScript export, 224×224, built here) and the
EfficientNet-Lite2 export (packaged ImageNet weights); ``load_model`` is timed with and without
:func:`onnxprune.io.validate.validate_model` (best of 3 each). The fuzz corpus is run in-process
exactly as ``tests/fuzz/test_fuzz.py`` runs it (peak-memory child replaced by a stub).
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools._markdown import markdown_table, write_section  # noqa: E402


def _load_avg() -> str:
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def _best(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def time_validation(folder: Path) -> list[list[object]]:
    import onnxprune.io.load as load
    from models import build_onnx

    warnings.filterwarnings("ignore")
    resnet = folder / "resnet50.onnx"
    build_onnx("resnet50", resnet, "torchscript", width=1.0, size=224)
    from tools.effnet.model import export, load_pretrained

    effnet = folder / "effnet_lite2.onnx"
    export(load_pretrained(), effnet)
    rows = []
    for path in (resnet, effnet):
        with_validation = _best(lambda p=path: load.load_model(p))
        original = load.validate_model
        load.validate_model = lambda model, label: None
        try:
            without = _best(lambda p=path: load.load_model(p))
        finally:
            load.validate_model = original
        rows.append(
            [
                path.name,
                f"{path.stat().st_size / 1e6:.1f} MB",
                f"{without:.3f}",
                f"{with_validation:.3f}",
                f"{with_validation - without:+.3f}",
            ]
        )
    return rows


def run_fuzz(model_count: int, data_count: int, folder: Path) -> tuple[dict, float, int]:
    import onnxprune.runtime.memory as memory
    from tests.fuzz.corpus import data_cases, model_cases
    from tests.fuzz.runner import run_case

    tempfile.tempdir = str(folder / "tmp")
    Path(tempfile.tempdir).mkdir(parents=True, exist_ok=True)
    memory.measure_session_memory = lambda *a, **k: memory.MemoryUsage(None, None, [])
    cases = model_cases(model_count) + data_cases(data_count)
    exits: collections.Counter = collections.Counter()
    problems: list[str] = []
    start = time.perf_counter()
    for index, case in enumerate(cases):
        commands = ("optimize",) if case.data is not None else ("inspect", "prune", "optimize")
        found, codes = run_case(case, folder / f"case{index}", commands)
        problems.extend(found)
        exits.update(f"{command} exit {code}" for command, code in codes.items())
    for problem in problems:
        print("PROBLEM", problem)
    return dict(sorted(exits.items())), time.perf_counter() - start, len(problems)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=120, help="model cases of the corpus")
    parser.add_argument("--data", type=int, default=50, help="data cases of the corpus")
    parser.add_argument("--no-write", action="store_true", help="print, do not edit the docs")
    args = parser.parse_args()
    command = f"PYTHONPATH=$PWD python tools/bench_robustness.py --models {args.models} --data {args.data}"
    with tempfile.TemporaryDirectory(prefix="bench-robustness-") as name:
        folder = Path(name)
        load_before = _load_avg()
        validation = time_validation(folder)
        load_mid = _load_avg()
        exits, seconds, problems = run_fuzz(args.models, args.data, folder / "fuzz")
        load_after = _load_avg()
    body = "\n".join(
        [
            "## Robustness: validation cost and the fuzz corpus (issue 10)",
            "",
            f"Command: `{command}`. Machine: 2 CPU cores shared with other jobs.",
            "",
            f"Load+validate, best of 3 (load average 1/5/15 min before: {load_before}, "
            f"after: {load_mid}):",
            "",
            markdown_table(
                ["model", "file", "load_model without validation (s)", "with (s)", "extra (s)"],
                validation,
            ),
            "",
            f"Fuzz corpus in-process, {args.models} model cases × inspect/prune/optimize and "
            f"{args.data} data cases × optimize: {seconds:.0f} s wall, {problems} contract "
            f"violations (load average after: {load_after}).",
            "",
            markdown_table(["command and exit", "runs"], [[k, v] for k, v in exits.items()]),
        ]
    )
    print(body)
    if not args.no_write:
        write_section("issue-10", body)


if __name__ == "__main__":
    main()
