"""tr(M H Mᵀ) as a three-operand einsum against one BLAS product (sparsity layer errors).

Shapes of EfficientNet-Lite2's layer errors: a 128 × 1,248 matrix (curve rows of a 1,248-column
project conv) and the 1,000 × 1,280 classifier. Median of ``--repeats`` timings each.

    python tools/bench_output_energy.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from onnxprune.sparsity.obs import output_energy

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    for rows, cols in ((128, 1248), (1000, 1280)):
        m = rng.standard_normal((rows, cols))
        x = rng.standard_normal((2 * cols, cols))
        h = x.T @ x / len(x)
        timings = {}
        for name, fn in (
            ("einsum", lambda m=m, h=h: float(np.einsum("ij,jk,ik->", m, h, m))),
            ("output_energy", lambda m=m, h=h: output_energy(m, h)),
        ):
            runs = []
            for _ in range(args.repeats):
                tick = time.perf_counter()
                value = fn()
                runs.append(time.perf_counter() - tick)
            timings[name] = (statistics.median(runs), value)
        (slow, a), (fast, b) = timings["einsum"], timings["output_energy"]
        print(f"{rows} x {cols}: einsum {slow:.4f} s, output_energy {fast:.4f} s "
              f"({slow / fast:.0f}x), relative difference {abs(a - b) / abs(a):.1e}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
