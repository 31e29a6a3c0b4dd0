"""Which layers are sparsified, their weight-matrix layout and N:M grouping."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.sparsity.targets import find_layers
from tests.sparsity.tiny import weight_zoo


@pytest.fixture(scope="module")
def model():
    return weight_zoo()


def test_default_skips_depthwise_and_small_layers_and_counts_them(model):
    targets = find_layers(model)
    assert [layer.node for layer in targets.layers] == ["a", "mm"]
    assert targets.skipped["dw"] == "depthwise"
    assert targets.skipped["fc"].startswith("small")
    assert targets.total_weights == 1152 + 144 + 512 + 288 + 192 + 1536


def test_ignore_leaves_the_layer_out_of_the_count_and_protect_keeps_it_counted(model):
    targets = find_layers(model, ignore=["mm"], protected=["a"], min_size=0)
    assert targets.skipped["mm"] == "ignored" and targets.skipped["a"] == "protected"
    assert targets.total_weights == 1152 + 144 + 512 + 288 + 192


@pytest.mark.parametrize("node", ["a", "up", "g", "fc", "mm"])
def test_matrix_round_trip_and_rows_are_outputs(model, node):
    targets = find_layers(model, min_size=0, skip_depthwise=False)
    layer = next(layer for layer in targets.layers if layer.node == node)
    weight = np.arange(layer.size, dtype=np.float32).reshape(layer.shape)
    matrix = layer.to_matrix(weight)
    assert matrix.shape == (layer.rows, layer.columns)
    np.testing.assert_array_equal(layer.from_matrix(matrix), weight)


def test_reduction_axes(model):
    layers = {
        layer.node: layer for layer in find_layers(model, min_size=0, skip_depthwise=False).layers
    }
    assert (layers["a"].reduction, layers["a"].inner) == (8, 9)
    assert layers["up"].reduction == 16 and layers["up"].rows == 8 * 4
    assert layers["g"].reduction == 4 and layers["g"].groups == 2
    assert layers["fc"].reduction == 8 and layers["fc"].trans_b
    assert layers["mm"].reduction == 24
    assert not layers["dw"].allows_nm(4) and layers["g"].allows_nm(4)


def test_nm_order_groups_consecutive_channels_at_one_kernel_offset(model):
    layer = next(layer for layer in find_layers(model).layers if layer.node == "a")
    order = layer.nm_order()
    # KCRS: column c*9 + j; a group = 4 consecutive c at the same offset j
    first = order[:4]
    assert list(first) == [0, 9, 18, 27]
    assert sorted(order) == list(range(layer.columns))
