"""Per-layer OBS damping chosen by leave-photos-out layer error (issue 13; measured, not adopted).

EfficientNet-Lite2, 2:4 (or ``--sparsity``). Calibration crops of the 5 calibration photos are
split by photo into two folds (photos 0, 2, 4 against 1, 3; 52 crops each, interleaved so that
the even/odd split of :func:`onnxprune.sparsity.curves.fold_grams` *is* the photo split). For
every layer and damp of the grid, the layer is sparsified on one fold's H and its relative
output error read on the other fold's H (both ways, averaged); the damp with the lowest
held-out error is that layer's. ``sparsify`` then runs with those per-layer dampings and the
top-1 agreement with the dense model is measured on the evaluation crops, as in
``tools/bench_sparsity_ablation.py``.

    python tools/damp_per_layer.py                 # 2:4
    python tools/damp_per_layer.py --sparsity 0.5
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

GRID = (0.001, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)


def photo_interleaved(crops, photos: int, per_fold: int):
    """Crops reordered so even positions come from photos 0, 2, 4… and odd from 1, 3…"""
    import numpy as np

    index = np.arange(len(crops))
    first = index[index % photos % 2 == 0][:per_fold]
    second = index[index % photos % 2 == 1][:per_fold]
    return crops[np.stack([first, second], 1).reshape(-1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsity", type=float, default=None, help="unstructured instead")
    parser.add_argument("--eval", type=int, default=128)
    args = parser.parse_args(argv)

    import numpy as np
    import onnx
    from effnet.crops import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, random_crops
    from effnet.model import RESOLUTION, export, load_pretrained

    import onnxprune.sparsity.api as api
    from onnxprune.calibrate.session import make_session
    from onnxprune.io import normalize_model
    from onnxprune.sparsity.curves import fold_grams
    from onnxprune.sparsity.obs import output_energy, sparsegpt
    from onnxprune.sparsity.targets import find_layers

    with tempfile.TemporaryDirectory(prefix="damp-per-layer-") as tmp:
        dense = normalize_model(onnx.load(str(export(load_pretrained(), Path(tmp) / "m.onnx"))))
    crops = random_crops(CALIBRATION_PHOTOS, 130, seed=1, size=RESOLUTION)
    calibration = {"input": photo_interleaved(crops, len(CALIBRATION_PHOTOS), 52)}
    layers = [layer for layer in find_layers(dense).layers if layer.allows_nm(4)]
    weights = api._weights(dense, layers)
    tick = time.perf_counter()
    folds = fold_grams(
        dense, layers, calibration, positions=64, batch_size=32, max_samples=104, seed=0
    )
    rng = np.random.default_rng(0)
    chosen = {}
    for layer in layers:
        order = layer.nm_order()
        matrix = layer.to_matrix(weights[layer.weight]).astype(np.float64)[:, order]
        if matrix.shape[0] > 128:
            matrix = matrix[np.sort(rng.choice(matrix.shape[0], 128, replace=False))]
        (g0, n0), (g1, n1) = folds[layer.node]
        halves = [(g0 / n0)[np.ix_(order, order)], (g1 / n1)[np.ix_(order, order)]]
        count = None if args.sparsity is None else round(args.sparsity * matrix.size)
        errors = []
        for damp in GRID:
            error = 0.0
            for fit, held in ((halves[0], halves[1]), (halves[1], halves[0])):
                options = {"nm": (2, 4)} if count is None else {"count": count}
                solved, _ = sparsegpt(matrix, fit, damp=damp, **options)
                error += output_energy(matrix - solved, held) / output_energy(matrix, held) / 2
            errors.append(error)
        chosen[layer.node] = GRID[int(np.argmin(errors))]
        print(f"{layer.node}: damp {chosen[layer.node]:g} (held-out errors "
              + " ".join(f"{e:.4f}" for e in errors) + ")", flush=True)  # fmt: skip
    print(f"selection {time.perf_counter() - tick:.0f} s", flush=True)

    api.reconstruct_sequential = functools.partial(api.reconstruct_sequential, layer_damps=chosen)
    options = {"pattern": "2:4"} if args.sparsity is None else {"sparsity": args.sparsity}
    reference_crops = random_crops(CALIBRATION_PHOTOS, 128, seed=1, size=RESOLUTION)
    result = api.sparsify(
        dense, criterion="obs", data={"input": reference_crops}, max_samples=128, **options
    )
    images = random_crops(EVALUATION_PHOTOS, args.eval, seed=2, size=RESOLUTION)

    def top1(model):
        session = make_session(model)
        return np.concatenate(
            [session.run(None, {"input": images[i : i + 32]})[0].argmax(1)
             for i in range(0, len(images), 32)]
        )  # fmt: skip

    agreement = float(np.mean(top1(result.model) == top1(dense)))
    print(f"{options} with per-layer damps: agreement {agreement:.3f}, sparsity "
          f"{result.sparsity:.4f}, {result.seconds:.1f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
