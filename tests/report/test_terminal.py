"""Terminal summary: before/after rows with real values."""

from __future__ import annotations

import io

from rich.console import Console

from onnxprune.report import print_summary
from onnxprune.report.terminal import summary_rows


def test_summary_rows(report):
    rows = {row[0]: row[1:] for row in summary_rows(report)}
    assert rows["MACs"] == ["1.00k", "480", "0.480"]
    assert rows["params"] == ["600", "300", "0.500"]
    assert rows["file size"] == ["4.00 KiB", "2.00 KiB", "0.500"]
    assert rows["latency p50 (CPUExecutionProvider)"] == ["2.000 ms", "1.200 ms", "0.600"]
    assert rows["top1"] == ["95.00", "94.50", "drop 0.50"]
    assert rows["groups pruned"] == ["2", "1", ""]


def test_print_summary_mentions_status_and_output(report):
    report.status = "guard_not_met"
    report.reason = "no step fits the guard"
    buffer = io.StringIO()
    print_summary(report, Console(file=buffer, width=120))
    text = buffer.getvalue()
    assert "guard_not_met" in text and "no step fits the guard" in text
    assert "wrote model.pruned.onnx" in text
    assert "3 kept, 1 rolled back" in text


def test_print_summary_speaks_the_callers_words(report):
    from onnxprune.errors import cli_words

    report.status = "guard_not_met"
    report.reason = "protect the sensitive layers (ignore=...) and prune the rest harder"
    buffer = io.StringIO()
    print_summary(report, Console(file=buffer, width=200), words=cli_words)
    text = buffer.getvalue()
    assert "(--ignore GLOB)" in text and "ignore=..." not in text
