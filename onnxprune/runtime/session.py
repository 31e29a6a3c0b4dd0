"""One ONNX Runtime session behind one small interface: :func:`create_session` -> :class:`ModelRunner`.

Contract:

- ``create_session(model, provider=...)`` resolves the provider (see :mod:`.providers`), builds
  the session and checks that the provider really is in use (else InputError, or a note for
  ``auto``). A ModelProto under 2 GB is passed as bytes; a larger one is written to the
  runner's folder with external data and passed as a path; a path is passed as is.
- CPU: ``threads`` sets ``intra_op_num_threads`` (None = ONNX Runtime's default).
- CUDA / TensorRT: inputs are copied once to device-resident OrtValues and bound with IO
  binding; outputs are bound on the device and copied to the host only by :meth:`fetch`.
  ``cuda_graph=True`` captures a CUDA graph: inputs are updated in place and outputs are
  pre-allocated from the statically inferred output shapes (fixed shapes only).
- TensorRT: engine and timing caches live in ``workdir/trt_cache``; a workdir the runner
  created itself is deleted by :meth:`ModelRunner.close` (or when the runner is collected).

Timing loops use :meth:`bind` once, then :meth:`run_bound` repeatedly (no host<->device copy
inside the loop); :meth:`run` is the convenience ``bind + run_bound + fetch``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnx

from onnxprune.errors import InputError, ModelLoadError
from onnxprune.io.provenance import run_failure, session_failure
from onnxprune.runtime.providers import PROVIDERS, provider_list, resolve_provider

#: Serialized ModelProtos larger than this are passed to ONNX Runtime as a file.
PROTOBUF_LIMIT = 2**31 - 2**20

#: ONNX Runtime type strings -> numpy dtypes.
ORT_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int8)": np.int8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8,
    "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
}


class InputSpec(NamedTuple):
    """A model input: name, numpy dtype, shape (int, or None/str for a dynamic dimension)."""

    name: str
    dtype: np.dtype
    shape: list[int | str | None]


def _dim(value: Any) -> int | str | None:
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str) and value:
        return value
    return None


def _spec(node: Any) -> InputSpec:
    dtype = ORT_DTYPES.get(node.type)
    if dtype is None:
        raise InputError(f"input {node.name!r} has unsupported type {node.type}")
    return InputSpec(node.name, np.dtype(dtype), [_dim(d) for d in (node.shape or [])])


def check_feeds(specs: list[InputSpec], feeds: dict[str, np.ndarray]) -> None:
    """InputError (one line) for a missing or unknown name, wrong dtype, rank or static dim."""
    names = {spec.name for spec in specs}
    unknown = sorted(set(feeds) - names)
    if unknown:
        raise InputError(f"unknown input {unknown[0]!r} (model inputs: {', '.join(sorted(names))})")
    for spec in specs:
        if spec.name not in feeds:
            raise InputError(f"missing input {spec.name!r}")
        array = feeds[spec.name]
        if array.dtype != spec.dtype:
            raise InputError(
                f"input {spec.name!r}: dtype {array.dtype}, the model expects {spec.dtype}"
            )
        if array.ndim != len(spec.shape):
            raise InputError(
                f"input {spec.name!r}: shape {list(array.shape)}, the model expects rank {len(spec.shape)}"
            )
        for axis, (got, want) in enumerate(zip(array.shape, spec.shape, strict=True)):
            if isinstance(want, int) and got != want:
                raise InputError(
                    f"input {spec.name!r}: dimension {axis} is {got}, the model expects {want}"
                )


class ModelRunner:
    """An ONNX Runtime session with its provider, input specs, notes and owned folder."""

    def __init__(
        self,
        session: Any,
        *,
        notes: list[str],
        workdir: Path,
        owns_workdir: bool,
        device: str = "cpu",
        cuda_graph: bool = False,
        graph: onnx.ModelProto | None = None,
    ) -> None:
        self.session = session
        self.provider: str = session.get_providers()[0]
        self.providers: list[str] = list(session.get_providers())
        self.input_specs: list[InputSpec] = [_spec(node) for node in session.get_inputs()]
        self.output_names: list[str] = [node.name for node in session.get_outputs()]
        self.notes = notes
        self.workdir = workdir
        self.device = device
        self.cuda_graph = cuda_graph
        self._graph = graph
        self._feeds: dict[str, np.ndarray] | None = None
        self._binding: Any = None
        self._device_inputs: dict[str, Any] = {}
        self._device_outputs: list[Any] = []
        self._outputs: list[np.ndarray] | None = None
        self.source: Any = None  # the model (proto or path) whose failures are blamed
        self._cleanup = (
            weakref.finalize(self, shutil.rmtree, str(workdir), True) if owns_workdir else None
        )

    @property
    def on_device(self) -> bool:
        """True when inputs and outputs are bound in GPU memory."""
        return self.device == "cuda"

    def bind(self, feeds: dict[str, np.ndarray]) -> None:
        """Check ``feeds`` and make them the inputs of the next :meth:`run_bound` calls."""
        check_feeds(self.input_specs, feeds)
        if not self.on_device:
            self._feeds = dict(feeds)
            return
        import onnxruntime as ort

        if self.cuda_graph and self._binding is not None:
            for name, array in feeds.items():
                current = self._device_inputs[name]
                if list(current.shape()) != list(array.shape):
                    raise InputError("cuda_graph needs fixed input shapes: create a new session")
                current.update_inplace(np.ascontiguousarray(array))
            return
        binding = self.session.io_binding()
        self._device_inputs = {}
        for name, array in feeds.items():
            value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), "cuda", 0)
            self._device_inputs[name] = value
            binding.bind_ortvalue_input(name, value)
        if self.cuda_graph:
            shapes = static_output_shapes(self._graph, {k: list(v.shape) for k, v in feeds.items()})
            self._device_outputs = []
            for name in self.output_names:
                shape, dtype = shapes[name]
                value = ort.OrtValue.ortvalue_from_shape_and_type(shape, dtype, "cuda", 0)
                self._device_outputs.append(value)
                binding.bind_ortvalue_output(name, value)
        else:
            for name in self.output_names:
                binding.bind_output(name, "cuda", 0)
        self._binding = binding

    def run_bound(self) -> None:
        """Run once on the bound inputs; outputs stay where the provider put them."""
        if self.on_device:
            if self._binding is None:
                raise RuntimeError("bind() must be called before run_bound()")
            try:
                self.session.run_with_iobinding(self._binding)
            except Exception as error:
                raise run_failure(self.source, error) from None
            self._binding.synchronize_outputs()
            return
        if self._feeds is None:
            raise RuntimeError("bind() must be called before run_bound()")
        try:
            self._outputs = self.session.run(self.output_names, self._feeds)
        except Exception as error:
            raise run_failure(self.source, error, self._feeds) from None

    def fetch(self) -> list[np.ndarray]:
        """Outputs of the last run as host arrays (copied from the device on CUDA)."""
        if self.on_device:
            return list(self._binding.copy_outputs_to_cpu())
        if self._outputs is None:
            raise RuntimeError("no run yet")
        return list(self._outputs)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run ``feeds`` (name -> host array) and return the outputs as host arrays."""
        self.bind(feeds)
        self.run_bound()
        return self.fetch()

    def end_profiling(self) -> str | None:
        """Stop ONNX Runtime's profiler and return the JSON trace path (profiling sessions only)."""
        path = self.session.end_profiling()
        return path or None

    def close(self) -> None:
        """Release the session and delete the runner's own folder (TensorRT caches, big models)."""
        self._binding = None
        self._device_inputs = {}
        self._device_outputs = []
        self.session = None
        if self._cleanup is not None:
            self._cleanup()

    def __enter__(self) -> ModelRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def static_output_shapes(
    model: onnx.ModelProto | None, input_shapes: dict[str, list[int]]
) -> dict[str, tuple[list[int], Any]]:
    """Output name -> (static shape, numpy dtype) by ONNX shape inference with fixed inputs."""
    if model is None:
        raise InputError("cuda_graph needs the model graph to infer output shapes")
    from onnx import helper, shape_inference

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for value in fixed.graph.input:
        if value.name in input_shapes:
            dims = value.type.tensor_type.shape.dim
            for dim, size in zip(dims, input_shapes[value.name], strict=False):
                dim.Clear()
                dim.dim_value = size
    inferred = shape_inference.infer_shapes(fixed, strict_mode=False)
    result = {}
    for value in inferred.graph.output:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in tensor.shape.dim]
        if not tensor.HasField("shape") or any(d <= 0 for d in dims):
            raise InputError(f"cuda_graph needs a static shape for output {value.name!r}")
        result[value.name] = (dims, helper.tensor_dtype_to_np_dtype(tensor.elem_type))
    return result


