"""How fragile top-1 agreement is on the EfficientNet-Lite2 evaluation crops (issue 17 context).

The unpruned model against itself under Gaussian input noise of σ · std(x) (five draws per σ),
the median top-1 probability and the share of crops whose two best classes are within 0.05 of
probability, on the 128 evaluation crops of ``tools/effnet/crops.py`` for the two crop seeds
the benchmarks use (2 and 12).

    python tools/probe_effnet_margins.py [--model effnet.onnx]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))


def main(argv: list[str] | None = None) -> None:
    import onnxruntime as ort
    from effnet.crops import EVALUATION_PHOTOS, random_crops
    from effnet.model import export, load_pretrained

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an ONNX export (default: exported now)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        path = args.model or export(load_pretrained(), Path(folder) / "effnet.onnx")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    print(
        "| crop seed | σ 0.01: agreement (5 draws) | σ 0.02 | median top-1 probability | top-2 gap < 0.05 |"
    )
    print("|---|---|---|---|---|")
    for seed in (2, 12):
        x = random_crops(EVALUATION_PHOTOS, 128, seed=seed, size=260)
        reference = session.run(None, {name: x})[0]
        rng = np.random.default_rng(0)
        cells = []
        for sigma in (0.01, 0.02):
            values = []
            for _ in range(5):
                noisy = x + rng.normal(0, sigma * x.std(), x.shape).astype(np.float32)
                out = session.run(None, {name: noisy})[0]
                values.append(100 * float((out.argmax(1) == reference.argmax(1)).mean()))
            cells.append(" / ".join(f"{v:.1f}" for v in values))
        p = np.exp(reference - reference.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        best = np.sort(p, axis=1)[:, -2:]
        gap = 100 * float(((best[:, 1] - best[:, 0]) < 0.05).mean())
        print(
            f"| {seed} | {cells[0]} % | {cells[1]} % | {np.median(best[:, 1]):.3f} | {gap:.1f} % |"
        )


if __name__ == "__main__":
    main()
