"""Evaluation: data loading, accuracy and fidelity metrics, running models over data.

* :func:`load_data` -> :class:`Dataset` (``.npz``, ImageFolder, ``synthetic:N``, arrays);
* metrics by name (:func:`get_metric`, :func:`register_metric`, :func:`resolve_metric`):
  label metrics in :mod:`.metrics`, reference (fidelity) metrics in :mod:`.fidelity`;
* :func:`run_dataset` (outputs of a model over a dataset) and :func:`validate` (reference vs
  candidate, the engine of ``onnxprune validate``).
"""

from onnxprune.evaluate import embedding, fidelity, metrics  # noqa: F401 - registers built-ins
from onnxprune.evaluate.data import Dataset, load_data, model_input_specs
from onnxprune.evaluate.preprocess import Preprocess, read_preprocess
from onnxprune.evaluate.registry import (
    Metric,
    get_metric,
    metric_names,
    register_metric,
    unregister_metric,
)
from onnxprune.evaluate.runner import ModelOutputs, run_dataset
from onnxprune.evaluate.synthetic import synthetic_dataset
from onnxprune.evaluate.user_metric import resolve_metric
from onnxprune.evaluate.validation import ValidationResult, validate

__all__ = [
    "Dataset",
    "Metric",
    "ModelOutputs",
    "Preprocess",
    "ValidationResult",
    "get_metric",
    "load_data",
    "metric_names",
    "model_input_specs",
    "read_preprocess",
    "register_metric",
    "resolve_metric",
    "run_dataset",
    "synthetic_dataset",
    "unregister_metric",
    "validate",
]
