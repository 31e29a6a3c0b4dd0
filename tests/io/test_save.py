"""save_model: external data, refusals, atomicity; the caller's model is never changed."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from onnxprune.errors import InputError
from onnxprune.io import load_model, save_model
from onnxprune.io import save as save_module
from tests.io.tiny_models import mlp_model, run

FEEDS = {"x": np.random.default_rng(0).standard_normal((3, 32)).astype(np.float32)}


def _listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_external_data_round_trip_forced_by_threshold(tmp_path):
    model = mlp_model()
    before = model.SerializeToString()
    path = save_model(model, tmp_path / "m.onnx", size_threshold=1000)
    assert _listing(tmp_path) == ["m.onnx", "m.onnx.data"]
    assert model.SerializeToString() == before  # inline data restored in the caller's model
    skeleton = onnx.load_model(path, load_external_data=False)
    locations = {
        entry.value
        for tensor in skeleton.graph.initializer
        for entry in tensor.external_data
        if entry.key == "location"
    }
    assert locations == {"m.onnx.data"}
    assert path.stat().st_size < 1000 < (tmp_path / "m.onnx.data").stat().st_size
    loaded = load_model(path)
    for original, reloaded in zip(model.graph.initializer, loaded.graph.initializer, strict=True):
        np.testing.assert_array_equal(
            numpy_helper.to_array(reloaded), numpy_helper.to_array(original)
        )
    np.testing.assert_array_equal(run(path, FEEDS)[0], run(model, FEEDS)[0])
    onnx.checker.check_model(str(path), full_check=True)


def test_external_data_on_request_and_inline_by_default(tmp_path):
    save_model(mlp_model(), tmp_path / "inline.onnx")
    save_model(mlp_model(), tmp_path / "ext.onnx", external_data=True)
    assert _listing(tmp_path) == ["ext.onnx", "ext.onnx.data", "inline.onnx"]
    inline = onnx.load_model(tmp_path / "inline.onnx", load_external_data=False)
    assert all(t.HasField("raw_data") for t in inline.graph.initializer)


def test_typed_field_tensors_are_externalized(tmp_path):
    model = mlp_model()
    tensor = model.graph.initializer[0]
    values = numpy_helper.to_array(tensor).copy()
    tensor.ClearField("raw_data")
    tensor.float_data.extend(values.ravel().tolist())
    path = save_model(model, tmp_path / "typed.onnx", external_data=True)
    np.testing.assert_array_equal(
        numpy_helper.to_array(load_model(path).graph.initializer[0]), values
    )
    assert len(model.graph.initializer[0].float_data) == values.size


def test_external_data_false_past_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(save_module, "estimate_model_bytes", lambda model: 3 * 2**30)
    with pytest.raises(InputError, match="2 GB"):
        save_model(mlp_model(), tmp_path / "big.onnx", external_data=False)
    assert _listing(tmp_path) == []


def test_refuses_the_input_even_with_force(tmp_path):
    path = save_model(mlp_model(), tmp_path / "in.onnx")
    content = path.read_bytes()
    with pytest.raises(InputError, match="input model"):
        save_model(mlp_model(), path, input_path=path, force=True)
    link = tmp_path / "link.onnx"
    link.symlink_to(path)
    with pytest.raises(InputError, match="input model"):
        save_model(mlp_model(), link, input_path=path, force=True)
    with pytest.raises(InputError, match="input model"):
        save_model(mlp_model(), tmp_path / "." / "in.onnx", input_path=str(link), force=True)
    assert path.read_bytes() == content


def test_refuses_the_inputs_external_data_file(tmp_path):
    source = save_model(mlp_model(), tmp_path / "a.onnx", external_data=True)
    skeleton = onnx.load_model(source, load_external_data=False)
    for tensor in skeleton.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "b.onnx.data"
    source.write_bytes(skeleton.SerializeToString())
    os.replace(tmp_path / "a.onnx.data", tmp_path / "b.onnx.data")
    with pytest.raises(InputError, match="input model or its data"):
        save_model(mlp_model(), tmp_path / "b.onnx", input_path=source, force=True)


def test_existing_file_needs_force(tmp_path):
    target = tmp_path / "out.onnx"
    target.write_bytes(b"old")
    with pytest.raises(InputError, match="--force"):
        save_model(mlp_model(), target)
    assert target.read_bytes() == b"old"
    save_model(mlp_model(), target, force=True)
    assert load_model(target).graph.node[0].name == "fc1"


def test_existing_data_file_needs_force(tmp_path):
    (tmp_path / "out.onnx.data").write_bytes(b"old")
    with pytest.raises(InputError, match=r"out\.onnx\.data"):
        save_model(mlp_model(), tmp_path / "out.onnx", external_data=True)
    save_model(mlp_model(), tmp_path / "out.onnx", external_data=True, force=True)
    assert len(load_model(tmp_path / "out.onnx").graph.initializer) == 2


def test_directory_and_unusable_folder(tmp_path):
    with pytest.raises(InputError, match="directory"):
        save_model(mlp_model(), tmp_path, force=True)
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot create folder"):
        save_model(mlp_model(), blocker / "sub" / "m.onnx")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders")
def test_unwritable_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(InputError, match="not writable"):
            save_model(mlp_model(), folder / "m.onnx")
    finally:
        folder.chmod(0o700)


def test_creates_missing_folders(tmp_path):
    path = save_model(mlp_model(), tmp_path / "a" / "b" / "m.onnx")
    assert path.is_file()


def test_failed_rename_leaves_no_temporaries_and_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.onnx"
    target.write_bytes(b"old")
    model = mlp_model()
    before = model.SerializeToString()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(save_module.os, "replace", broken_replace)
    with pytest.raises(InputError, match="No space left"):
        save_model(model, target, force=True, external_data=True)
    assert _listing(tmp_path) == ["out.onnx"]
    assert target.read_bytes() == b"old"
    assert model.SerializeToString() == before


def test_failure_while_writing_data_leaves_nothing(tmp_path, monkeypatch):
    model = mlp_model()
    before = model.SerializeToString()

    def broken_write(tensors, handle, location):
        handle.write(b"partial")
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(save_module, "write_tensors", broken_write)
    with pytest.raises(InputError, match="Input/output error"):
        save_model(model, tmp_path / "m.onnx", external_data=True)
    assert _listing(tmp_path) == []
    assert model.SerializeToString() == before


def test_model_with_unloaded_external_data_is_refused(tmp_path):
    path = save_model(mlp_model(), tmp_path / "m.onnx", external_data=True)
    skeleton = load_model(path, load_external_data=False)
    with pytest.raises(InputError, match="not loaded"):
        save_model(skeleton, tmp_path / "copy.onnx")


def test_file_permissions_follow_umask(tmp_path):
    path = save_model(mlp_model(), tmp_path / "m.onnx")
    assert path.stat().st_mode & 0o777 == 0o666 & ~save_module._UMASK
