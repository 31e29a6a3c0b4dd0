"""N:M channel permutation on EfficientNet-Lite2: 2:4 OBS with and without the reorder.

For each crop draw (calibration seed : evaluation seed; calibration crops of 5 skimage photos,
evaluation crops of 4 others, tools/effnet/crops.py) and each N:M coverage, runs
``onnxprune.sparsify(pattern="2:4", criterion="obs")`` on the preprocessed model (constants
folded, BatchNorm fused: what ``permute`` writes, so every row starts from the same dense
weights) with ``permute`` off, with the ``diag`` saliency and with the ``obs`` saliency, and
reports top-1 agreement and mean KL to the dense model on the evaluation crops, the share of
the search's own saliency (``diag``: w²·E[x²]; ``obs``: w²/[(H + λI)⁻¹]_jj) that 2:4 removes
before and after the reorder (mean over searched groups) and the wall time. ``--write`` puts the table in the ``nm-permutation`` section of docs/benchmarks.md.

    python tools/bench_nm_permutation.py --write
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, publish  # noqa: E402

SECTION = "nm-permutation"
VARIANTS = {"none": {"permute": False}, "diag": {"permute": True, "permute_saliency": "diag"},
            "obs": {"permute": True, "permute_saliency": "obs"}}  # fmt: skip


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def removed_shares(result) -> tuple[str, str]:
    if result.permutation is None:
        return "-", "-"
    groups = [g for g in result.permutation.to_dict()["groups"] if g["removed_before"] is not None]
    if not groups:
        return "-", "-"
    before = sum(g["removed_before"] for g in groups) / len(groups)
    after = sum(g["removed_after"] for g in groups) / len(groups)
    return f"{100 * before:.2f} %", f"{100 * after:.2f} %"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1:2,11:12", help="calibration:evaluation seed pairs")
    parser.add_argument("--coverages", default="1.0,0.9")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--calib", type=int, default=128)
    parser.add_argument("--eval", type=int, default=256)
    parser.add_argument("--damp", type=float, default=0.1)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)

    import numpy as np
    import onnx
    from effnet.crops import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, random_crops
    from effnet.measure import logits, mean_kl
    from effnet.model import RESOLUTION, export, load_pretrained

    from onnxprune.io import normalize_model
    from onnxprune.passes import preprocess
    from onnxprune.sparsity import sparsify

    with tempfile.TemporaryDirectory(prefix="bench-nm-permutation-") as tmp:
        exported = export(load_pretrained(), Path(tmp) / "m.onnx")
        dense = preprocess(normalize_model(onnx.load(str(exported)))).model
    started, load_start = time.perf_counter(), load_average()
    rows = []
    for pair in args.seeds.split(","):
        calib_seed, eval_seed = (int(v) for v in pair.split(":"))
        calibration = {"input": random_crops(CALIBRATION_PHOTOS, args.calib, seed=calib_seed,
                                             size=RESOLUTION)}  # fmt: skip
        images = random_crops(EVALUATION_PHOTOS, args.eval, seed=eval_seed, size=RESOLUTION)
        reference = logits(dense, images)
        for coverage in (float(c) for c in args.coverages.split(",")):
            for variant in args.variants.split(","):
                tick = time.perf_counter()
                result = sparsify(
                    dense, pattern="2:4", criterion="obs", data=calibration,
                    max_samples=args.calib, damp=args.damp, nm_coverage=coverage,
                    **VARIANTS[variant],
                )  # fmt: skip
                seconds = time.perf_counter() - tick
                candidate = logits(result.model, images)
                agreement = float(np.mean(candidate.argmax(1) == reference.argmax(1)))
                patterned = sum(layer.size for layer in result.layers if layer.holds_nm)
                before, after = removed_shares(result)
                row = [
                    f"{calib_seed}:{eval_seed}", f"{coverage:.1f}",
                    f"{patterned / result.total_weights:.1%}", variant, f"{agreement:.3f}",
                    f"{mean_kl(reference, candidate):.3f}", before, after, f"{seconds:.0f}",
                ]  # fmt: skip
                print(" | ".join(row), flush=True)
                rows.append(row)
    command = "python tools/bench_nm_permutation.py " + " ".join(sys.argv[1:])
    body = "\n".join([
        f"`{command.strip()}` — whole run {(time.perf_counter() - started) / 60:.1f} min, load "
        f"average {load_start} at start, {load_average()} at end (2 shared CPU cores). "
        f"EfficientNet-Lite2, 2:4 OBS (damp {args.damp}), {args.calib} calibration crops, "
        f"{args.eval} evaluation crops of other photos; agreement and KL against the dense "
        "model; removed = share of the search's saliency (diag: w²·E[x²]; obs: w²/[(H + λI)⁻¹]_jj) "
        "that 2:4 removes, mean over the searched groups.",
        "",
        markdown_table(
            ["draw", "coverage asked", "2:4 share", "permutation", "agreement", "mean KL",
             "removed before", "removed after", "s"],
            rows,
        ),
    ])  # fmt: skip
    publish(SECTION, body, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
