"""The latency note reads the ratio with its interval: noise is not a slow-down."""

from __future__ import annotations

import pytest

from onnxprune.pipeline.latency_note import CHANNEL_HINT, MASK_HINT, latency_note


def detail(ratio, low, high):
    return {
        "ratio_p50": ratio,
        "ratio_p50_interval": [low, high],
        "batch": 1,
        "provider": "CPUExecutionProvider",
        "runs": 400,
    }


def test_a_ratio_above_one_inside_the_noise_is_no_change():
    note = latency_note(detail(1.05, 0.97, 1.12), removed=True, channels=True)
    assert note.startswith("latency: no measurable change at batch 1")
    assert "p50 ratio 1.05, 95 % interval 0.97-1.12 over 400 interleaved runs" in note
    assert "SLOWER" not in note


def test_slower_only_when_the_interval_is_above_one():
    note = latency_note(detail(1.20, 1.08, 1.31), removed=True, channels=True)
    assert note.startswith("SLOWER: the pruned model ran 1.20x") and CHANNEL_HINT in note
    assert MASK_HINT in latency_note(detail(1.20, 1.08, 1.31), removed=True, channels=False)


@pytest.mark.parametrize(
    ("ratio", "low", "high", "removed"),
    [(0.80, 0.75, 0.85, True), (1.20, 1.08, 1.31, False), (None, None, None, True)],
)
def test_nothing_to_say(ratio, low, high, removed):
    assert latency_note(detail(ratio, low, high), removed=removed, channels=True) is None


def test_without_an_interval_the_ratio_alone_decides():
    bare = {"ratio_p50": 1.2, "batch": 1, "provider": "CPUExecutionProvider", "runs": 50}
    assert latency_note(bare, removed=True, channels=True).startswith("SLOWER")
