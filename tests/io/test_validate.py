"""validate_model: one named regression test per broken-model case; valid models stay valid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprune.errors import ModelLoadError
from onnxprune.io import load_model
from onnxprune.io.validate import MODEL_CHECKS, weightless_skeleton
from tests.fuzz.corpus import MODEL_MUTATIONS, base_model, chain_model, external_cases, write_case

# mutation -> fragments the one-line message must hold (what, and where).
INVALID = {
    "removed_initializer": ("is not defined", "node '"),
    "cycle": ("has a cycle", "node 'relu1'"),
    "self_loop": ("has a cycle", "node 'relu1'"),
    "duplicate_tensor_name": ("produced by two nodes", "tensor 'r1'"),
    "duplicate_input_name": ("duplicate graph input name", "tensor 'x'"),
    "duplicate_initializer": ("two initializers share one name", "tensor 'b1'"),
    "dangling_output": ("produced by no node", "tensor 'nowhere'"),
    "empty_value_info_name": ("value_info entry #0 has an empty name",),
    "empty_output_name": ("graph output #0 has an empty name",),
    "undefined_input": ("input 'ghost' is not defined", "node 'relu2'"),
    "cast_without_to": ("required attribute 'to' of Cast is missing", "node 'relu1'"),
    "concat_without_axis": ("required attribute 'axis' of Concat", "node 'relu1'"),
    "unknown_op": ("unknown op 'Relux'", "node 'relu1'"),
    "ir_version_1": ("IR version 1 is older than 3",),
    "ir_version_2": ("IR version 2 is older than 3",),
    "ir_version_99": ("IR version 99 is newer",),
    "opset_99": ("opset 99 is newer",),
    "no_opset_import": ("no opset import",),
    "mixed_float_conv": ("inconsistent type tensor(float16)", "conv2"),
    "raw_data_short": ("raw_data holds 1,152 bytes", "need 2,304", "tensor 'w2'"),
    "raw_data_not_multiple": ("raw_data holds 861 bytes", "tensor 'w1'"),
    "dims_mismatch": ("dims [5, 9]", "tensor 'w3'"),
    "negative_dims": ("negative dimension", "tensor 'b1'"),
    "conv_channel_mismatch": ("has 8 channels but weight 'w2' expects 5", "node 'conv2'"),
    "conv_bias_mismatch": ("bias 'b2' has shape [7]", "node 'conv2'"),
    "gemm_bias_wrong_shape": ("bias 'b3' of shape [7] does not broadcast", "node 'fc'"),
    "gemm_inner_mismatch": ("Dimension mismatch", "fc"),
    "nan_weights": ("NaN weight values", "tensor 'w2'"),
    "float_data_count": ("float_data holds 7 values", "tensor 'b1'"),
    "broken_subgraph": ("Relux", "node 'if'"),
    "input_int64": ("unsupported type: tensor(int64)", "conv1"),
    "no_outputs": ("no outputs",),
    "no_nodes": ("produced by no node", "tensor 'y'"),
    "strides_zero": ("strides must only contain positive values", "conv2"),
    "group_zero": ("group 0", "node 'conv2'"),
    "group_mismatch": ("group 3", "node 'conv2'"),
    "sparse_initializer_bad_index": ("sparse indices outside", "sparse tensor 'b1'"),
}
# Odd but legal (or not this layer's business): they must load.
VALID = [
    "if_subgraph",
    "custom_domain_op",
    "nodes_out_of_order",
    "minus_one_batch",
    "inf_weights",
    "opset_1",
    "repeated_value_info",
    "conflicting_value_info",
]


def _mutated(name: str) -> onnx.ModelProto:
    return MODEL_MUTATIONS[name](base_model(), np.random.default_rng(0))


def test_every_named_mutation_is_classified() -> None:
    unclassified = set(MODEL_MUTATIONS) - set(INVALID) - set(VALID) - {"negative_input_dim"}
    assert not unclassified


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_model_is_one_line_naming_what_and_where(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(_mutated(name).SerializeToString())
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    for fragment in INVALID[name]:
        assert fragment in message, message


@pytest.mark.parametrize("name", VALID)
def test_legal_models_load(name: str) -> None:
    load_model(_mutated(name))


def test_out_of_order_graph_is_reordered_and_checks() -> None:
    model = load_model(_mutated("nodes_out_of_order"))
    assert [node.name for node in model.graph.node] == [n.name for n in base_model().graph.node]
    onnx.checker.check_model(model, full_check=True)


def test_repeated_value_info_is_merged_and_conflicting_entries_dropped() -> None:
    """onnxslim writes every value_info twice; ONNX's checker and ONNX Runtime accept it."""
    merged = load_model(_mutated("repeated_value_info"))
    assert [v.name for v in merged.graph.value_info] == ["c1", "r1", "c2"]
    onnx.checker.check_model(merged, full_check=True)
    dropped = load_model(_mutated("conflicting_value_info"))
    assert [v.name for v in dropped.graph.value_info] == ["c1"]


