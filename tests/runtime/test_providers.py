"""Provider resolution: auto fallback note, explicit provider errors, EP option lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from onnxprune.errors import InputError
from onnxprune.runtime import providers


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every GPU provider probes as unusable, whatever the machine."""
    monkeypatch.setattr(providers, "probe_provider", lambda key: None if key == "cpu" else "no GPU")


def test_cpu_is_always_usable() -> None:
    assert providers.probe_provider("cpu") is None
    assert providers.resolve_provider("cpu") == ("cpu", [])
    assert providers.resolve_provider("CPU") == ("cpu", [])


def test_auto_falls_back_to_cpu_with_one_line_note(no_gpu: None) -> None:
    key, notes = providers.resolve_provider("auto")
    assert key == "cpu"
    assert notes == ["cuda unavailable: fell back to CPU (no GPU)"]


def test_auto_picks_cuda_when_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(providers, "probe_provider", lambda key: None)
    assert providers.resolve_provider("auto") == ("cuda", [])


@pytest.mark.parametrize("name", ["cuda", "tensorrt"])
def test_explicit_gpu_provider_that_cannot_run_raises(no_gpu: None, name: str) -> None:
    with pytest.raises(InputError, match=f"provider {name} cannot be used: no GPU"):
        providers.resolve_provider(name)


def test_unknown_provider_raises() -> None:
    with pytest.raises(InputError, match="unknown provider 'gpu'"):
        providers.resolve_provider("gpu")


def test_real_probe_agrees_with_session_providers() -> None:
    """The probe's verdict on this machine matches what a real CUDA session reports."""
    import onnxruntime as ort

    from tests.runtime.tiny import relu_model

    reason = providers.probe_provider("cuda")
    usable = "CUDAExecutionProvider" in ort.get_available_providers()
    if usable:
        options = ort.SessionOptions()
        options.log_severity_level = 4
        with providers._silenced():
            session = ort.InferenceSession(
                relu_model().SerializeToString(),
                options,
                providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
            )
        usable = "CUDAExecutionProvider" in session.get_providers()
    assert (reason is None) == usable


def test_cuda_options() -> None:
    assert providers.cuda_options() == {"device_id": "0"}
    options = providers.cuda_options(cudnn_conv_algo_search="heuristic", cuda_graph=True)
    assert options == {
        "device_id": "0",
        "cudnn_conv_algo_search": "HEURISTIC",
        "enable_cuda_graph": "1",
    }
    with pytest.raises(InputError, match="cudnn_conv_algo_search must be one of"):
        providers.cuda_options(cudnn_conv_algo_search="fast")


def test_provider_lists(tmp_path: Path) -> None:
    assert providers.provider_list("cpu", workdir=tmp_path) == ["CPUExecutionProvider"]
    cuda = providers.provider_list(
        "cuda", workdir=tmp_path, cudnn_conv_algo_search="EXHAUSTIVE", cuda_graph=True
    )
    assert cuda == [
        (
            "CUDAExecutionProvider",
            {"device_id": "0", "cudnn_conv_algo_search": "EXHAUSTIVE", "enable_cuda_graph": "1"},
        ),
        "CPUExecutionProvider",
    ]
    trt = providers.provider_list("tensorrt", workdir=tmp_path, cuda_graph=True)
    assert [entry if isinstance(entry, str) else entry[0] for entry in trt] == [
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    trt_options = trt[0][1]
    cache = str(tmp_path / "trt_cache")
    assert trt_options["trt_engine_cache_enable"] == "1"
    assert trt_options["trt_engine_cache_path"] == cache
    assert trt_options["trt_timing_cache_enable"] == "1"
    assert trt_options["trt_timing_cache_path"] == cache
    assert trt_options["trt_cuda_graph_enable"] == "1"
    assert "enable_cuda_graph" not in trt[1][1]
    assert (tmp_path / "trt_cache").is_dir()


def test_trt_sparsity_option_is_passed_only_to_tensorrt(tmp_path: Path) -> None:
    trt = providers.provider_list("tensorrt", workdir=tmp_path, trt_sparsity=True)
    assert trt[0][1]["trt_sparsity_enable"] == "1"
    plain = providers.provider_list("tensorrt", workdir=tmp_path)
    assert "trt_sparsity_enable" not in plain[0][1]
    assert providers.provider_list("cpu", workdir=tmp_path, trt_sparsity=True) == [
        "CPUExecutionProvider"
    ]
