"""load_model: paths and ModelProtos, external data, and every broken input -> ModelLoadError."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from onnxprune.errors import ModelLoadError
from onnxprune.io import load_model, save_model
from tests.io.tiny_models import mlp_model


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save_model(mlp_model(), path)
    return path


def _external_model(folder, location: str | None = None):
    """Save mlp_model with external data in ``folder``; optionally rewrite every location."""
    path = save_model(mlp_model(), folder / "ext.onnx", external_data=True)
    if location is not None:
        skeleton = onnx.load_model(path, load_external_data=False)
        for tensor in skeleton.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = location
        path.write_bytes(skeleton.SerializeToString())
    return path


def _load_error(source, **kwargs) -> str:
    with pytest.raises(ModelLoadError) as info:
        load_model(source, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_load_path_gives_same_weights(model_path):
    model = load_model(model_path)
    expected = numpy_helper.to_array(mlp_model().graph.initializer[0])
    np.testing.assert_array_equal(numpy_helper.to_array(model.graph.initializer[0]), expected)
    assert load_model(str(model_path)).graph.node[0].name == "fc1"


def test_load_proto_is_a_copy(model_path):
    original = mlp_model()
    before = original.SerializeToString()
    loaded = load_model(original)
    loaded.graph.node[0].name = "changed"
    loaded.graph.ClearField("initializer")
    assert original.SerializeToString() == before
    assert loaded is not original


def test_external_data_is_loaded_inline(tmp_path):
    path = _external_model(tmp_path)
    model = load_model(path)
    for tensor in model.graph.initializer:
        assert tensor.data_location == onnx.TensorProto.DEFAULT
        assert not tensor.external_data
    expected = numpy_helper.to_array(mlp_model().graph.initializer[1])
    np.testing.assert_array_equal(numpy_helper.to_array(model.graph.initializer[1]), expected)


def test_external_data_kept_as_reference_on_request(tmp_path):
    path = _external_model(tmp_path)
    model = load_model(path, load_external_data=False)
    assert all(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


def test_in_memory_model_with_external_refs(tmp_path):
    path = _external_model(tmp_path)
    skeleton = onnx.load_model(path, load_external_data=False)
    assert "base_dir" in _load_error(skeleton)
    model = load_model(skeleton, base_dir=tmp_path)
    assert model.graph.initializer[0].HasField("raw_data")
    assert skeleton.graph.initializer[0].data_location == onnx.TensorProto.EXTERNAL


def test_missing_file(tmp_path):
    message = _load_error(tmp_path / "nope.onnx")
    assert "nope.onnx" in message and "no such file" in message


def test_directory(tmp_path):
    assert "directory" in _load_error(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    assert "empty" in _load_error(path)


@pytest.mark.parametrize(
    "content",
    [
        b"hello world, this is not a model\n",
        b'{"graph": {"node": []}, "ir_version": 8}\n',
        b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
        b"\xff" * 1000,
    ],
    ids=["text", "json", "png", "ff"],
)
def test_foreign_files(tmp_path, content):
    path = tmp_path / "foreign.onnx"
    path.write_bytes(content)
    assert "foreign.onnx" in _load_error(path)


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.5, 0.9, 0.999])
def test_truncated_file(model_path, fraction):
    data = model_path.read_bytes()
    model_path.write_bytes(data[: int(len(data) * fraction)])
    assert "mlp.onnx" in _load_error(model_path)


def test_every_truncation_of_a_small_model_is_refused(tmp_path):
    """Cut a small model at every byte: each prefix is refused (none parses as a usable model)."""
    data = mlp_model(hidden=2).SerializeToString()
    path = tmp_path / "cut.onnx"
    for cut in range(len(data)):
        path.write_bytes(data[:cut])
        with pytest.raises(ModelLoadError):
            load_model(path)


def test_ir_version_too_new(tmp_path):
    model = mlp_model()
    model.ir_version = onnx.IR_VERSION + 1
    path = tmp_path / "future.onnx"
    path.write_bytes(model.SerializeToString())
    message = _load_error(path)
    assert f"IR version {onnx.IR_VERSION + 1}" in message and "future.onnx" in message


def test_opset_too_new(tmp_path):
    model = mlp_model()
    model.opset_import[0].version = onnx.defs.onnx_opset_version() + 1
    assert "opset" in _load_error(model)


def test_undefined_tensor_is_corrupt():
    model = mlp_model()
    model.graph.node[1].input[0] = "ghost"
    assert "ghost" in _load_error(model)


@pytest.mark.parametrize("location", ["/etc/passwd", "../ext.onnx.data", "sub/../../x.data"])
def test_escaping_external_locations_are_refused(tmp_path, location):
    folder = tmp_path / "model"
    folder.mkdir()
    path = _external_model(folder, location)
    (tmp_path / "ext.onnx.data").write_bytes((folder / "ext.onnx.data").read_bytes())
    message = _load_error(path)
    assert "refused" in message and location in message
    assert "refused" in _load_error(path, load_external_data=False)


def test_symlink_out_of_folder_is_refused(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    path = _external_model(folder)
    outside = tmp_path / "outside.data"
    os.replace(folder / "ext.onnx.data", outside)
    (folder / "ext.onnx.data").symlink_to(outside)
    assert "resolves outside" in _load_error(path)


def test_missing_external_file(tmp_path):
    path = _external_model(tmp_path)
    (tmp_path / "ext.onnx.data").unlink()
    assert "missing" in _load_error(path)


def test_truncated_external_file(tmp_path):
    path = _external_model(tmp_path)
    data_path = tmp_path / "ext.onnx.data"
    data_path.write_bytes(data_path.read_bytes()[:-100])
    assert "truncated" in _load_error(path)


def test_wrong_source_type():
    with pytest.raises(TypeError):
        load_model(42)  # type: ignore[arg-type]