def test_unknown_but_legal_shapes_stay_valid() -> None:
    """A custom op of unknown output shape feeding Conv, and a run-time Reshape target."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("MyOp", ["x"], ["u"], domain="com.example"),
        helper.make_node("Conv", ["u", "w"], ["c"]),
        helper.make_node("Shape", ["c"], ["s"]),
        helper.make_node("Reshape", ["c", "s"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(rng.standard_normal((4, 3, 1, 1)).astype(np.float32), "w")],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)],
        ir_version=8,
    )
    load_model(model)


@pytest.mark.parametrize("case", external_cases(), ids=lambda case: case.name)
def test_external_data_cases(case, tmp_path: Path) -> None:
    path, _ = write_case(case, tmp_path / "model")
    if case.name == "external_valid":
        load_model(path)
        return
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_skeleton_keeps_types_and_shapes_not_weights() -> None:
    model = base_model()
    for init in model.graph.initializer:  # make the weights large enough to be stripped
        init.CopyFrom(
            numpy_helper.from_array(
                np.zeros([*init.dims[:-1], init.dims[-1] * 400], np.float32), init.name
            )
        )
    skeleton = weightless_skeleton(model, max_bytes=1024)
    assert not skeleton.graph.initializer
    shapes = {
        value.name: [d.dim_value for d in value.type.tensor_type.shape.dim]
        for value in skeleton.graph.input
    }
    assert shapes["w1"] == [8, 3, 3, 1200]
    assert skeleton.ByteSize() < model.ByteSize() / 10
    assert len(model.graph.initializer) == 6  # the source is untouched


def test_deep_chain_validates() -> None:
    load_model(chain_model(10_000))


def test_checks_run_in_documented_order() -> None:
    assert [check.__name__ for check in MODEL_CHECKS][:4] == [
        "check_text",
        "check_header",
        "check_names",
        "check_topology",
    ]


def test_digits_models_are_valid() -> None:
    folder = Path(__file__).resolve().parents[2] / "models" / "digits"
    for path in sorted(folder.glob("*.onnx")):
        load_model(path)


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_zoo_exports_are_valid(zoo_onnx, exporter: str) -> None:
    from models import MODELS

    for name in MODELS:
        load_model(zoo_onnx(name, exporter))


def test_what_onnx_runtime_accepts_stays_valid() -> None:
    """A graph without a name and an output without a declared shape are not bad input."""
    model = base_model()
    model.graph.name = ""
    model.graph.output[0].type.tensor_type.ClearField("shape")
    load_model(model)


@pytest.mark.parametrize("text", [b"relu1", b"fuzz_base"])
def test_names_that_are_not_utf8_are_bad_input(text: bytes, tmp_path: Path) -> None:
    """A flipped byte inside a name (node name, graph name): protobuf returns bytes, not str."""
    blob = base_model().SerializeToString()
    assert text in blob
    path = tmp_path / "flipped.onnx"
    path.write_bytes(blob.replace(text, text[:2] + b"\xff" + text[3:]))
    with pytest.raises(ModelLoadError, match="is not valid UTF-8 text") as info:
        load_model(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
