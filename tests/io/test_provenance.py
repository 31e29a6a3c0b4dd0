"""ONNX Runtime refusals are blamed on the input (InputError) or on onnxprune (InternalError)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprune.errors import InputError, InternalError
from onnxprune.io import load_model
from onnxprune.io.provenance import model_step, run_failure, session_failure
from onnxprune.runtime import create_session
from tests.fuzz.corpus import MODEL_MUTATIONS, base_model


def _custom_op_model() -> onnx.ModelProto:
    """Valid ONNX that ONNX Runtime cannot open (an op of an unknown custom domain)."""
    return MODEL_MUTATIONS["custom_domain_op"](base_model(), np.random.default_rng(0))


def _broken_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """What a buggy step could write: a copy with an op no runtime knows."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    copy.graph.node[1].op_type = "Relux"
    return copy


def test_input_model_refused_is_bad_input(tmp_path) -> None:
    path = tmp_path / "custom.onnx"
    onnx.save_model(_custom_op_model(), path)
    model = load_model(path)
    with pytest.raises(InputError, match=rf"ONNX Runtime cannot run model '{path}': .*MyRelu"):
        create_session(model)


def test_model_onnxprune_made_is_a_bug_naming_the_step(tmp_path) -> None:
    path = tmp_path / "good.onnx"
    onnx.save_model(base_model(), path)
    model = load_model(path)
    with model_step("rewrite"), pytest.raises(InternalError) as info:
        create_session(_broken_copy(model))
    message = str(info.value)
    assert "bug in onnxprune" in message and "step 'rewrite'" in message and str(path) in message


def test_derived_model_of_a_refused_input_blames_the_input(tmp_path) -> None:
    path = tmp_path / "custom.onnx"
    onnx.save_model(_custom_op_model(), path)
    model = load_model(path)
    derived = onnx.ModelProto()
    derived.CopyFrom(model)
    derived.graph.node[0].name = "renamed"  # not equal to the input any more
    error = session_failure(derived, RuntimeError("refused"))
    assert isinstance(error, InputError) and str(path) in str(error)


def test_run_failure_of_the_input_is_bad_input(tmp_path) -> None:
    """A Gather whose constant index is out of range fails at run time, not at load."""
    nodes = [
        helper.make_node("Gather", ["c", "idx"], ["g"]),
        helper.make_node("Add", ["x", "g"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [
            numpy_helper.from_array(np.ones(4, np.float32), "c"),
            numpy_helper.from_array(np.full((1, 4), 100, np.int64), "idx"),
        ],
    )
    path = tmp_path / "gather.onnx"
    opsets = [helper.make_opsetid("", 17)]
    onnx.save_model(helper.make_model(graph, opset_imports=opsets, ir_version=8), path)
    model = load_model(path)
    runner = create_session(model)
    with pytest.raises(InputError, match=rf"ONNX Runtime failed running model '{path}'"):
        runner.run({"x": np.zeros((1, 4), np.float32)})
    assert isinstance(run_failure(str(path), RuntimeError("x")), InputError)


def _batch_one_inside(tmp_path):
    """x [N, 32] → Reshape [1, -1] → MatMul W (32 × 48): runs on one sample, not on two."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["flat"], name="flat"),
        helper.make_node("MatMul", ["flat", "w"], ["y"], name="mm"),
    ]
    graph = helper.make_graph(
        nodes,
        "one",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 48])],
        [
            numpy_helper.from_array(np.array([1, -1], np.int64), "shape"),
            numpy_helper.from_array(rng.normal(size=(32, 48)).astype(np.float32), "w"),
        ],
    )
    path = tmp_path / "batch_one.onnx"
    opsets = [helper.make_opsetid("", 17)]
    onnx.save_model(helper.make_model(graph, opset_imports=opsets, ir_version=8), path)
    return path


def test_a_model_that_runs_one_sample_at_a_time_is_told_so(tmp_path) -> None:
    path = _batch_one_inside(tmp_path)
    runner = create_session(load_model(path))
    x = np.ones((1, 32), np.float32)
    assert runner.run({"x": x})[0].shape == (1, 48)
    with pytest.raises(InputError, match=r"it runs on one sample at a time.*declare the inputs"):
        runner.run({"x": np.ones((2, 32), np.float32)})


@pytest.mark.parametrize("command", ["sparsify", "prune"])
def test_data_doors_check_the_model_runs_on_the_data(tmp_path, command) -> None:
    """Statistics passes run the graph only up to each layer's input, which a batch of 8
    passes here; the whole model refuses it (internal numpy errors before the door check)."""
    import onnxprune

    path = _batch_one_inside(tmp_path)
    data = {"x": np.random.default_rng(1).normal(size=(8, 32)).astype(np.float32)}
    options = {"sparsity": 0.5, "min_size": 0} if command == "sparsify" else {"ratio": 0.3}
    with pytest.raises(InputError, match=r"batch_one.onnx' on the given data.*one sample"):
        getattr(onnxprune, command)(str(path), criterion="obs", data=data, **options)


def test_a_recycled_id_does_not_name_another_models_step(tmp_path) -> None:
    """mark_made_by keys by id(model); a different model that gets the same id (the first was
    freed) must not inherit its step."""
    from onnxprune.io.provenance import made_by, mark_made_by

    marked = base_model()
    mark_made_by(marked, "recover (lsq)")
    other = onnx.ModelProto()
    other.CopyFrom(marked)
    del other.graph.node[-1]
    import onnxprune.io.provenance as provenance

    provenance._made_by[id(other)] = provenance._made_by.pop(id(marked))  # the id reused
    assert made_by(other) is None
    assert made_by(marked) is None  # its entry moved away
    mark_made_by(marked, "rewrite")
    assert made_by(marked) == "rewrite"


def test_opset_runtime_lacks_suggests_version_conversion(tmp_path):
    """An opset-6 Add (legacy broadcast) runs nowhere in ONNX Runtime: one line, exit 2, and
    the message says how to move the model to an opset it runs."""
    import numpy as np
    import onnx
    from click.testing import CliRunner
    from onnx import TensorProto, helper, numpy_helper

    from onnxprune.cli import cli

    weight = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    bias = numpy_helper.from_array(np.ones(4, np.float32), "b")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"]),
        helper.make_node("Add", ["c", "b"], ["y"], broadcast=1, axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 3, 3, 3]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [4]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])],
        [weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 6)])
    model.ir_version = 3
    path = tmp_path / "opset6.onnx"
    onnx.save(model, path)
    np.savez(tmp_path / "data.npz", x=np.zeros((2, 3, 8, 8), np.float32))
    result = CliRunner().invoke(
        cli, ["validate", str(path), str(path), "--data", str(tmp_path / "data.npz")]
    )
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "version_converter" in errors[0]


def test_attention_kernel_refusal_suggests_an_older_opset(tmp_path):
    """ONNX Runtime 1.31's Attention kernel refuses a padding mask [B, 1, 1, T] (the
    specification broadcasts it): the error says so and how to export around it."""
    from tests.passes.helpers import padding_mask_attention

    shape = [2, 2, 5, 4]
    model = padding_mask_attention(batch=2)
    path = tmp_path / "attention.onnx"
    onnx.save(model, path)
    feeds = {n: np.zeros(shape, np.float32) for n in "QKV"}
    feeds["M"] = np.zeros((2, 1, 1, 5), np.float32)
    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)
    except Exception as error:  # ONNX Runtime's Fail
        message = str(run_failure(str(path), error, feeds))
    else:
        pytest.skip("this ONNX Runtime broadcasts the mask (the refusal the hint is for is gone)")
    assert "opset 22 or below" in message
