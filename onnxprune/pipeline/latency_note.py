"""The report's note on the measured latency change, read with its uncertainty.

The latency comparison gives the p50 ratio (pruned / original) and a 95 % interval from a
paired bootstrap over the interleaved rounds (:func:`onnxprune.runtime.latency.ratio_interval`).
A ratio above 1 whose interval still holds 1 is noise, not a slow-down: the note then says
that no change was measured, and ``SLOWER`` is kept for an interval wholly above 1. Nothing is
said when nothing was removed or when the interval is wholly below 1 (the summary table shows
the speed-up).
"""

from __future__ import annotations

from typing import Any

CHANNEL_HINT = "channel counts off the provider's block? try round_to=16 or 8, or a latency target"
MASK_HINT = (
    "weight masks change no tensor shape, and this provider runs zeros at dense speed: expect "
    "no speed-up from them"
)


def latency_note(detail: dict[str, Any], removed: bool, channels: bool) -> str | None:
    """The note for ``detail`` (:meth:`GuardEvaluator.compare_latency`'s dict) of a run that
    ``removed`` something; ``channels``: the plan removed channels (the hint differs)."""
    ratio = detail.get("ratio_p50")
    if ratio is None or not removed:
        return None
    low, high = detail.get("ratio_p50_interval") or (None, None)
    where = f"at batch {detail['batch']} on {detail['provider']}"
    if low is not None and high is not None and low <= 1.0 <= high:
        return (
            f"latency: no measurable change {where} (p50 ratio {ratio:.2f}, 95 % interval "
            f"{low:.2f}-{high:.2f} over {detail['runs']} interleaved runs)"
        )
    if ratio > 1.0:
        hint = CHANNEL_HINT if channels else MASK_HINT
        return (
            f"SLOWER: the pruned model ran {ratio:.2f}x the original's p50 latency {where} ({hint})"
        )
    return None
