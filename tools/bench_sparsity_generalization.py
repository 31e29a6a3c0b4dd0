"""Where a sparsified EfficientNet-Lite2 stops agreeing with the dense model: on the crops it was
calibrated on, on other crops of the same photos, or on other photos.

For each setting (``sparsify`` keyword arguments as JSON, criterion ``obs``) the tool sparsifies
the dense model on ``--calib`` crops of the calibration photos (seed 1), then measures, against
the dense model, the mean KL(dense ‖ sparse) of the softmax outputs and the top-1 agreement on
three crop sets: the calibration crops themselves, as many other crops of the same photos
(seed 7), and ``--eval`` crops of the evaluation photos (seed 2; tools/effnet/crops.py).
With ``--distill STEPS`` it then distils the sparse model toward the dense one on the
calibration crops (KL, Adam, masks kept: ``recover.distill(keep_zeros=True)``) and measures
again. ``--write`` puts the table into the ``sparsity-generalization`` section of
docs/benchmarks.md.

    python tools/bench_sparsity_generalization.py '{"pattern": "2:4", "damp": 0.1}' '{"sparsity": 0.5}' --distill 100 --write
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, publish  # noqa: E402

SECTION = "sparsity-generalization"
CALIBRATION_SEED, OTHER_CROPS_SEED, EVALUATION_SEED = 1, 7, 2


def load_average() -> str:
    return "/".join(f"{value:.2f}" for value in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="+", help="sparsify keyword arguments, one JSON each")
    parser.add_argument("--calib", type=int, default=128)
    parser.add_argument("--eval", type=int, default=128)
    parser.add_argument("--distill", type=int, default=0, help="distillation steps (0: none)")
    parser.add_argument("--distill-lr", type=float, default=1e-5)
    parser.add_argument("--batch", type=int, default=8, help="distillation batch")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)

    import numpy as np
    import onnx
    from effnet.crops import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, random_crops
    from effnet.measure import INPUT, logits, mean_kl
    from effnet.model import RESOLUTION, export, load_pretrained
    from onnx import numpy_helper

    from onnxprune.calibrate.labelled import load_samples
    from onnxprune.io import normalize_model
    from onnxprune.passes.prepare import prepare
    from onnxprune.recover.distill import DistillReport, distill
    from onnxprune.sparsity import sparsify
    from onnxprune.sparsity.apply import apply_weights

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-generalization-") as tmp:
        dense = normalize_model(onnx.load(str(export(load_pretrained(), Path(tmp) / "m.onnx"))))
    crops = {
        "calibration crops": random_crops(
            CALIBRATION_PHOTOS, args.calib, seed=CALIBRATION_SEED, size=RESOLUTION
        ),
        "other crops, same photos": random_crops(
            CALIBRATION_PHOTOS, args.calib, seed=OTHER_CROPS_SEED, size=RESOLUTION
        ),
        "other photos": random_crops(
            EVALUATION_PHOTOS, args.eval, seed=EVALUATION_SEED, size=RESOLUTION
        ),
    }
    references = {name: logits(dense, images) for name, images in crops.items()}
    calibration = {INPUT: crops["calibration crops"]}

    def measured(model) -> list[str]:
        cells = []
        for name, images in crops.items():
            out = logits(model, images)
            agreement = float(np.mean(out.argmax(1) == references[name].argmax(1)))
            cells.append(f"{mean_kl(references[name], out):.4f} / {agreement:.3f}")
        return cells

    rows = []
    for text in args.settings:
        options = json.loads(text)
        load = load_average()
        tick = time.perf_counter()
        result = sparsify(
            dense, criterion="obs", data=calibration, max_samples=args.calib, **options
        )
        seconds = time.perf_counter() - tick
        cells = measured(result.model)
        rows.append([f"`{json.dumps(options)}`", "none", f"{result.sparsity:.4f}", *cells,
                     f"{seconds:.0f}", load])  # fmt: skip
        print(" | ".join(rows[-1]), flush=True)
        if not args.distill:
            continue
        shape = {INPUT: [args.batch, 3, RESOLUTION, RESOLUTION]}
        fixed_dense = prepare(dense, shape)[1]
        fixed_sparse = prepare(result.model, shape)[1]
        samples = load_samples(calibration, fixed_dense, max_samples=args.calib)
        report = DistillReport()
        load = load_average()
        tick = time.perf_counter()
        distilled = distill(
            fixed_dense, fixed_sparse, samples, steps=args.distill, batch_size=args.batch,
            lr=args.distill_lr, parameters="skip-grouped", keep_zeros=True, report=report,
        )  # fmt: skip
        seconds = time.perf_counter() - tick
        names = {init.name for init in result.model.graph.initializer}
        values = {
            init.name: numpy_helper.to_array(init)
            for init in distilled.graph.initializer
            if init.name in names
        }
        model = apply_weights(result.model, values)
        zeros = sum(int(np.count_nonzero(v == 0)) for v in values.values())
        before = sum(
            int(np.count_nonzero(numpy_helper.to_array(i) == 0))
            for i in result.model.graph.initializer
            if i.name in values
        )
        recovery = (
            f"distill {report.steps} steps (best {report.best_step}), held-out KL "
            f"{report.heldout_before:.4f} → {report.heldout_after:.4f}; zeros {before} → {zeros}"
        )
        rows.append([f"`{json.dumps(options)}`", recovery, f"{result.sparsity:.4f}",
                     *measured(model), f"{seconds:.0f}", load])  # fmt: skip
        print(" | ".join(rows[-1]), flush=True)
    total = time.perf_counter() - started
    header = ["sparsify options", "recovery", "weight sparsity", *[f"{n}: KL / top-1" for n in crops],
              "s", "load avg"]  # fmt: skip
    command = "python tools/bench_sparsity_generalization.py " + " ".join(
        f"'{a}'" if a.startswith("{") else a for a in sys.argv[1:]
    )
    body = "\n".join([
        f"`{command}` — {total / 60:.1f} min (2 shared CPU cores; load average 1/5/15 min at "
        "the start of each row).",
        "",
        f"EfficientNet-Lite2, criterion obs on {args.calib} calibration crops of "
        f"{', '.join(CALIBRATION_PHOTOS)}. Each cell: mean KL(dense ‖ sparse) of the softmax "
        "outputs / top-1 agreement with the dense model, on the calibration crops themselves, "
        f"on {args.calib} other crops of the same photos, and on {args.eval} crops of "
        f"{', '.join(EVALUATION_PHOTOS)}. Seconds: sparsify, or the distillation.",
        "",
        markdown_table(header, rows),
    ])  # fmt: skip
    publish(SECTION, body, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
