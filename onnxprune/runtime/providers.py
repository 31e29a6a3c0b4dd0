"""Execution providers: names, availability probes, resolution of ``--provider`` and EP options.

``--provider`` takes ``auto | cuda | tensorrt | cpu``:

- ``cpu``: always usable.
- ``cuda`` / ``tensorrt``: must be usable, else :class:`~onnxprune.errors.InputError` (exit 2).
- ``auto``: the first usable of ``AUTO_ORDER`` (CUDA, then CPU) with a one-line note when it
  falls back. TensorRT is never picked by ``auto``: its engine build takes minutes.

"Usable" is probed, not assumed: ``onnxruntime-gpu`` lists the CUDA and TensorRT providers in
``get_available_providers()`` even on a machine without a GPU or without the CUDA/TensorRT
libraries, and ONNX Runtime then silently runs on the CPU. The probe builds a one-node session
with the provider and checks that the provider is really in ``session.get_providers()``; the
C++ log lines ONNX Runtime prints on failure are swallowed (file descriptors 1 and 2 are
redirected during the probe). Results are cached per process.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from onnxprune.errors import InputError

#: ``--provider`` value -> ONNX Runtime provider name.
PROVIDERS: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
#: Providers tried, in order, by ``auto`` before falling back to the CPU.
AUTO_ORDER: tuple[str, ...] = ("cuda",)
CHOICES: tuple[str, ...] = ("auto", "cuda", "tensorrt", "cpu")
#: Accepted values of the CUDA provider's ``cudnn_conv_algo_search`` option.
CUDNN_ALGO_SEARCH: tuple[str, ...] = ("EXHAUSTIVE", "HEURISTIC", "DEFAULT")


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """Redirect the process' stdout/stderr file descriptors to /dev/null (C++ logs included)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
    except (OSError, ValueError):  # no real descriptors (e.g. embedded): do not silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def _probe_model_bytes() -> bytes:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    return model.SerializeToString()


def preload_gpu_libraries() -> None:
    """Let onnxruntime-gpu load the CUDA/cuDNN libraries of the nvidia pip packages (if any)."""
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    with _silenced(), contextlib.suppress(Exception):
        preload()


@functools.cache
def probe_provider(key: str) -> str | None:
    """None when provider ``key`` runs a one-node model, else a one-line reason why not."""
    import onnxruntime as ort

    name = PROVIDERS[key]
    if key == "cpu":
        return None
    if name not in ort.get_available_providers():
        return f"{name} is not in this onnxruntime build (install onnxruntime-gpu)"
    preload_gpu_libraries()
    options = ort.SessionOptions()
    options.log_severity_level = 4
    providers: list[Any] = [name, "CPUExecutionProvider"]
    if key == "tensorrt":
        import tempfile

        with tempfile.TemporaryDirectory(prefix="onnxprune-trt-probe-") as folder:
            providers[0] = (name, tensorrt_options(Path(folder)))
            return _probe(providers, name, options)
    return _probe(providers, name, options)


def _probe(providers: list[Any], name: str, options: Any) -> str | None:
    import onnxruntime as ort

    try:
        with _silenced():
            session = ort.InferenceSession(_probe_model_bytes(), options, providers=providers)
    except Exception as error:
        return f"{name} failed to start: {' '.join(str(error).split())[:160]}"
    if name not in session.get_providers():
        return f"{name} could not start (no GPU or missing CUDA/cuDNN/TensorRT libraries)"
    return None


def resolve_provider(requested: str) -> tuple[str, list[str]]:
    """``--provider`` value -> (key of the provider to use, notes).

    ``auto`` falls back to ``cpu`` with a one-line note; an explicit ``cuda``/``tensorrt`` that
    cannot be used raises InputError; an unknown value raises InputError.
    """
    requested = (requested or "auto").lower()
    if requested not in CHOICES:
        raise InputError(f"unknown provider {requested!r} (choose from {', '.join(CHOICES)})")
    if requested == "auto":
        reasons = []
        for key in AUTO_ORDER:
            reason = probe_provider(key)
            if reason is None:
                return key, []
            reasons.append(reason)
        return "cpu", [f"{key} unavailable: fell back to CPU ({reasons[-1]})"]
    reason = probe_provider(requested)
    if reason is not None:
        raise InputError(f"provider {requested} cannot be used: {reason}")
    return requested, []


def cuda_options(
    *, device_id: int = 0, cudnn_conv_algo_search: str | None = None, cuda_graph: bool = False
) -> dict[str, str]:
    """CUDA EP options: device, cuDNN convolution algorithm search, CUDA graph capture."""
    options = {"device_id": str(device_id)}
    if cudnn_conv_algo_search is not None:
        value = cudnn_conv_algo_search.upper()
        if value not in CUDNN_ALGO_SEARCH:
            raise InputError(
                f"cudnn_conv_algo_search must be one of {', '.join(CUDNN_ALGO_SEARCH)}, "
                f"got {cudnn_conv_algo_search!r}"
            )
        options["cudnn_conv_algo_search"] = value
    if cuda_graph:
        options["enable_cuda_graph"] = "1"
    return options


def tensorrt_options(
    cache_dir: Path, *, device_id: int = 0, cuda_graph: bool = False, sparsity: bool = False
) -> dict[str, str]:
    """TensorRT EP options: engine and timing caches in ``cache_dir`` (owned by the runner);
    ``sparsity`` sets ``trt_sparsity_enable`` so TensorRT may pick sparse tensor-core kernels
    for layers whose weights hold 2:4 (Ampere or newer; TensorRT decides per layer)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    options = {
        "device_id": str(device_id),
        "trt_engine_cache_enable": "1",
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": "1",
        "trt_timing_cache_path": str(cache_dir),
    }
    if cuda_graph:
        options["trt_cuda_graph_enable"] = "1"
    if sparsity:
        options["trt_sparsity_enable"] = "1"
    return options


def provider_list(
    key: str,
    *,
    workdir: Path,
    cudnn_conv_algo_search: str | None = None,
    cuda_graph: bool = False,
    trt_sparsity: bool = False,
) -> list[Any]:
    """The ``providers=`` list for InferenceSession, most preferred first, CPU last."""
    cpu = "CPUExecutionProvider"
    if key == "cpu":
        return [cpu]
    if key == "cuda":
        options = cuda_options(cudnn_conv_algo_search=cudnn_conv_algo_search, cuda_graph=cuda_graph)
        return [(PROVIDERS["cuda"], options), cpu]
    if key == "tensorrt":
        trt = tensorrt_options(workdir / "trt_cache", cuda_graph=cuda_graph, sparsity=trt_sparsity)
        cuda = cuda_options(cudnn_conv_algo_search=cudnn_conv_algo_search)
        return [(PROVIDERS["tensorrt"], trt), (PROVIDERS["cuda"], cuda), cpu]
    raise InputError(f"unknown provider {key!r}")
