"""Write the gradient-criteria and distillation tables into docs/benchmarks.md.

Reads the JSON rows of tools/bench_gradients.py and tools/bench_distill_digits.py and
replaces the section between ``<!-- gradients:start -->`` and ``<!-- gradients:end -->``
(appended at the end of the file the first time).

    python tools/write_gradient_benchmarks.py --criteria grad.json [--criteria-unlabelled g2.json]
        --distill distill.json [--distill-extra d2.json] [--load-criteria "16.1-18.3"]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
START, END = "<!-- gradients:start -->", "<!-- gradients:end -->"


def _criteria_table(rows: list[dict], load: str | None) -> list[str]:
    lines = [
        "| model | allocation | MACs kept (target) | l1 | obs | taylor | fisher |",
        "|---|---|---|---|---|---|---|",
    ]
    keys = []
    for row in rows:
        key = (row["model"], row["allocation"], row["target"])
        if key not in keys:
            keys.append(key)
    for model, allocation, target in keys:
        cells = {
            row["criterion"]: row
            for row in rows
            if (row["model"], row["allocation"], row["target"]) == (model, allocation, target)
        }
        best = max(cells[c]["accuracy"] for c in cells)
        macs = "/".join(f"{cells[c]['macs_kept']:.3f}" for c in ("l1", "obs", "taylor", "fisher"))

        marked = {}
        for name, row in cells.items():
            value = f"{100 * row['accuracy']:.2f}"
            marked[name] = f"**{value}**" if row["accuracy"] == best else value
        lines.append(
            f"| {model} | {allocation} | {macs} ({target}) | {marked['l1']} | {marked['obs']} |"
            f" {marked['taylor']} | {marked['fisher']} |"
        )
    verdicts = []
    for model, allocation, target in keys:
        cells = {
            row["criterion"]: row["accuracy"]
            for row in rows
            if (row["model"], row["allocation"], row["target"]) == (model, allocation, target)
        }
        gradient = max(cells.get("taylor", 0.0), cells.get("fisher", 0.0))
        baseline = max(cells.get("l1", 0.0), cells.get("obs", 0.0))
        verdict = "beats" if gradient > baseline else "ties" if gradient == baseline else "loses"
        verdicts.append(verdict)
    lines.append("")
    lines.append(
        f"Best of taylor/fisher vs best of l1/obs per row: {verdicts.count('beats')} beat, "
        f"{verdicts.count('ties')} tie, {verdicts.count('loses')} lose (of {len(verdicts)})."
    )
    seconds = {}
    for row in rows:
        seconds.setdefault(row["model"], {})[row["criterion"]] = row["score_seconds"]
    lines.append("")
    lines.append(
        "Scoring seconds (256 calibration images): "
        + "; ".join(
            f"{model}: " + ", ".join(f"{c} {s}" for c, s in values.items())
            for model, values in seconds.items()
        )
        + "."
    )
    if rows and "load_start" in rows[0]:
        load = f"{rows[0]['load_start']}-{rows[0]['load_end']}"
    if load:
        lines.append(f"Load average (1 min) during the run: {load} on 2 cores.")
    return lines


def _distill_table(rows: list[dict]) -> list[str]:
    lines = [
        "| model | MACs kept | recovery | test top-1 % | seconds | distill steps (best) |"
        " steps/s | held-out KL before → after | load avg |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        steps = f"{row['steps']} ({row['best_step']})" if "steps" in row else ""
        rate = f"{row['steps_per_second']}" if "steps" in row else ""
        heldout = f"{row['heldout_before']} → {row['heldout_after']}" if "steps" in row else ""
        lines.append(
            f"| {row['model']} | {row['macs_kept']:.3f} | {row['recovery']} |"
            f" {100 * row['accuracy']:.2f} (orig {100 * row['original_accuracy']:.2f}) |"
            f" {row['seconds']} | {steps} | {rate} | {heldout} |"
            f" {row['load_before']}-{row['load_after']} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--criteria", type=Path, required=True)
    parser.add_argument("--criteria-unlabelled", type=Path)
    parser.add_argument("--load-criteria")
    parser.add_argument("--distill", type=Path, required=True)
    parser.add_argument("--distill-extra", type=Path, nargs="*", default=[])
    parser.add_argument("--note", action="append", default=[], help="a line under the tables")
    args = parser.parse_args()
    section = [
        "## Gradient criteria and distillation (ONNX backward graphs)",
        "",
        START,
        "Digits models, no recovery, every criterion at the same counted MAC cut (the ratio",
        "is bisected per criterion; test accuracy on digits_test.npz, 450 images; calibration",
        "digits_calib.npz, 256 training images with labels, so taylor/fisher use",
        "cross-entropy to the labels). Best per row in bold.",
        "",
        *_criteria_table(json.loads(args.criteria.read_text()), args.load_criteria),
        "",
        "Command: `python tools/bench_gradients.py --json grad.json` (x86_64, 2 cores).",
    ]
    if args.criteria_unlabelled:
        section += [
            "",
            "Same without labels (targets = the unpruned model's own predictions):",
            "",
            *_criteria_table(json.loads(args.criteria_unlabelled.read_text()), None),
            "",
            "Command: `python tools/bench_gradients.py --no-labels --json grad_nolabels.json`.",
        ]
    distill_rows = json.loads(args.distill.read_text())
    for extra in args.distill_extra:
        distill_rows += json.loads(extra.read_text())
    section += [
        "",
        "Distillation recovery after l1 pruning to a 50 % MAC cut (uniform ratio), 200 Adam",
        "steps at batch 32 (lr 1e-3; 1e-4 after lsq), unlabeled calibration images (10 % held",
        "out for early stopping). Seconds cover building the gradient model, its session and",
        "all steps; the machine was shared, so times move with the load average shown.",
        "",
        *_distill_table(distill_rows),
        "",
        *[f"- {note}" for note in args.note],
        "",
        "Command: `python tools/bench_distill_digits.py --json distill.json` (x86_64, 2 cores);",
        "this section: `python tools/write_gradient_benchmarks.py ...`.",
        END,
    ]
    text = DOC.read_text()
    if START in text:
        head = text[: text.index(START)]
        head = head[: head.rindex("## Gradient criteria and distillation")]
        tail = text[text.index(END) + len(END) :]
        text = head + "\n".join(section) + tail
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(section) + "\n"
    DOC.write_text(text)


if __name__ == "__main__":
    main()
