"""``optimize --target sparsity=0.5`` on an ultralytics YOLOv8n export: the measure of the
sparsity kind's output gains.

The model, crops and guard are those of ``tools/bench_yolov8_third_party.py`` (``320n.onnx``
of ``pip install --no-deps nudenet==3.4.2``; 96 calibration crops of six photos, 64
evaluation crops of the two photos with faces; guard ``map50_vs_original``, max drop 3
points). One run per gain measure (kind option ``gain_metric``): ``rel_mse`` (relative squared
error of the raw head, the only measure before the gain metric was chosen from the guard) and
the default under a task guard, ``std_mse`` (docs/ARCHITECTURE.md, "Output gains").

    python tools/bench_yolov8_sparsity.py            # writes the yolov8-sparsity-gains section
    python tools/bench_yolov8_sparsity.py --no-write
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, publish  # noqa: E402
from bench_tasks import _run_command  # noqa: E402
from bench_yolov8_third_party import CALIBRATION, FACES, INSTALL, crops, model_path  # noqa: E402

SECTION = "yolov8-sparsity-gains"
GAINS = ("rel_mse", "default")


def run(gain: str, model: Path, calibration: Path, evaluation: Path, work: Path) -> list:
    report_path = work / f"{gain}.json"
    extra = [] if gain == "default" else ["--kind-option", f"gain_metric={gain}"]
    command = [
        "onnxprune", "optimize", str(model), "--data", str(calibration), "--eval",
        str(evaluation), "--task", "detect", "--decoder", "yolov8", "--target", "sparsity=0.5",
        "--max-drop", "3", "-o", str(work / f"{gain}.onnx"), "--report-json", str(report_path),
        "--force", "--quiet", *extra,
    ]  # fmt: skip
    result = _run_command(command, gain, work)
    report = result["report"]
    used = next(
        (n.split("measured by ")[-1].rstrip(")") for n in report["notes"] if "measured by" in n),
        "?",
    )
    after = report["task"]["after"]
    sparsity = report["plan"]["sparsity"]["sparsity_after"]
    return [
        " ".join(extra) or "-",
        used,
        result["exit"],
        f"{report['steps_kept']} / {report['steps_rolled_back']}",
        f"{sparsity:.3f}",
        f"{report['metric_before']:.2f} → {report['metric_after']:.2f}",
        f"{after['map50_95_vs_original']:.1f}",
        f"{after['det_recall_vs_original']:.1f}",
        f"{result['seconds']:.0f}",
        result["load"],
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gains", nargs="+", choices=GAINS, default=list(GAINS))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    model = model_path()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        calibration, evaluation = work / "calibration.npz", work / "faces.npz"
        images, groups = crops(CALIBRATION, 96, seed=1)
        np.savez(calibration, images=images, groups=groups)
        images, groups = crops(FACES, 64, seed=2)
        np.savez(evaluation, images=images, groups=groups)
        rows = [run(gain, model, calibration, evaluation, work) for gain in args.gains]
    header = [
        "options", "gains measured by", "exit", "steps kept / rolled back", "weight sparsity",
        "map50_vs_original before → after", "map50_95_vs_original after",
        "det_recall_vs_original after", "wall s", "load avg",
    ]  # fmt: skip
    body = "\n".join(
        [
            "### YOLOv8n: `optimize --target sparsity=0.5` and the measure of the output gains",
            "",
            "`320n.onnx` of the nudenet 3.4.2 wheel; `onnxprune optimize --task detect --decoder "
            "yolov8 --target sparsity=0.5 --max-drop 3`, every other option default (criterion "
            "obs, ranking by measured output error per weight, OBS reconstruction); 96 "
            f"calibration crops of {', '.join(CALIBRATION)}; 64 evaluation crops of "
            f"{', '.join(FACES)}. Exit 3: the guard stopped before the target (best model "
            "written). Weight sparsity over all Conv weights (skipped layers count as dense). "
            "2 CPU cores.",
            "",
            markdown_table(header, rows),
            "",
            f"Command: `python tools/bench_yolov8_sparsity.py --gains {' '.join(args.gains)}` "
            f"(needs `{INSTALL}`).",
        ]
    )
    publish(SECTION, body, not args.no_write)


if __name__ == "__main__":
    main()
