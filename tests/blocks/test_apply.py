"""Block removal is proven: the rewritten model equals the original whose removed branches
output the same constant (ORT, relative error <= 1e-5), passes the checker and keeps its
input/output names and ranks. Hand-built graphs check folding; zoo models both exporters."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from onnxprune.blocks import constant_branch_model, find_units, remove_units
from onnxprune.blocks.observe import channel_constant, observe_units, synthetic_feeds
from onnxprune.passes import preprocess
from tests.blocks.graphs import C, residual_model
from tests.oracle import random_feeds, relative_error, session

TOLERANCE = 1e-5


def io_signature(model: onnx.ModelProto) -> list[tuple[str, int, int]]:
    inits = {i.name for i in model.graph.initializer}
    values = [v for v in model.graph.input if v.name not in inits] + list(model.graph.output)
    return [
        (v.name, v.type.tensor_type.elem_type, len(v.type.tensor_type.shape.dim)) for v in values
    ]


def assert_proven(search, units, constants) -> onnx.ModelProto:
    removed = remove_units(search, units, constants)  # runs the full checker
    reference = constant_branch_model(search, units, constants)
    assert io_signature(removed) == io_signature(search.model)
    feeds = random_feeds(search.model, batch=2, seed=3)
    got = session(removed).run(None, feeds)
    want = session(reference).run(None, feeds)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        assert relative_error(g, w) <= TOLERANCE
    return removed


def per_channel(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, C, 1, 1)).astype(np.float32)


def test_conv_producer_absorbs_the_constant():
    search = find_units(residual_model())
    removed = assert_proven(search, [0], {0: per_channel(0)})
    ops = [n.op_type for n in removed.graph.node]
    assert ops == ["Conv", "Conv"]  # stem (bias + c) feeds the head directly
    assert {i.name for i in removed.graph.initializer}.isdisjoint({"f_conv1_w", "f_conv2_w"})


def test_without_folding_a_constant_add_remains():
    search = find_units(residual_model(branch_first=True))
    removed = remove_units(search, [0], {0: per_channel(1)}, fold=False)
    assert [n.op_type for n in removed.graph.node] == ["Conv", "Add", "Conv"]


def test_a_whole_stage_merges_into_one_constant():
    search = find_units(residual_model(second_unit=True, layer_scale=True))
    constants = {0: per_channel(2), 1: per_channel(3)}
    removed = assert_proven(search, [0, 1], constants)
    assert [n.op_type for n in removed.graph.node] == ["Conv", "Conv"]
    assert_proven(search, [1], constants)


def test_identity_read_elsewhere_keeps_a_constant_add():
    search = find_units(residual_model(second_unit=True))
    removed = assert_proven(search, [1], {1: per_channel(4)})
    assert sum(n.op_type == "Add" for n in removed.graph.node) == 2


def test_channel_constant_picks_the_axis_that_explains_the_mean():
    rng = np.random.default_rng(0)
    per_feature = rng.standard_normal((1, 1, 16))
    mean = np.broadcast_to(per_feature, (1, 10, 16))[0] + 1e-3 * rng.standard_normal((10, 16))
    constant = channel_constant(mean)
    assert constant.shape == (1, 1, 16)
    np.testing.assert_allclose(constant[0, 0], per_feature[0, 0], atol=1e-2)
    assert channel_constant(np.ones((4, 3, 3))).shape == (1, 4, 1, 1)


ZOO = [
    "resnet18", "resnet50", "mobilenetv2", "efficientnet_b0", "convnext", "vit_tiny", "yolo", "bert",
    "bert_sdpa",
]  # fmt: skip


@pytest.fixture(
    scope="module",
    params=[(n, e) for n in ZOO for e in ("torchscript", "dynamo")],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def zoo_search(request, zoo_onnx):
    name, exporter = request.param
    model = preprocess(onnx.load(zoo_onnx(name, exporter))).model
    search = find_units(model)
    observations = observe_units(search, range(len(search.units)), synthetic_feeds(search, 4))
    constants = {i: channel_constant(o.mean_branch) for i, o in observations.items()}
    return search, constants


@pytest.mark.slow
def test_zoo_each_unit_and_all_units_are_proven(zoo_search):
    search, constants = zoo_search
    assert search.units, "every zoo family has residual units"
    for unit in search.units:
        assert_proven(search, [unit.index], constants)
    removed = assert_proven(search, range(len(search.units)), constants)
    assert len(removed.graph.node) < len(search.model.graph.node)
