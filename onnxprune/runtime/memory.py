"""Peak memory of one ONNX Runtime session, measured in a fresh child process.

Method (Linux): a child Python process loads the inputs, then reads its resident set size
(``VmRSS`` in ``/proc/self/status``) as the baseline and resets the kernel's high-water mark
(writing ``5`` to ``/proc/self/clear_refs``). It then creates the session and runs it
``runs`` times; ``VmHWM`` (peak RSS) minus the baseline is the session's peak host memory:
weights, graph optimization copies, the arena and the intermediate tensors of the largest run.
Measuring in a child keeps other models, earlier runs and the parent's allocator out of the
figure. Where the high-water mark cannot be reset it is still read (a note says so); on
platforms without ``/proc`` the figure is None.

GPU memory (CUDA/TensorRT): the child calls ``cudaMemGetInfo`` (CUDA runtime via ctypes)
before the session is created and after the runs; the drop in free device memory is the
session's footprint (ONNX Runtime's arena keeps what it grew to, so this is its peak).
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MIB = 1024 * 1024


@dataclass
class MemoryUsage:
    """Peak host memory (MiB) of a session over its runs; GPU memory (MiB) on CUDA; notes."""

    peak_rss_mb: float | None
    gpu_mb: float | None
    notes: list[str]


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _cuda_free_bytes() -> int | None:
    """Free device memory from ``cudaMemGetInfo``, or None without a CUDA runtime."""
    for name in ("libcudart.so", "libcudart.so.13", "libcudart.so.12"):
        try:
            library = ctypes.CDLL(name)
        except OSError:
            continue
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        if library.cudaMemGetInfo(ctypes.byref(free), ctypes.byref(total)) == 0:
            return int(free.value)
        return None
    return None


def _child(arguments: dict[str, Any]) -> dict[str, Any]:
    """Runs in the child process: baseline, session, runs, peak."""
    import onnxruntime  # noqa: F401 - the library itself is not the session's memory

    from onnxprune.runtime.providers import preload_gpu_libraries, resolve_provider
    from onnxprune.runtime.session import create_session

    with np.load(arguments["feeds"]) as data:
        feeds = {name: data[name] for name in data.files}
    gpu = arguments["provider"] != "cpu"
    if gpu:
        preload_gpu_libraries()
        resolve_provider(arguments["provider"])  # the probe's session is not this session
    free_before = _cuda_free_bytes() if gpu else None
    baseline = _status_kib("VmRSS")
    reset = _reset_peak()
    runner = create_session(
        arguments["model"],
        provider=arguments["provider"],
        threads=arguments["threads"],
        **arguments.get("session_options", {}),
    )
    runner.bind(feeds)
    for _ in range(arguments["runs"]):
        runner.run_bound()
    peak = _status_kib("VmHWM")
    free_after = _cuda_free_bytes() if gpu else None
    runner.close()
    notes = [] if reset else ["peak RSS not reset before the session (includes start-up)"]
    return {
        "peak_rss_mb": None if peak is None or baseline is None else (peak - baseline) / 1024,
        "gpu_mb": None
        if free_before is None or free_after is None
        else (free_before - free_after) / MIB,
        "notes": notes,
    }


def measure_session_memory(
    model: str | os.PathLike,
    feeds: dict[str, np.ndarray],
    *,
    provider: str = "cpu",
    threads: int | None = None,
    runs: int = 2,
    timeout_s: float = 600,
    session_options: dict[str, Any] | None = None,
) -> MemoryUsage:
    """Peak memory of a session of ``model`` (a file) running ``feeds``, in a child process."""
    with tempfile.TemporaryDirectory(prefix="onnxprune-mem-") as folder:
        feeds_path = Path(folder) / "feeds.npz"
        np.savez(feeds_path, **feeds)
        arguments = {
            "model": os.fspath(model),
            "feeds": str(feeds_path),
            "provider": provider,
            "threads": threads,
            "runs": runs,
            "session_options": session_options or {},
        }
        try:
            completed = subprocess.run(
                [sys.executable, "-m", "onnxprune.runtime.memory", json.dumps(arguments)],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return MemoryUsage(None, None, [f"memory measurement timed out after {timeout_s} s"])
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        reason = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        return MemoryUsage(None, None, [f"memory measurement failed: {reason[:200]}"])
    result = json.loads(lines[-1])
    return MemoryUsage(result["peak_rss_mb"], result["gpu_mb"], result["notes"])


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))
