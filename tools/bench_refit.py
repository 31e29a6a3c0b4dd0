"""Least-squares refit time on EfficientNet-Lite2: frontier runs vs runs from the graph inputs.

One ``optimize`` step (l1, uniform allocation, ``recover='lsq'``, guard off, target macs=0.8)
on 128 calibration crops, twice: each refit level running only from the tensors the previous
level left behind (the default, ``frontier_mb=1024``), and every level running both models
from the graph inputs (``frontier_mb=0``, what the refit did before). Same removal, same
result (checked: identical written weights); the seconds spent in ``refit_least_squares``
are timed by wrapping it.

    python tools/bench_refit.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))


def main() -> None:
    import numpy as np
    from effnet.crops import CALIBRATION_PHOTOS, random_crops
    from effnet.model import RESOLUTION, export, load_pretrained
    from onnx import numpy_helper

    import onnxprune.recover as recover
    import onnxprune.recover.lsq as lsq
    from onnxprune import optimize

    timed: list[float] = []
    original_refit = lsq.refit_least_squares
    frontier = {"mb": 1024.0}

    def refit(*args, **kwargs):
        kwargs["frontier_mb"] = frontier["mb"]
        tick = time.perf_counter()
        try:
            return original_refit(*args, **kwargs)
        finally:
            timed.append(time.perf_counter() - tick)

    recover.refit_least_squares = refit
    crops = random_crops(CALIBRATION_PHOTOS, 128, seed=1, size=RESOLUTION)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        model = str(export(load_pretrained(), Path(folder) / "lite2.onnx"))
        for frontier_mb in (1024.0, 0.0):
            timed.clear()
            frontier["mb"] = frontier_mb
            result = optimize(
                model, "macs=0.8", data={"input": crops}, criterion="l1",
                allocation="uniform", recover="lsq", steps=1, max_drop=100,
                measure_latency=False,
            )  # fmt: skip
            results[frontier_mb] = (sum(timed), len(timed), result.model)
    same = all(
        np.array_equal(numpy_helper.to_array(a), numpy_helper.to_array(b))
        for a, b in zip(
            results[1024.0][2].graph.initializer, results[0.0][2].graph.initializer, strict=True
        )
    )
    for frontier_mb, (seconds, calls, _) in results.items():
        print(
            f"frontier_mb={frontier_mb:g}: {calls} refits, {seconds:.1f} s in refit_least_squares"
        )
    print(f"identical weights: {same}; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
