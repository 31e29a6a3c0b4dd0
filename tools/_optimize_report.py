"""Cells read from an ``optimize`` JSON report, shared by the benchmark tools."""

from __future__ import annotations


def kept_steps(report: dict) -> str:
    """'K of N': steps kept out of steps tried."""
    steps = report.get("steps", [])
    return f"{sum(1 for step in steps if step.get('status') == 'kept')} of {len(steps)}"


def full_steps(report: dict) -> str:
    """'MACs kept: metric' of every full (not halved or protected) step tried, '; '-joined."""
    macs = report["macs_before"]
    cells = [
        f"{step['macs'] / macs:.3f}: {step['metric']:.2f}"
        for step in report.get("steps", [])
        if step.get("kind") == "full"
    ]
    return "; ".join(cells) or "-"


def sensitivity_drop_metric(report: dict) -> str:
    """The sensitivity table's drop metric the report notes, or '-'."""
    notes = [n.removeprefix("sensitivity table: ") for n in report["notes"] if "drop metric" in n]
    return notes[0] if notes else "-"
