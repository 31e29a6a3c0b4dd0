"""Channel importance criteria, registered by name (``l1``, ``l2``, ``bn``, ``random``, ...)."""

from onnxprune.importance import activation, gradient, obs  # noqa: F401 - registers data criteria
from onnxprune.importance.norms import CRITERIA, register_criterion


def score_clusters(analysis, criterion: str = "l1", **options):
    """Scores (higher = more important) for every cluster of ``analysis``."""
    from onnxprune.errors import InputError

    if criterion not in CRITERIA:
        raise InputError(f"unknown criterion '{criterion}'; known: {', '.join(sorted(CRITERIA))}")
    return CRITERIA[criterion](analysis, **options)


__all__ = ["CRITERIA", "register_criterion", "score_clusters"]
