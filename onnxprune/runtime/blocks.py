"""The channel block of an execution provider: kept channel counts that keep fast kernels.

ONNX Runtime's CPU convolutions run in a blocked layout (NCHWc) whose block is the SIMD width
in floats: 16 with AVX-512, 8 with AVX2/AVX (x86-64), 4 elsewhere (NEON on Arm). A pruned layer
whose channel count is not a multiple of the block is padded or leaves the blocked path — a
pruned digits VGG with free counts ran 1.20x *slower* than the original (docs/benchmarks.md).
CUDA and TensorRT tensor cores want multiples of 8 in fp16 (16 for int8; 8 is the default).
"""

from __future__ import annotations

import platform
from functools import cache
from pathlib import Path

GPU_BLOCK = 8


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of this machine (``/proc/cpuinfo`` on Linux; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def cpu_channel_block(flags: frozenset[str] | None = None, machine: str | None = None) -> int:
    """16 with AVX-512F, 8 with AVX2 or AVX on x86-64, 4 otherwise."""
    flags = cpu_flags() if flags is None else flags
    machine = (machine or platform.machine()).lower()
    if machine in ("x86_64", "amd64", "i386", "i686"):
        if "avx512f" in flags:
            return 16
        if "avx2" in flags or "avx" in flags:
            return 8
    return 4


def channel_block(provider: str = "cpu") -> int:
    """The ``round_to`` default for ``provider`` (cpu, cuda, tensorrt, auto: see module doc);
    ``auto`` uses the CPU's block, the provider onnxprune falls back to without a GPU."""
    if provider in ("cuda", "tensorrt"):
        return GPU_BLOCK
    return cpu_channel_block()
