"""create_session / ModelRunner on the CPU provider: outputs, specs, feed checks, fallbacks, cleanup."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from onnxprune.errors import InputError, ModelLoadError
from onnxprune.runtime import create_session, providers, session
from tests.runtime.tiny import conv_model, mixed_inputs_model, relu_model


def test_cpu_runner_runs_and_describes_the_model() -> None:
    with create_session(relu_model(), provider="cpu", threads=1) as runner:
        assert runner.provider == "CPUExecutionProvider"
        assert runner.notes == []
        assert runner.output_names == ["y"]
        assert runner.input_specs == [("x", np.dtype(np.float32), ["N", 3])]
        (y,) = runner.run({"x": np.array([[-1.0, 0.5, 2.0], [3.0, -4.0, 0.0]], np.float32)})
    np.testing.assert_array_equal(y, [[0.0, 0.5, 2.0], [3.0, 0.0, 0.0]])


def test_bind_then_run_bound_repeats_the_same_inputs() -> None:
    runner = create_session(mixed_inputs_model())
    runner.bind({"x": np.ones((2, 4), np.float32), "ids": np.array([3, 7], np.int64)})
    runner.run_bound()
    runner.run_bound()
    y, z = runner.fetch()
    np.testing.assert_array_equal(y, np.full((2, 4), 2.0, np.float32))
    np.testing.assert_array_equal(z, [4, 8])
    runner.close()


def test_path_input_and_missing_or_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "relu.onnx"
    onnx.save_model(relu_model(), str(path))
    with create_session(path) as runner:
        (y,) = runner.run({"x": np.array([[-2.0, 2.0, 0.0]], np.float32)})
    np.testing.assert_array_equal(y, [[0.0, 2.0, 0.0]])
    with pytest.raises(ModelLoadError, match="not found"):
        create_session(tmp_path / "missing.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    with pytest.raises(InputError, match=r"ONNX Runtime cannot run model .*broken\.onnx"):
        create_session(broken)


@pytest.mark.parametrize(
    ("feeds", "message"),
    [
        ({"x": np.ones((1, 4), np.float32)}, "missing input 'ids'"),
        (
            {"x": np.ones((1, 4), np.float32), "ids": np.ones(1, np.int64), "w": np.ones(1)},
            "unknown input 'w'",
        ),
        (
            {"x": np.ones((1, 4), np.float64), "ids": np.ones(1, np.int64)},
            "input 'x': dtype float64, the model expects float32",
        ),
        (
            {"x": np.ones((4,), np.float32), "ids": np.ones(1, np.int64)},
            r"input 'x': shape \[4\], the model expects rank 2",
        ),
        (
            {"x": np.ones((1, 5), np.float32), "ids": np.ones(1, np.int64)},
            "input 'x': dimension 1 is 5, the model expects 4",
        ),
    ],
)
def test_bad_feeds_raise_one_line_input_errors(feeds: dict, message: str) -> None:
    with create_session(mixed_inputs_model()) as runner, pytest.raises(InputError, match=message):
        runner.run(feeds)


def test_bad_options_raise() -> None:
    with pytest.raises(InputError, match="threads must be >= 1"):
        create_session(relu_model(), threads=0)
    with pytest.raises(InputError, match="optimization must be one of"):
        create_session(relu_model(), optimization="max")


def test_auto_without_gpu_notes_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(providers, "probe_provider", lambda key: None if key == "cpu" else "no GPU")
    with create_session(relu_model(), provider="auto") as runner:
        assert runner.provider == "CPUExecutionProvider"
        assert runner.notes == ["cuda unavailable: fell back to CPU (no GPU)"]
    with pytest.raises(InputError, match="provider cuda cannot be used"):
        create_session(relu_model(), provider="cuda")


def test_session_that_silently_drops_cuda_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the probe wrongly says CUDA works, the session's own provider list is checked too."""
    if providers.probe_provider("cuda") is None:
        pytest.skip("this machine really runs CUDA: the silent CPU fallback cannot happen")
    monkeypatch.setattr(providers, "probe_provider", lambda key: None)
    with pytest.raises(InputError, match="CUDAExecutionProvider was not used by the session"):
        create_session(relu_model(), provider="cuda")
    with create_session(relu_model(), provider="auto") as runner:
        assert runner.provider == "CPUExecutionProvider"
        assert runner.notes[0].startswith("cuda unavailable: fell back to CPU")


def test_owned_workdir_is_removed_and_given_workdir_kept(tmp_path: Path) -> None:
    runner = create_session(relu_model())
    owned = runner.workdir
    assert owned.is_dir()
    runner.close()
    assert not owned.exists()
    given = tmp_path / "work"
    with create_session(relu_model(), workdir=given):
        pass
    assert given.is_dir()


def test_big_model_goes_through_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the protobuf limit the model is written with external data and loaded by path."""
    monkeypatch.setattr(session, "PROTOBUF_LIMIT", 10)
    model = conv_model()
    with create_session(model) as runner:
        assert (runner.workdir / "model.onnx.data").is_file()
        x = np.random.default_rng(1).standard_normal((2, 3, 5, 5)).astype(np.float32)
        (big,) = runner.run({"x": x})
    monkeypatch.setattr(session, "PROTOBUF_LIMIT", 2**31)
    with create_session(model) as runner:
        (small,) = runner.run({"x": x})
    np.testing.assert_array_equal(big, small)
    assert big.shape == (2, 8, 1, 1)


def test_cuda_graph_on_cpu_is_noted() -> None:
    with create_session(relu_model(), cuda_graph=True) as runner:
        assert runner.notes == ["cuda_graph ignored on the CPU provider"]
        assert not runner.cuda_graph


def test_static_output_shapes_for_cuda_graph() -> None:
    shapes = session.static_output_shapes(conv_model(channels=6), {"x": [4, 3, 9, 9]})
    assert shapes["y"][0] == [4, 6, 1, 1]
    assert shapes["y"][1] == np.float32
    with pytest.raises(InputError, match="static shape for output 'y'"):
        session.static_output_shapes(conv_model(), {})


def test_profiling_writes_a_trace() -> None:
    with create_session(relu_model(), profile=True) as runner:
        runner.run({"x": np.ones((1, 3), np.float32)})
        trace = runner.end_profiling()
        events = json.loads(Path(trace).read_text())
        assert any(event.get("cat") == "Node" for event in events)
