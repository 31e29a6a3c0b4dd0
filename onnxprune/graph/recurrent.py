"""Recurrent layers (ONNX ``RNN``, ``GRU``, ``LSTM``): the MACs of one node.

Shared by the MAC counters (:mod:`onnxprune.stats.macs`, :mod:`onnxprune.analysis.macs`).
Inputs: X ``[S, B, I]`` (``layout`` 0) or ``[B, S, I]`` (``layout`` 1), W ``[D, G·H, I]``,
R ``[D, G·H, H]`` with D directions and G gates (RNN 1, GRU 3, LSTM 4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import prod

RECURRENT_OPS = ("RNN", "GRU", "LSTM")


def recurrent_macs(
    x: Sequence[int] | None,
    w: Sequence[int] | None,
    r: Sequence[int] | None,
    attrs: Mapping[str, object],
) -> int | None:
    """Every time step of every batch row multiplies the input by W and the previous hidden
    state by R in each direction: ``S·B·(|W| + |R|) = S·B·D·G·H·(I + H)``. Element-wise gate
    work (sigmoids, tanh, the cell update) is not counted, as for other layers. None when a
    shape is unknown."""
    if x is None or w is None or r is None or len(x) != 3:
        return None
    layout = int(attrs.get("layout", 0) or 0)  # type: ignore[call-overload]
    steps, batch = (x[1], x[0]) if layout else (x[0], x[1])
    return int(steps) * int(batch) * (prod(w) + prod(r))
