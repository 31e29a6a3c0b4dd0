"""Recurrent layers as consumers: conv features that feed an LSTM/GRU/RNN (a CRNN text-line
recognizer, both PyTorch exporters) are prunable by slicing W's input columns, and that is
mask-equivalent; the hidden size is not pruned; channels that reach another input block; the
MAC counters count the recurrent products."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from models.recurrent_blocks import CRNN, FEATURES, HEIGHT, HIDDEN, WIDTH
from onnxprune.analysis import analyze
from onnxprune.io import load_model
from onnxprune.passes import preprocess
from onnxprune.stats.macs import count_macs
from tests.oracle import prove_random_removals

CASES = [(kind, first, exporter) for kind, first in (("lstm", False), ("gru", True),
         ("rnn", True)) for exporter in ("torchscript", "dynamo")]  # fmt: skip
# dynamo writes nn.RNN (tanh) unrolled as MatMul/Tanh per step, not as an RNN node
RECURRENT_NODES = {case: 0 if case[::2] == ("rnn", "dynamo") else 1 for case in CASES}


def _export(folder, kind: str, batch_first: bool, exporter: str) -> onnx.ModelProto:
    torch.manual_seed(0)
    module = CRNN(kind, batch_first).eval()
    x = torch.randn(2, 3, HEIGHT, WIDTH)
    path = folder / f"crnn-{kind}-{exporter}.onnx"
    if exporter == "torchscript":
        torch.onnx.export(module, (x,), str(path), dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}})  # fmt: skip
    else:
        torch.onnx.export(module, (x,), str(path), dynamo=True, input_names=["x"],
                          output_names=["y"], external_data=False,
                          dynamic_shapes={"x": {0: torch.export.Dim("batch", max=64)}})  # fmt: skip
    return preprocess(load_model(path)).model


@pytest.mark.parametrize(("kind", "batch_first", "exporter"), CASES)
def test_features_feeding_a_recurrent_layer_are_prunable(tmp_path, kind, batch_first, exporter):
    model = _export(tmp_path, kind, batch_first, exporter)
    recurrent = [n for n in model.graph.node if n.op_type in ("LSTM", "GRU", "RNN")]
    assert len(recurrent) == RECURRENT_NODES[(kind, batch_first, exporter)]
    analysis = analyze(model)
    feeding = [g for g in analysis.groups if g.size == FEATURES]
    assert len(feeding) == 1 and feeding[0].prunable, feeding[0].reasons if feeding else None
    for node in recurrent:  # its W is sliced along the input features
        assert any(s.constant == node.input[1] and s.axis == 2 for s in analysis.slices)
    assert prove_random_removals(analysis, seeds=2) == "ok"


def _lstm_model(initial_from_features: bool, layout: int = 0) -> onnx.ModelProto:
    """Conv features [1, C, 1, W] → [W, 1, C] → LSTM (hidden size C); optionally the initial
    hidden state is the features' mean over time, which carries the channels into input 5 and
    must block them."""
    rng = np.random.default_rng(0)
    c = 8
    inits = [
        numpy_helper.from_array(rng.standard_normal((c, 3, 1, 1)).astype(np.float32), "conv_w"),
        numpy_helper.from_array(rng.standard_normal((1, 4 * c, c)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.standard_normal((1, 4 * c, c)).astype(np.float32), "R"),
        numpy_helper.from_array(np.asarray([2], np.int64), "axis2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv_w"], ["f"]),
        helper.make_node("Squeeze", ["f", "axis2"], ["s"]),
        helper.make_node("Transpose", ["s"], ["t"], perm=[0, 2, 1] if layout else [2, 0, 1]),
    ]
    lstm_inputs = ["t", "W", "R"]
    if initial_from_features:
        nodes.append(helper.make_node("ReduceMean", ["t"], ["h0"], axes=[0], keepdims=1))
        lstm_inputs += ["", "", "h0"]
    nodes.append(helper.make_node("LSTM", lstm_inputs, ["y"], hidden_size=c, layout=layout))
    y_shape = [1, 5, 1, c] if layout else [5, 1, 1, c]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 1, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_channels_reaching_the_initial_state_block():
    free = analyze(preprocess(_lstm_model(False)).model)
    assert [g.prunable for g in free.groups if g.size == 8] == [True]
    coupled = analyze(preprocess(_lstm_model(True)).model)
    group = next(g for g in coupled.groups if g.size == 8)
    assert not group.prunable
    assert any("input 5" in reason for reason in group.reasons), group.reasons


@pytest.mark.parametrize("layout", [0, 1])
def test_recurrent_macs_are_counted(layout):
    """S·B·(|W| + |R|): 5 steps, batch 1, W and R [1, 32, 8]; the 1×1 conv adds 8·3·5. The
    step axis is X's first (layout 0) or second (layout 1)."""
    report = count_macs(_lstm_model(False, layout))
    assert report.total == 5 * (32 * 8 + 32 * 8) + 8 * 3 * 5


def test_crnn_macs_include_the_recurrent_layer(tmp_path):
    model = _export(tmp_path, "lstm", False, "torchscript")
    report = count_macs(model, {"x": [1, 3, HEIGHT, WIDTH]})
    lstm = next(n for n in report.nodes if n.op_type == "LSTM")
    steps = WIDTH // 2
    assert lstm.macs == steps * 2 * 4 * HIDDEN * (FEATURES + HIDDEN)


def test_optimize_runs_on_a_sequence_first_recognizer(tmp_path):
    """The LSTM CRNN writes [steps, B, classes] (sequence-first, for a CTC loss): the guard
    collects it along axis 1 (a note says so) and the conv features feeding the LSTM prune."""
    from onnxprune import optimize

    model = _export(tmp_path, "lstm", False, "torchscript")
    x = np.random.default_rng(0).standard_normal((20, 3, HEIGHT, WIDTH)).astype(np.float32)
    result = optimize(model, "macs=0.8", data={"x": x}, criterion="l1", allocation="global",
                      steps=1, max_drop=1e9, measure_latency=False)  # fmt: skip
    assert any("batch on axis 1 (sequence-first)" in note for note in result.report.notes)
    assert result.report.macs_ratio < 0.9
