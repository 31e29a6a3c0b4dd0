"""Where EfficientNet-Lite2 loses agreement under weight sparsity: one sparsify run, then each
layer alone.

Runs ``onnxprune.sparsify`` once with the given options (JSON) on EfficientNet-Lite2
(calibration crops of 5 skimage photos, evaluation crops of 4 others, tools/effnet/crops.py),
reports top-1 agreement with the dense model, then with ``--ablate`` puts each sparsified
layer's weights *alone* into the dense model and measures the agreement again (the weights
come from the sequential run, so they were fitted on a sparsified upstream: a per-layer
indication, not an exact single-layer experiment). With ``--write`` the rows go to the
``sparsity-v2-ablation`` section of docs/benchmarks.md.

    python tools/bench_sparsity_ablation.py '{"pattern": "2:4"}' --ablate --write
    python tools/bench_sparsity_ablation.py '{"sparsity": 0.5, "correct_upstream": false}'
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, write_section  # noqa: E402

SECTION = "sparsity-v2-ablation"


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("options", help="sparsify keyword arguments as JSON")
    parser.add_argument("--criterion", default="obs")
    parser.add_argument("--calib", type=int, default=128)
    parser.add_argument("--eval", type=int, default=128)
    parser.add_argument("--calib-seed", type=int, default=1, help="seed of the calibration crops")
    parser.add_argument("--eval-seed", type=int, default=2, help="seed of the evaluation crops")
    parser.add_argument(
        "--calibration-photos",
        help="photos the calibration crops are cut from (comma-separated; tools/effnet/crops.py "
        "names them; the default is the benchmark's five)",
    )
    parser.add_argument("--ablate", action="store_true", help="each layer alone, too")
    parser.add_argument("--write", action="store_true", help="write the docs section")
    parser.add_argument(
        "--preprocess",
        action="store_true",
        help="fold constants and fuse BatchNorm first (what permute=true does itself)",
    )
    args = parser.parse_args(argv)
    options = json.loads(args.options)

    import tempfile

    import numpy as np
    from effnet.crops import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, random_crops
    from effnet.measure import mean_kl
    from effnet.model import RESOLUTION, export, load_pretrained
    from onnx import numpy_helper

    from onnxprune.calibrate.session import make_session
    from onnxprune.io import normalize_model
    from onnxprune.sparsity import sparsify
    from onnxprune.sparsity.apply import apply_weights

    with tempfile.TemporaryDirectory(prefix="bench-ablation-") as tmp:
        import onnx

        dense = normalize_model(onnx.load(str(export(load_pretrained(), Path(tmp) / "m.onnx"))))
    if args.preprocess:
        from onnxprune.passes import preprocess

        dense = preprocess(dense).model
    photos = (
        tuple(args.calibration_photos.split(",")) if args.calibration_photos else CALIBRATION_PHOTOS
    )
    calibration = {"input": random_crops(photos, args.calib, seed=args.calib_seed, size=RESOLUTION)}
    images = random_crops(EVALUATION_PHOTOS, args.eval, seed=args.eval_seed, size=RESOLUTION)

    def logits(model) -> np.ndarray:
        session = make_session(model)
        return np.concatenate(
            [session.run(None, {"input": images[i : i + 32]})[0]
             for i in range(0, len(images), 32)]
        )  # fmt: skip

    def top1(model) -> np.ndarray:
        return logits(model).argmax(1)

    dense_logits = logits(dense)
    reference = dense_logits.argmax(1)
    load = load_average()
    tick = time.perf_counter()
    result = sparsify(
        dense, criterion=args.criterion, data=calibration, max_samples=args.calib, **options
    )
    seconds = time.perf_counter() - tick
    sparse_logits = logits(result.model)
    agreement = float(np.mean(sparse_logits.argmax(1) == reference))
    kl = mean_kl(dense_logits, sparse_logits)
    patterned = sum(layer.size for layer in result.layers if layer.holds_nm)
    print(
        f"{options}: agreement {agreement:.3f}, mean KL {kl:.3f}, sparsity {result.sparsity:.4f}, 2:4 layers hold "
        f"{patterned / max(result.total_weights, 1):.1%} of the weights, {seconds:.1f} s "
        f"(load {load}; calibration photos {', '.join(photos)})",
        flush=True,
    )
    for note in result.notes:
        print(f"  note: {note}", flush=True)
    rows = []
    if args.ablate:
        sparse = {init.name: numpy_helper.to_array(init) for init in result.model.graph.initializer}
        for layer in result.layers:
            alone = apply_weights(dense, {layer.weight: sparse[layer.weight]})
            value = float(np.mean(top1(alone) == reference))
            rows.append(
                [layer.node, str(layer.size), f"{layer.sparsity_after:.3f}", f"{value:.3f}"]
            )
            print(f"  {layer.node} ({layer.size}): {layer.sparsity_after:.3f} -> {value:.3f}")
    if args.write:
        command = "python tools/bench_sparsity_ablation.py " + " ".join(
            f"'{a}'" if a.startswith("{") else a for a in sys.argv[1:]
        )
        ordered = sorted(rows, key=lambda row: float(row[3]))
        body = "\n".join([
            f"`{command}` — sparsify {seconds:.1f} s at load average {load} (2 shared cores).",
            "",
            f"Whole model: options `{json.dumps(options)}`, criterion {args.criterion}, top-1 "
            f"agreement {agreement:.3f} on {args.eval} EfficientNet-Lite2 evaluation crops, "
            f"weight sparsity {result.sparsity:.4f}. Each layer alone (its sparsified weights "
            "in the otherwise dense model), lowest agreement first:",
            "",
            markdown_table(["layer", "weights", "sparsity", "agreement alone"], ordered),
        ])  # fmt: skip
        write_section(SECTION, body)
        print("wrote docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
