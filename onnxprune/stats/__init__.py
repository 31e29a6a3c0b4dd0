"""Model statistics: MACs, parameters and the summary ``onnxprune inspect`` prints.

Public API: :func:`count_macs` -> :class:`MacReport`, :func:`count_params` -> (params, bytes),
:func:`summarize` -> :class:`ModelSummary`, :func:`node_names`.
"""

from onnxprune.stats.macs import MacReport, NodeMacs, count_macs
from onnxprune.stats.naming import node_names
from onnxprune.stats.params import count_params, param_tensors
from onnxprune.stats.summary import LayerInfo, ModelSummary, TensorInfo, summarize

__all__ = [
    "LayerInfo",
    "MacReport",
    "ModelSummary",
    "NodeMacs",
    "TensorInfo",
    "count_macs",
    "count_params",
    "node_names",
    "param_tensors",
    "summarize",
]
