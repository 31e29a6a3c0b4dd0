"""``optimize --target sparsity=S`` with and without its recovery (the OBS reconstruction).

For each model, sparsity and recovery: ``optimize(model, "sparsity=S", data=CALIBRATION,
eval_data=EVALUATION, recover=R, max_drop=100, steps=K, measure_latency=False)`` (guard off:
top-1 agreement and accuracy are in points, so a max drop of 100 admits every step; the
criterion is the sparsity kind's default, ``wanda`` with data). ``recover="none"`` keeps the
criterion's masks alone; any other recovery rebuilds each layer by sequential OBS at the zero
count the loop chose (``sparsity.reconstruct.refit_masked``; ``--keep-positions``: the
criterion's masks kept, the other weights refitted). ``--ranking``: the kind's
``sparsity_ranking`` (``output``: measured error per weight; ``criterion``: normalised scores).

* digits models: calibration ``models/digits/digits_calib.npz``, evaluation
  ``models/digits/digits_test.npz`` (labelled; top-1 accuracy in %);
* ``effnet``: EfficientNet-Lite2, calibration crops of five photos and evaluation crops of four
  others (``tools/effnet/crops.py``); top-1 agreement with the dense model in %.

    python tools/bench_optimize_sparsity.py --models digits_mbv2,digits_vgg,effnet --write
    python tools/bench_optimize_sparsity.py --ranking criterion --keep-positions --write
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, publish  # noqa: E402

SECTION = "optimize-sparsity"
DIGITS = ROOT / "models" / "digits"


def _effnet_case(folder: Path, calib: int, evaluation: int, seeds: tuple[int, int]):
    from effnet.crops import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, random_crops
    from effnet.model import RESOLUTION, export, load_pretrained

    model = export(load_pretrained(), folder / "effnet.onnx")
    np.savez(
        folder / "calibration.npz",
        input=random_crops(CALIBRATION_PHOTOS, calib, seed=seeds[0], size=RESOLUTION),
    )
    np.savez(
        folder / "evaluation.npz",
        input=random_crops(EVALUATION_PHOTOS, evaluation, seed=seeds[1], size=RESOLUTION),
    )
    return model, folder / "calibration.npz", folder / "evaluation.npz"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits_mbv2,digits_vgg,effnet")
    parser.add_argument("--sparsity", default="0.5,0.7", help="targets, comma-separated")
    parser.add_argument("--recoveries", default="none,lsq")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument(
        "--max-drop", default="100", help="guard threshold ('default': the metric's own)"
    )
    parser.add_argument("--calib", type=int, default=128, help="EfficientNet calibration crops")
    parser.add_argument("--eval", type=int, default=128, help="EfficientNet evaluation crops")
    parser.add_argument("--seeds", default="1,2", help="EfficientNet calibration, evaluation seeds")
    parser.add_argument(
        "--keep-positions", action="store_true", help="refit the criterion's masks as they are"
    )
    parser.add_argument(
        "--ranking", choices=("output", "criterion"), help="sparsity_ranking (default: the kind's)"
    )
    parser.add_argument(
        "--gain-metric",
        help="the kind option gain_metric: the measure of the sparsity kind's output gains "
        "(default: chosen from the guard)",
    )
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    from onnxprune import optimize

    seeds = tuple(int(s) for s in args.seeds.split(","))
    max_drop = None if args.max_drop == "default" else float(args.max_drop)
    guard = "guard off (max drop 100)" if max_drop == 100 else f"guard max drop {args.max_drop}"
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-optimize-sparsity-") as name:
        for model_name in args.models.split(","):
            if model_name == "effnet":
                model, calibration, evaluation = _effnet_case(
                    Path(name), args.calib, args.eval, seeds
                )
                metric = "top1_agreement"
            else:
                model = DIGITS / f"{model_name}.onnx"
                calibration, evaluation = DIGITS / "digits_calib.npz", DIGITS / "digits_test.npz"
                metric = None
            for target in args.sparsity.split(","):
                for recovery in args.recoveries.split(","):
                    load = os.getloadavg()[0]
                    tick = time.perf_counter()
                    result = optimize(
                        str(model), f"sparsity={target}", data=str(calibration),
                        eval_data=str(evaluation), metric=metric, recover=recovery,
                        max_drop=max_drop, steps=args.steps, measure_latency=False,
                        plan_options={
                            "sparsity_keep_positions": args.keep_positions,
                            "sparsity_ranking": args.ranking,
                            **(
                                {"gain_metric": args.gain_metric}
                                if args.gain_metric
                                else {}
                            ),
                        },
                    )  # fmt: skip
                    seconds = time.perf_counter() - tick
                    report = result.report
                    summary = report.plan.get("sparsity", {})
                    rows.append([
                        model_name, target, recovery, report.criterion,
                        f"{summary.get('sparsity_after', float('nan')):.4f}",
                        f"{report.metric_name} {report.metric_before:.2f} → "
                        f"{report.metric_after:.2f}",
                        f"{report.status} ({len(report.steps)} steps)", f"{seconds:.0f}",
                        f"{load:.1f}–{os.getloadavg()[0]:.1f}",
                    ])  # fmt: skip
                    print(" | ".join(rows[-1]), flush=True)
    header = ["model", "target sparsity", "recovery", "criterion", "weight sparsity",
              "metric before → after", "status", "optimize s", "load average"]  # fmt: skip
    command = "python tools/bench_optimize_sparsity.py " + " ".join(sys.argv[1:])
    body = "\n".join([
        f"`{command}` — {(time.perf_counter() - started) / 60:.1f} min (2 shared CPU cores).",
        "",
        f"`optimize --target sparsity=S`, {guard}, {args.steps} step(s), "
        f"increments ranked by {args.ranking or 'the default (output with lsq, criterion with none)'}"
        + (f", output gains measured by {args.gain_metric}" if args.gain_metric else "")
        + "; "
        "recovery `none`: the criterion's masks alone; `lsq`: "
        + (
            "the masks kept, the other weights refitted by sequential least squares"
            if args.keep_positions
            else "each layer rebuilt by sequential OBS at the zero count the loop chose (the "
            "sweep re-chooses the positions)"
        )
        + " (bias corrected). Weight sparsity over "
        "all Conv/Gemm/MatMul weights (skipped layers count as dense). Digits: top-1 accuracy "
        "on the labelled test split (%); effnet: top-1 agreement with the dense model on "
        f"{args.eval} crops of photos other than the {args.calib} calibration crops' (%; crop "
        f"seeds {args.seeds}).",
        "",
        markdown_table(header, rows),
    ])  # fmt: skip
    suffix = (
        ("-kept-positions" if args.keep_positions else "")
        + (f"-ranking-{args.ranking}" if args.ranking else "")
        + (f"-seeds-{args.seeds.replace(',', '-')}" if args.seeds != "1,2" else "")
        + (f"-steps-{args.steps}-drop-{args.max_drop}" if max_drop != 100 else "")
        + (f"-gain-{args.gain_metric}" if args.gain_metric else "")
    )
    publish(SECTION + suffix, body, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
