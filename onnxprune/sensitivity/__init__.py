"""Sensitivity analysis: per-group end-to-end drop at several ratios, and the allocation that
meets a target with the least summed sensitivity."""

from onnxprune.sensitivity.measure import DEFAULT_RATIOS, measure_sensitivity, removal_sequence
from onnxprune.sensitivity.metrics import DROP_METRICS, register_drop_metric
from onnxprune.sensitivity.table import GroupSensitivity, SensitivityPoint, SensitivityTable

__all__ = [
    "DEFAULT_RATIOS",
    "DROP_METRICS",
    "GroupSensitivity",
    "SensitivityPoint",
    "SensitivityTable",
    "measure_sensitivity",
    "register_drop_metric",
    "removal_sequence",
]