def _graph_only(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy without initializer payloads (dims kept: enough for shape inference)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for tensor in copy.graph.initializer:
        for field in ("raw_data", "float_data", "int32_data", "int64_data", "double_data"):
            tensor.ClearField(field)
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT
    return copy


def _model_argument(model: Any, workdir: Path) -> tuple[Any, str]:
    """(what InferenceSession gets, a label for messages)."""
    if isinstance(model, onnx.ModelProto):
        if model.ByteSize() < PROTOBUF_LIMIT:
            return model.SerializeToString(), "<in-memory model>"
        path = workdir / "model.onnx"
        copy = onnx.ModelProto()  # save_model(save_as_external_data) rewrites its argument
        copy.CopyFrom(model)
        onnx.save_model(
            copy,
            str(path),
            save_as_external_data=True,
            location="model.onnx.data",
            size_threshold=0,
        )
        return str(path), "<in-memory model>"
    if isinstance(model, (str, os.PathLike)):
        path = Path(os.fspath(model))
        if not path.is_file():
            raise ModelLoadError(f"model file '{path}' not found")
        return str(path), str(path)
    raise TypeError(f"create_session expects a path or an onnx.ModelProto, got {type(model)!r}")


def create_session(
    model: onnx.ModelProto | str | os.PathLike,
    provider: str = "cpu",
    threads: int | None = None,
    cudnn_conv_algo_search: str | None = None,
    cuda_graph: bool = False,
    workdir: str | os.PathLike | None = None,
    *,
    profile: bool = False,
    optimization: str = "all",
    trt_sparsity: bool = False,
) -> ModelRunner:
    """Build a :class:`ModelRunner` for ``model`` on ``provider`` (auto | cuda | tensorrt | cpu).

    ``profile`` turns on ONNX Runtime's profiler (trace written to the workdir, see
    :meth:`ModelRunner.end_profiling`); ``optimization`` is ``all`` | ``extended`` | ``basic`` |
    ``none`` (ONNX Runtime graph optimization level). ``trt_sparsity`` passes TensorRT's
    ``trt_sparsity_enable`` (sparse 2:4 weights; ignored with a note on other providers).
    """
    import onnxruntime as ort

    if threads is not None and threads < 1:
        raise InputError(f"threads must be >= 1, got {threads}")
    levels = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }
    if optimization not in levels:
        raise InputError(f"optimization must be one of {', '.join(levels)}, got {optimization!r}")
    key, notes = resolve_provider(provider)
    owns = workdir is None
    folder = Path(tempfile.mkdtemp(prefix="onnxprune-ort-")) if owns else Path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        argument, _ = _model_argument(model, folder)
        options = ort.SessionOptions()
        options.log_severity_level = 4  # errors come back as exceptions
        options.graph_optimization_level = levels[optimization]
        if threads is not None:
            options.intra_op_num_threads = threads
        if profile:
            options.enable_profiling = True
            options.profile_file_prefix = str(folder / "ort_profile")
        providers = provider_list(
            key,
            workdir=folder,
            cudnn_conv_algo_search=cudnn_conv_algo_search,
            cuda_graph=cuda_graph and key != "cpu",
            trt_sparsity=trt_sparsity and key == "tensorrt",
        )
        if trt_sparsity and key != "tensorrt":
            notes.append(f"trt_sparsity ignored on the {key} provider")
        try:
            session = ort.InferenceSession(argument, options, providers=providers)
        except Exception as error:
            raise session_failure(model, error) from None
        if PROVIDERS[key] not in session.get_providers():
            reason = f"{PROVIDERS[key]} was not used by the session"
            if provider != "auto":
                raise InputError(f"provider {key} cannot be used: {reason}")
            notes.append(f"{key} unavailable: fell back to CPU ({reason})")
            key = "cpu"
        graph = None
        if cuda_graph and key != "cpu":
            graph = _graph_only(model if isinstance(model, onnx.ModelProto) else _load_graph(model))
        elif cuda_graph:
            notes.append("cuda_graph ignored on the CPU provider")
        runner = ModelRunner(
            session,
            notes=notes,
            workdir=folder,
            owns_workdir=owns,
            device="cpu" if key == "cpu" else "cuda",
            cuda_graph=cuda_graph and key != "cpu",
            graph=graph,
        )
        runner.source = model
        return runner
    except BaseException:
        if owns:
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _load_graph(path: Any) -> onnx.ModelProto:
    return onnx.load(os.fspath(path), load_external_data=False)
