"""The progress display: counts in messages drive bars; disabled it prints nothing."""

from __future__ import annotations

import io

from rich.console import Console

from onnxprune.pipeline.progress import INPUTS_CHECKED, Progress, parse_count


def test_parse_count():
    assert parse_count("sensitivity 3/27: conv5") == ("sensitivity", 2, 27)
    assert parse_count("evaluating 128/512 samples") == ("evaluating", 128, 512)
    assert parse_count("least-squares recovery: level 2/2 (3 layers)") == (
        "least-squares recovery: level",
        2,
        2,
    )
    assert parse_count("analysing channel groups") is None
    assert parse_count("odd 5/0") is None


def test_progress_bars_and_log_lines():
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=120)
    with Progress(console) as progress:
        progress("loading the model")
        progress("evaluating the original 64/128 samples")
        progress("evaluating the original 128/128 samples")
        progress("sensitivity 1/3: a")
        progress("step 1.1 (full): MACs 10, metric 1, kept")
        progress("guard: top1 drop <= 1")
        progress("note: the guard is measured on 2 of the 5 groups")
    text = stream.getvalue()
    assert "step 1.1 (full)" in text and "guard: top1" in text
    assert "note: the guard is measured" in text
    quiet = io.StringIO()
    with Progress(Console(file=quiet), enabled=False) as progress:
        progress("step 1.1 (full): kept")
    assert quiet.getvalue() == ""


def test_without_a_terminal_each_phase_is_one_plain_line():
    stream = io.StringIO()
    with Progress(Console(file=stream, force_terminal=False, width=200)) as progress:
        progress("loading the model")  # before the checks: a bad input leaves one line
        progress(INPUTS_CHECKED)
        progress("evaluating the original 64/128 samples")
        progress("evaluating the original 128/128 samples")
        progress("sensitivity 1/3: a")
        progress("sensitivity 2/3: b")
        progress("step 1.1 (full): kept")
    lines = [line.strip() for line in stream.getvalue().splitlines()]
    assert lines == [
        INPUTS_CHECKED,
        "evaluating the original 64/128 samples",
        "sensitivity 1/3: a",
        "step 1.1 (full): kept",
    ]
