"""Defaults shared by ``prune`` and ``optimize`` (API and CLI): one place, one set.

``round_to`` follows the execution provider's channel block
(:func:`onnxprune.runtime.blocks.channel_block`: 16 on AVX-512 CPUs, 8 on AVX2, 8 on GPUs), so
a pruned model keeps ONNX Runtime's fast kernels; ``max_ratio`` caps the share of a group that
may go; without calibration data the criterion is ``l1``.
"""

from __future__ import annotations

MAX_RATIO = 0.8
DATA_FREE_CRITERION = "l1"


def round_to(provider: str = "cpu", value: int | None = None) -> int:
    """``value`` when given, else the channel block of ``provider``."""
    if value is not None:
        return int(value)
    from onnxprune.runtime.blocks import channel_block

    return channel_block(provider)
