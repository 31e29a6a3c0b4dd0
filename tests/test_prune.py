"""`prune`'s plan names the channels it removed in the source layers' own numbering, so a user
can repeat the cut elsewhere (a training framework, another export of the same network)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from onnxprune import prune
from onnxprune.analysis.groups import ChannelGroup
from tests.oracle import make_model, relative_error, session, tensor, weights


def _conv_chain() -> onnx.ModelProto:
    """Conv(3→12) → Relu → Conv(12→6) → GlobalAveragePool → Flatten → Gemm(6→5)."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c2"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], name="fc", transB=1),
    ]
    initializers = [
        weights("w1", (12, 3, 3, 3), 1),
        weights("b1", (12,), 2),
        weights("w2", (6, 12, 3, 3), 3),
        weights("b2", (6,), 4),
        weights("w3", (5, 6), 5),
        weights("b3", (5,), 6),
    ]
    return make_model(nodes, [tensor("x", [2, 3, 8, 8])], [tensor("y", [2, 5])], initializers)


def test_removed_channels_follow_the_cluster_order_and_width():
    group = ChannelGroup(0, ["q"], np.array([7, 3, 9]), np.zeros(3, bool), width=4)
    assert group.removed_channels({9, 7}) == [0, 1, 2, 3, 8, 9, 10, 11]
    assert group.removed_channels(set()) == []


def test_zeroing_the_named_channels_in_the_original_gives_the_pruned_outputs():
    model = _conv_chain()
    result = prune(model, ratio=0.5, criterion="l1", round_to=1)
    for group in result.plan.groups:
        assert len(group.removed_channels) == group.channels_before - group.channels_after
        assert group.removed_channels == sorted(set(group.removed_channels))
    removed = {group.name: group.removed_channels for group in result.plan.groups}
    assert 0 < len(removed["conv1"]) < 12 and 0 < len(removed["conv2"]) < 6
    # what a user does with the lists: the layers reading those channels stop reading them
    # (conv2 reads conv1's channels, the classifier reads conv2's after the pooling)
    masked = onnx.ModelProto.FromString(model.SerializeToString())
    for source, reader in (("conv1", "w2"), ("conv2", "w3")):
        stored = next(i for i in masked.graph.initializer if i.name == reader)
        value = numpy_helper.to_array(stored).copy()
        value[:, removed[source]] = 0
        stored.CopyFrom(numpy_helper.from_array(value, reader))
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    expected = session(masked).run(None, {"x": x})[0]
    pruned = session(result.model).run(None, {"x": x})[0]
    assert relative_error(pruned, expected) < 1e-5
    assert (
        result.plan.to_dict()["groups"][0]["removed_channels"]
        == result.plan.groups[0].removed_channels
    )
