"""Issue 12's targets through ``onnxprune.optimize`` itself, every method left at its default.

EfficientNet-Lite2 (packaged ImageNet weights, TorchScript export) is pruned by
``optimize(model, "macs=1-cut", data=CALIBRATION, eval_data=EVALUATION, max_drop=100,
steps=1, measure_latency=False)``: criterion, allocation and recovery are chosen by
``optimize`` from the data (with >= 256 calibration crops the recovery is ``reconstruct``).
The guard is off (top-1 agreement is in points: a max drop of 100 admits any step; the
guard's threshold is never below its noise floor, so a small max drop would not be "off") so
the row shows what the default methods keep at that cut. Calibration crops come from the calibration photos, evaluation crops from other
photos (``tools/effnet/crops.py``); the cells are top-1 agreement / top-5 containment of the
pruned model with the unpruned one on the evaluation crops, with the wall time of the whole
``optimize`` call (loading, scores, sensitivity table, recovery, evaluation).

    python tools/bench_optimize_defaults.py --calib 512 --cuts 0.2,0.3 --seeds 1,2
    python tools/bench_optimize_defaults.py --calib 512 --seeds 11,12 --table-repair none
    python tools/bench_optimize_defaults.py --calib 512 --kind-option sensitivity_metric=rel_mse
    python tools/bench_optimize_defaults.py --calib 512 --calibration-photos astronaut,coffee

``--table-repair`` replaces ``onnxprune.defaults.SENSITIVITY_RECOVERY`` (how each point of the
sensitivity table is repaired) for the run, to measure that default against an alternative;
``--set-default NAME=VALUE`` does the same for any value of ``onnxprune.defaults`` that is read
at run time (e.g. ``SENSITIVITY_SAMPLES=96``), and ``--kind-option KEY=VALUE`` passes a plan
option (e.g. ``sensitivity_metric=rel_mse``) as the CLI's ``--kind-option`` does;
``--option NAME=VALUE`` passes a keyword argument of ``optimize`` (e.g. ``max_ratio=0.5``).
``--calibration-photos`` / ``--evaluation-photos`` change which ``skimage.data`` photos the
crops are cut from, and ``--refit-photos`` gives the recovery's refit crops of other photos
than the scores and the sensitivity table get: diagnostics of which phase depends on the
calibration photos' domain (the issues' figures use the defaults).
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from effnet.crops import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, random_crops  # noqa: E402
from effnet.measure import logits, top1_agreement, top5_containment  # noqa: E402
from effnet.model import RESOLUTION, export, load_pretrained  # noqa: E402


def _refit_on(photos: str, count: int, seed: int, folder: Path):
    """The recovery ``optimize`` would pick for ``count`` calibration samples, fitted on
    ``count`` crops of ``photos`` instead of the calibration crops."""
    from onnxprune import defaults
    from onnxprune.recover import make_recovery

    crops = random_crops(tuple(photos.split(",")), count, seed=seed, size=RESOLUTION)
    np.savez(folder / "refit.npz", input=crops)
    method = "reconstruct" if count >= defaults.RECONSTRUCT_MIN_SAMPLES else "lsq"
    return make_recovery(method, None, str(folder / "refit.npz"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calib", type=int, default=512, help="calibration crops")
    parser.add_argument("--eval", type=int, default=128, help="evaluation crops")
    parser.add_argument("--cuts", default="0.2,0.3", help="MAC cuts, comma-separated")
    parser.add_argument("--seeds", default="1,2", help="calibration and evaluation crop seeds")
    parser.add_argument(
        "--calibration-photos",
        default=",".join(CALIBRATION_PHOTOS),
        help="photos the calibration crops are cut from (comma-separated; skimage.data names "
        "or china, flower, grace_hopper: tools/effnet/crops.py; "
        "the default is the benchmark's protocol)",
    )
    parser.add_argument(
        "--evaluation-photos",
        default=",".join(EVALUATION_PHOTOS),
        help="skimage.data photos the evaluation crops are cut from (comma-separated)",
    )
    parser.add_argument(
        "--refit-photos",
        help="diagnostic: the recovery's refit gets its own calibration crops, cut from these "
        "photos (same count and seed); scores and the sensitivity table keep the calibration "
        "photos'",
    )
    parser.add_argument("--table-repair", help="recovery of each sensitivity-table point")
    parser.add_argument(
        "--set-default",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="replace onnxprune.defaults.NAME (a Python literal) for the run, repeatable",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="keyword argument of optimize (a Python literal), e.g. max_ratio=0.5; repeatable",
    )
    parser.add_argument(
        "--kind-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="plan option passed to optimize (as the CLI's --kind-option), repeatable",
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    from onnxprune import defaults, optimize

    if args.table_repair is not None:
        defaults.SENSITIVITY_RECOVERY = args.table_repair
    for assignment in args.set_default:
        name, value = assignment.split("=", 1)
        if not hasattr(defaults, name):
            parser.error(f"onnxprune.defaults has no {name}")
        setattr(defaults, name, ast.literal_eval(value))

    plan_options = dict(option.split("=", 1) for option in args.kind_option)
    keywords = {
        name: ast.literal_eval(value)
        for name, value in (option.split("=", 1) for option in args.option)
    }
    calib_seed, eval_seed = (int(s) for s in args.seeds.split(","))
    with tempfile.TemporaryDirectory(prefix="onnxprune-defaults-") as name:
        folder = Path(name)
        model = export(load_pretrained(), folder / "effnet.onnx")
        calibration_photos = tuple(args.calibration_photos.split(","))
        evaluation_photos = tuple(args.evaluation_photos.split(","))
        calibration = random_crops(calibration_photos, args.calib, seed=calib_seed, size=RESOLUTION)
        evaluation = random_crops(evaluation_photos, args.eval, seed=eval_seed, size=RESOLUTION)
        np.savez(folder / "calibration.npz", input=calibration)
        np.savez(folder / "evaluation.npz", input=evaluation)
        reference = logits(onnx.load(str(model)), evaluation)
        if args.refit_photos:
            keywords["recover"] = _refit_on(args.refit_photos, args.calib, calib_seed, folder)
        print(
            f"calibration photos: {', '.join(calibration_photos)}; "
            f"evaluation photos: {', '.join(evaluation_photos)}"
            + (f"; refit photos: {args.refit_photos}" if args.refit_photos else "")
            + "\n"
        )
        print(
            "| MAC cut | calibration crops | seeds | methods | MACs kept | top-1 agreement | "
            "top-5 | optimize s | status | load average |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for cut in (float(c) for c in args.cuts.split(",")):
            load = os.getloadavg()[0]
            started = time.perf_counter()
            result = optimize(
                str(model),
                f"macs={1 - cut:.4g}",
                data=str(folder / "calibration.npz"),
                eval_data=str(folder / "evaluation.npz"),
                max_drop=100.0,
                steps=1,
                measure_latency=False,
                plan_options=plan_options or None,
                **keywords,
            )
            seconds = time.perf_counter() - started
            candidate = logits(result.model, evaluation)
            methods = next(n for n in result.report.notes if n.startswith("criterion "))
            print(
                f"| {cut:.0%} | {args.calib} | {args.seeds.replace(',', ', ')} | {methods} | "
                f"{result.report.macs_ratio:.3f} | "
                f"{100 * top1_agreement(candidate, reference):.1f} % | "
                f"{100 * top5_containment(candidate, reference):.1f} % | {seconds:.0f} | "
                f"{result.report.status} ({len(result.report.steps)} attempts) | "
                f"{load:.1f}–{os.getloadavg()[0]:.1f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
