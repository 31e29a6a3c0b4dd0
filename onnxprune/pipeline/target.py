"""The optimisation target: ``macs=F``, ``params=F``, ``latency=F``, ``ratio=R`` or
``sparsity=S`` (share S of all Conv/ConvTranspose/Gemm/MatMul weights zero).

``macs``, ``params`` and ``latency`` give the share F of the original model's quantity that the
pruned model may keep (``macs=0.5`` keeps half of the MACs); ``ratio`` gives the share R of the
prunable channels (clusters) removed. MAC and parameter targets are reached on estimates from
the channel analysis and then checked by counting on the written model; latency is measured.
"""

from __future__ import annotations

from dataclasses import dataclass

from onnxprune.errors import InputError

TARGET_KINDS = ("macs", "params", "latency", "ratio", "sparsity")

# The plan kinds a target kind prunes with when the caller names none (``optimize(units=...)``).
DEFAULT_UNITS: dict[str, tuple[str, ...]] = {
    "macs": ("channels",),
    "params": ("channels",),
    "latency": ("channels",),
    "ratio": ("channels",),
    "sparsity": ("sparsity",),
}


@dataclass(frozen=True)
class Target:
    """A parsed target: ``kind`` in :data:`TARGET_KINDS` and its ``value`` in (0, 1)."""

    kind: str
    value: float

    @property
    def text(self) -> str:
        return f"{self.kind}={self.value:g}"

    @property
    def keeps(self) -> bool:
        """True when ``value`` is the share kept (macs, params, latency), False for ratio and
        sparsity (the share removed / zeroed)."""
        return self.kind not in ("ratio", "sparsity")

    def removed_share(self) -> float:
        """Share of the quantity to remove: 1 - F for kept shares, R for ratio."""
        return 1.0 - self.value if self.keeps else self.value


def parse_target(text: str | Target) -> Target:
    """Parse ``KIND=VALUE`` (case-insensitive kind, value strictly between 0 and 1)."""
    if isinstance(text, Target):
        return text
    kind, sep, raw = str(text).strip().partition("=")
    kind = kind.strip().lower()
    if not sep or kind not in TARGET_KINDS:
        raise InputError(
            f"--target expects KIND=VALUE with KIND in {', '.join(TARGET_KINDS)}, got {text!r}"
        )
    try:
        value = float(raw)
    except ValueError:
        raise InputError(f"--target {text!r}: value must be a number") from None
    if not 0.0 < value < 1.0:
        raise InputError(f"--target {text!r}: value must be strictly between 0 and 1")
    return Target(kind, value)
