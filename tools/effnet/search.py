"""Find the uniform pruning ratio whose model has a given MAC cut (monotone 1-D search)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class RatioSearch:
    """Ratio search result: the chosen ratio, its measured MAC cut and every point tried."""

    ratio: float
    cut: float
    tried: list[tuple[float, float]] = field(default_factory=list)


def search_ratio(
    cut_of: Callable[[float], float],
    target: float,
    *,
    tolerance: float = 0.004,
    low: float = 0.0,
    high: float = 0.6,
    max_steps: int = 10,
    known: dict[float, float] | None = None,
) -> RatioSearch:
    """Ratio r in [low, high] with ``|cut_of(r) - target| <= tolerance`` (or the closest tried).

    ``cut_of`` must be non-decreasing in r (a larger uniform ratio never removes fewer MACs).
    Regula falsi on the bracket, falling back to bisection when interpolation stalls; ``known``
    caches (ratio -> cut) points across calls so several targets share measurements.
    """
    known = known if known is not None else {}

    def measure(ratio: float) -> float:
        if ratio not in known:
            known[ratio] = cut_of(ratio)
        return known[ratio]

    lo, hi = low, high
    cut_lo = measure(low) if low > 0 else 0.0
    cut_hi = measure(high)
    if cut_hi < target:
        return RatioSearch(high, cut_hi, sorted(known.items()))
    # tighten the bracket with cached points first
    for ratio, cut in known.items():
        if lo < ratio < hi:
            if cut < target:
                lo, cut_lo = ratio, cut
            else:
                hi, cut_hi = ratio, cut
    best = min(known.items(), key=lambda item: abs(item[1] - target))
    steps = 0
    while abs(best[1] - target) > tolerance and steps < max_steps and hi - lo > 1e-4:
        if cut_hi > cut_lo:
            guess = lo + (target - cut_lo) * (hi - lo) / (cut_hi - cut_lo)
        else:
            guess = 0.5 * (lo + hi)
        span = hi - lo
        guess = round(min(max(guess, lo + 0.1 * span), hi - 0.1 * span), 5)
        cut = measure(guess)
        if cut < target:
            lo, cut_lo = guess, cut
        else:
            hi, cut_hi = guess, cut
        best = min(known.items(), key=lambda item: abs(item[1] - target))
        steps += 1
    return RatioSearch(best[0], best[1], sorted(known.items()))
