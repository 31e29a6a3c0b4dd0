"""Sparsity increments as plan units: order, savings, and apply_items."""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from onnxprune.sparsity.criteria import magnitude
from onnxprune.sparsity.targets import find_layers
from onnxprune.sparsity.units import apply_items, sparsity_units
from tests.sparsity.tiny import weight_zoo


def _setup():
    model = weight_zoo()
    layers = find_layers(model, min_size=0).layers
    arrays = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    scores = {layer.node: magnitude(layer.to_matrix(arrays[layer.weight])) for layer in layers}
    return model, layers, scores


def test_units_cover_each_layer_up_to_the_cap_in_order():
    _, layers, scores = _setup()
    units = sparsity_units(layers, scores, step=0.1, max_ratio=0.5)
    for layer in layers:
        mine = [u for u in units if u.group == ("sparsity", layer.node)]
        assert [u.items[0][2] for u in mine] == [1, 2, 3, 4, 5]  # steps stay in order
        assert sum(u.weights for u in mine) == np.ceil(0.5 * layer.size)
        assert all(u.macs == 0 and u.extra == (("weights", u.weights),) for u in mine)
    assert [u.score for u in units] == sorted(u.score for u in units)


def test_apply_items_zeroes_the_highest_step():
    model, layers, scores = _setup()
    layer = next(layer for layer in layers if layer.node == "mm")
    out = apply_items(
        model, layers, scores, [("sparsity", "mm", 1), ("sparsity", "mm", 3)], step=0.1
    )
    value = next(numpy_helper.to_array(i) for i in out.graph.initializer if i.name == layer.weight)
    assert np.count_nonzero(value == 0) == np.ceil(0.3 * layer.size)
