"""Bias compensation: keep the expected output of every consumer of removed channels.

A consumer computes y = W · row + b. Removing input features S drops W_S · x_S; replacing that
term by its mean keeps E[y] unchanged:

    b' = b + Σ_{c∈S} W[:, c] · E[x_c]

(for a conv, W[:, c] is summed over the kernel: every kernel offset reads the same channel
mean; at zero-padded borders the true contribution is smaller, so the compensation is exact
for constant channels read without padding). E[x_c] comes from the original model's
calibration statistics. The result is exact when the removed channels are constant.
"""

from __future__ import annotations

import numpy as np
from onnx import ModelProto

from onnxprune.calibrate import CalibrationStats
from onnxprune.recover.edit import ModelEdits
from onnxprune.recover.targets import RefitTarget


def bias_shift(target: RefitTarget, stats: CalibrationStats) -> np.ndarray:
    """Σ_{c∈S} W[:, c]·E[x_c] over the removed features S (kept output rows only)."""
    mean = stats.features[target.layer.node].mean
    removed = np.flatnonzero(~target.kept_features)
    k = target.layer.kernel_size
    columns = target.removed_columns
    per_column = np.repeat(mean[removed], k)
    return target.weight[:, columns] @ per_column


def compensate_bias(
    pruned: ModelProto, targets: list[RefitTarget], stats: CalibrationStats
) -> ModelProto:
    """A copy of ``pruned`` whose target consumers get the bias shift of :func:`bias_shift`."""
    model = ModelProto()
    model.CopyFrom(pruned)
    edits = ModelEdits(model)
    for target in targets:
        if target.layer.node not in stats.features:
            continue
        dtype = edits.input_value(target.layer.node, 1).dtype
        edits.shift_bias(target.layer.node, bias_shift(target, stats), dtype)
    edits.drop_unused()
    return model
