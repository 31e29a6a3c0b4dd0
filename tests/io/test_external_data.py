"""Files of a model on disk: the model file and the external-data files its tensors name."""

from __future__ import annotations

from onnxprune.io import save_model
from onnxprune.io.external_data import model_file_bytes, model_files
from tests.io.tiny_models import mlp_model


def test_a_model_with_external_data_counts_its_data_file(tmp_path):
    path = save_model(mlp_model(), tmp_path / "ext.onnx", external_data=True)
    data = tmp_path / "ext.onnx.data"
    assert model_files(path) == [path, data]
    assert model_file_bytes(path) == path.stat().st_size + data.stat().st_size
    assert model_file_bytes(path) > 4 * (32 * 48 + 48 * 16)  # the weights are in the count


def test_an_inline_model_and_an_unreadable_file_stand_alone(tmp_path):
    path = save_model(mlp_model(), tmp_path / "inline.onnx")
    (tmp_path / "inline.onnx.data").write_bytes(b"not named by any tensor")
    assert model_files(path) == [path]
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x00garbage")
    assert model_file_bytes(broken) == len(b"\x00garbage")
