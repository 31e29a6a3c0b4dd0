"""Task benchmark: ``onnxprune optimize --task`` on the shipped shapes detector and segmenter.

For each demo, the default data-driven pipeline (obs criterion, sensitivity allocation, lsq
recovery; calibration ``shapes_calib.npz``, evaluation ``shapes_test.npz``) toward a MAC
target (default ``macs=0.7``, a 30 % cut) with the guard on the task metric (``map50`` /
``miou`` against the ground truth, max-drop 2 points). One CLI run per model (the command is
recorded as run); the table takes metric before/after, MACs ratio, latency ratio (p50,
interleaved, ORT CPU, batch 1) and the wall time from the JSON report, with ``uptime``'s load
average beside it (the machine is shared).

    python tools/bench_tasks.py                 # both demos, writes docs/benchmarks.md
    python tools/bench_tasks.py --models shapes_detector --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, write_section  # noqa: E402

SHAPES = ROOT / "models" / "shapes"
DEMOS = {
    "shapes_detector": ("detect", "yolov8", "map50"),
    "shapes_segmenter": ("segment", "logits", "miou"),
}
SECTION = "issue14-tasks"


def load_average() -> str:
    """The 1-minute load average and the CPU count, e.g. ``15.2 (2 CPUs)``."""
    return f"{os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)"


def command_for(model: str, target: str, max_drop: float, out: Path) -> list[str]:
    task, decoder, metric = DEMOS[model]
    return [
        "onnxprune", "optimize", f"models/shapes/{model}.onnx",
        "--data", "models/shapes/shapes_calib.npz", "--eval", "models/shapes/shapes_test.npz",
        "--task", task, "--decoder", decoder, "--metric", metric,
        "--target", target, "--max-drop", f"{max_drop:g}",
        "-o", str(out / f"{model}.pruned.onnx"), "--report-json", str(out / f"{model}.json"),
        "--force", "--quiet",
    ]  # fmt: skip


def run(model: str, target: str, max_drop: float, out: Path) -> dict:
    """Run one optimize through the CLI; the report plus command, wall time, load."""
    command = command_for(model, target, max_drop, out)
    load_before = load_average()
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.run(
        [sys.executable, "-m", "onnxprune.cli", *command[1:]],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if process.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}): {process.stderr}")
    report = json.loads((out / f"{model}.json").read_text())
    printable = [c if not c.startswith(str(out)) else Path(c).name for c in command]
    return {
        "model": model,
        "report": report,
        "exit": process.returncode,
        "seconds": seconds,
        "load": f"{load_before} → {load_average()}",
        "command": " ".join(printable),
    }


def table(results: list[dict], max_drop: float) -> str:
    rows = []
    for result in results:
        report = result["report"]
        drop = report["metric_drop"]
        latency = report.get("latency_ratio")
        rows.append(
            [
                result["model"],
                report["metric_name"],
                f"{report['metric_before']:.2f}",
                f"{report['metric_after']:.2f}",
                f"{drop:.2f}",
                "met" if drop is not None and drop <= max_drop else "NOT met",
                f"{report['macs_ratio']:.3f}",
                "-" if latency is None else f"{latency:.3f}",
                report["status"],
                f"{result['seconds']:.0f} s",
                result["load"],
            ]
        )
    header = [
        "model", "metric", "before", "after", "drop", f"drop ≤ {max_drop:g}", "MACs kept",
        "latency p50 ratio", "status", "wall", "load avg (before → after)",
    ]  # fmt: skip
    commands = "\n".join(f"    {r['command']}" for r in results)
    return (
        "## Detection and segmentation demos (optimize --task)\n\n"
        "Shipped shapes demos (models/shapes, 64×64 synthetic shapes, 128 test images), "
        "default data-driven pipeline (obs + sensitivity + lsq), guard on the task metric "
        "against the ground-truth boxes/masks of the test split. Latency: ORT CPU, "
        "interleaved original/pruned, p50 at batch 1. Written by `python tools/bench_tasks.py`."
        "\n\n"
        + markdown_table(header, rows)
        + "\n\nCommands (from the repository root):\n\n"
        + commands
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", choices=sorted(DEMOS), default=sorted(DEMOS))
    parser.add_argument("--target", default="macs=0.7")
    parser.add_argument("--max-drop", type=float, default=2.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        results = [run(m, args.target, args.max_drop, Path(folder)) for m in args.models]
    body = table(results, args.max_drop)
    print(body)
    if not args.no_write:
        write_section(SECTION, f"<!-- generated by tools/bench_tasks.py -->\n{body}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
