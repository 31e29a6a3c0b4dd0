"""Where the time of a default data-driven `sparsify` goes on EfficientNet-Lite2 (issue 13).

Runs ``sparsify(model, criterion="obs", data=CROPS, sparsity=0.5)`` with every default (the
``output`` allocation and bias correction) on the calibration crops of
``tools/bench_sparsity.py`` and prints each progress message with the seconds since the start
and since the previous message: the calibration pass, the 42 output-gain probes, the error
curves, then the sequential OBS levels.

    python tools/profile_sparsify.py [--calib 128]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_sparsity

from onnxprune.sparsity import sparsify


class _Clock:
    """Prints each progress message with seconds since the start and since the last one."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()

    def say(self, message: str) -> None:
        now = time.perf_counter()
        print(f"{now - self.start:7.1f} (+{now - self.last:5.1f}) {message[:100]}", flush=True)
        self.last = now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calib", type=int, default=128)
    options = parser.parse_args()
    args = bench_sparsity.parse_args(
        ["--models", "effnet", "--criteria", "obs", "--settings", "0.5",
         "--calib", str(options.calib), "--eval", "8", "--no-write"]
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for _name, path, calibration, _images, _labels in bench_sparsity.model_cases(
            args, Path(tmp)
        ):
            dense = onnx.load(str(path))
            clock = _Clock()
            sparsify(
                dense, criterion="obs", data=calibration, max_samples=options.calib,
                sparsity=0.5, progress=clock.say,
            )  # fmt: skip
            print(f"total {time.perf_counter() - clock.start:.1f} s")


if __name__ == "__main__":
    main()
