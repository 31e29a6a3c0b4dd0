"""The PP-OCRv4 text detector with `optimize`'s defaults: sensitivity table by the task vs `kl`.

The model and the 16 views of skimage photos are those of ``tools/bench_tasks.py
--third-party-text`` (``ch_PP-OCRv4_det_infer.onnx`` of the rapidocr-onnxruntime 1.4.4 wheel:
DBNet exported by Paddle2ONNX, one probability map [N, 1, H, W]; ``--task segment --decoder
probability``, guard on ``mask_iou_vs_original``). That tool runs l1, global allocation and no
recovery; this one runs every default (obs, sensitivity table, lsq) twice: with the table's
drop metric chosen from the guard (``100 - mask_iou_vs_original``) and with ``kl``, which a
single-channel map makes blind (a softmax over one channel is 1, so every drop is 0).

    python tools/bench_text_detector_defaults.py          # writes the ppocrv4-det-defaults section
    python tools/bench_text_detector_defaults.py --no-write
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, write_section  # noqa: E402
from _optimize_report import full_steps, kept_steps, sensitivity_drop_metric  # noqa: E402
from bench_tasks import TEXT_SIZE, _run_command, text_detector_path, text_photos  # noqa: E402

SECTION = "ppocrv4-det-defaults"
TABLES = {"task (default)": (), "kl": ("--kind-option", "sensitivity_metric=kl")}


def run(label: str, extra: tuple[str, ...], target: str, max_drop: float, out: Path) -> list:
    data = out / "text_photos.npz"
    if not data.exists():
        text_photos(data)
    name = label.split()[0]
    command = [
        "onnxprune", "optimize", str(text_detector_path()), "--data", str(data),
        "--input-shape", f"x:1,3,{TEXT_SIZE},{TEXT_SIZE}", "--task", "segment",
        "--decoder", "probability", "--target", target, "--max-drop", f"{max_drop:g}",
        "-o", str(out / f"{name}.onnx"), "--report-json", str(out / f"{name}.json"),
        "--force", "--quiet", *extra,
    ]  # fmt: skip
    result = _run_command(command, label, out)
    report = result["report"]
    return [
        label,
        sensitivity_drop_metric(report),
        result["exit"],
        f"{report['guard']['threshold']:.2f}",
        kept_steps(report),
        full_steps(report),
        f"{report['macs_ratio']:.3f}",
        f"{report['metric_before']:.2f} → {report['metric_after']:.2f}",
        f"{result['seconds']:.0f}",
        result["load"],
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="macs=0.7")
    parser.add_argument("--max-drop", type=float, default=5.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        rows = [
            run(label, extra, args.target, args.max_drop, Path(folder))
            for label, extra in TABLES.items()
        ]
    header = [
        "sensitivity table", "drop metric", "exit", "guard threshold (points)", "steps kept",
        "full steps tried (MACs kept: mask_iou_vs_original)", "MACs kept",
        "mask_iou_vs_original before → after", "wall s", "load avg",
    ]  # fmt: skip
    body = "\n".join(
        [
            "## PP-OCRv4 text detector with optimize's defaults: the sensitivity table's drop",
            "",
            "`ch_PP-OCRv4_det_infer.onnx` (rapidocr-onnxruntime 1.4.4; Paddle2ONNX), the 16 "
            "views of skimage photos of `tools/bench_tasks.py --third-party-text`, `optimize "
            f"--task segment --decoder probability --target {args.target} --max-drop "
            f"{args.max_drop:g}`, every other option default (obs, sensitivity allocation, "
            "lsq); the guard's threshold is its measured noise floor when that is larger than "
            "the max drop. Exit 3: the guard stopped before the target (best model written).",
            "",
            markdown_table(header, rows),
            "",
            f"Command: `python tools/bench_text_detector_defaults.py --target {args.target} "
            f"--max-drop {args.max_drop:g}` (needs `pip install --no-deps "
            "rapidocr-onnxruntime==1.4.4`).",
        ]
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
