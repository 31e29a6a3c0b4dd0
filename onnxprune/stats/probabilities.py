"""Reading model outputs as class probabilities: the numpy helpers every KL of the package
shares (fidelity metrics, sensitivity drops, block drops, the default guard choice).

A model may be exported with its softmax (Keras applications, many TensorFlow and Paddle
classifiers): its output already is a distribution along the class axis. Applying a softmax
to it again gives softmax(p), nearly uniform over many classes (e^p lies in [1, e]), and a KL
between two such vectors is nearly 0 whatever the model does. So a KL reads the values as
probabilities when the reference output already is a distribution, else as logits.
"""

from __future__ import annotations

import numpy as np

#: how far from 1 a slice's sum may be for :func:`is_distribution` (float32 softmax rounding)
DISTRIBUTION_TOLERANCE = 1e-3


def is_distribution(array: np.ndarray, axis: int) -> bool:
    """Whether every slice along ``axis`` is a probability distribution: values in [0, 1]
    summing to 1 (within :data:`DISTRIBUTION_TOLERANCE`), over at least 2 entries."""
    array = np.asarray(array, dtype=np.float64)
    if array.size == 0 or array.ndim == 0 or array.shape[axis] < 2:
        return False
    if array.min() < 0.0 or array.max() > 1.0:
        return False
    return bool(np.all(np.abs(array.sum(axis=axis) - 1.0) <= DISTRIBUTION_TOLERANCE))


def log_softmax(array: np.ndarray, axis: int) -> np.ndarray:
    """x − max − log Σ exp(x − max) along ``axis``, in float64."""
    array = np.asarray(array, dtype=np.float64)
    shifted = array - array.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def log_probability_pair(
    reference: np.ndarray, candidate: np.ndarray, axis: int
) -> tuple[np.ndarray, np.ndarray]:
    """(log P, log Q) along ``axis`` for KL(P ‖ Q): both the values' logs (clipped to ≥ 1e-12)
    when the reference is a distribution there, else both log softmax (module doc)."""
    if is_distribution(reference, axis):
        return (
            np.log(np.clip(np.asarray(reference, np.float64), 1e-12, None)),
            np.log(np.clip(np.asarray(candidate, np.float64), 1e-12, None)),
        )
    return log_softmax(reference, axis), log_softmax(candidate, axis)
