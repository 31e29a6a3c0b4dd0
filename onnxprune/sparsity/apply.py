"""Write sparsified weights into a model: same initializer names, dtypes and graph.

Sparsity changes no shape and no node, so realizing a plan is replacing initializer values
(masks applied, OBS-updated values where a reconstruction ran). The result passes the ONNX
checker and runs wherever the original did; the zeros stay dense (see
:mod:`onnxprune.sparsity.storage` for ``sparse_initializer`` storage).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from onnx import ModelProto, numpy_helper


def apply_weights(model: ModelProto, weights: Mapping[str, np.ndarray]) -> ModelProto:
    """A copy of ``model`` whose initializers named in ``weights`` hold the given values (cast
    to the initializer's dtype; shapes must match)."""
    result = ModelProto()
    result.CopyFrom(model)
    left = dict(weights)
    for init in result.graph.initializer:
        if init.name not in left:
            continue
        value = np.asarray(left.pop(init.name))
        original_dtype = numpy_helper.to_array(init).dtype
        if tuple(value.shape) != tuple(init.dims):
            raise ValueError(f"{init.name}: shape {value.shape} != {tuple(init.dims)}")
        init.CopyFrom(numpy_helper.from_array(value.astype(original_dtype), init.name))
    if left:
        raise KeyError(f"no initializer named {sorted(left)[0]!r}")
    return result


def apply_masks(model: ModelProto, masks: Mapping[str, np.ndarray]) -> ModelProto:
    """A copy of ``model`` with the weights of ``masks`` (initializer name -> bool array of
    the weight's shape, True = zeroed) set to zero."""
    arrays = {init.name: init for init in model.graph.initializer if init.name in masks}
    weights = {}
    for name, mask in masks.items():
        value = numpy_helper.to_array(arrays[name]).copy()
        value[np.asarray(mask, dtype=bool)] = 0
        weights[name] = value
    return apply_weights(model, weights)
