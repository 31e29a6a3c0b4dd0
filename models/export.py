"""Export a PyTorch module to a single self-contained ONNX file with either PyTorch exporter."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import onnx
import torch
from torch import nn

Exporter = Literal["torchscript", "dynamo"]
EXPORTERS: tuple[str, ...] = ("torchscript", "dynamo")
INPUT_NAME = "input"
DYNAMO_MIN_OPSET = 18


def output_names(model: nn.Module, example: torch.Tensor) -> list[str]:
    """``["output"]`` for a single-tensor model, ``["output0", ..., "outputN-1"]`` for a tuple."""
    with torch.no_grad():
        result = model(example)
    if isinstance(result, torch.Tensor):
        return ["output"]
    return [f"output{index}" for index in range(len(result))]


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    exporter: Exporter,
    input_shape: Sequence[int],
    opset: int = 17,
    dynamic_batch: bool = True,
    keep_batchnorm: bool = False,
) -> Path:
    """Export ``model`` (eval mode) to ``path`` as one ONNX file (weights embedded).

    ``input_shape`` is the full example shape including the batch axis, e.g. (1, 3, 64, 64);
    the example batch is raised to 2 when the batch axis is dynamic, so no exporter can
    specialize on a batch of 1. Input is named "input", outputs "output" (or output0..N-1).
    With ``dynamic_batch`` axis 0 of the input and every output is symbolic ("batch").
    The dynamo exporter writes opset max(opset, 18) (see ``dynamo_opset``).
    Both exporters fold eval-mode BatchNorm into the preceding Conv/Gemm by default;
    ``keep_batchnorm`` (TorchScript only) keeps BatchNormalization nodes (inference mode) so a
    BN-fusion pass has something to fuse.
    If the dynamo exporter rejects the dynamic batch, the model is exported with a static batch
    and a ``UserWarning`` says so.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"unknown exporter {exporter!r}; expected one of {', '.join(EXPORTERS)}")
    if keep_batchnorm and exporter != "torchscript":
        raise ValueError("keep_batchnorm is only supported by the torchscript exporter")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    shape = tuple(int(d) for d in input_shape)
    if dynamic_batch and shape[0] == 1:
        shape = (2, *shape[1:])
    example = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    names = output_names(model, example)
    if exporter == "torchscript":
        _export_torchscript(model, example, path, names, opset, dynamic_batch, keep_batchnorm)
    else:
        _export_dynamo(model, example, path, names, opset, dynamic_batch)
    _embed_external_data(path)
    return path


def _export_torchscript(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    names: list[str],
    opset: int,
    dynamic_batch: bool,
    keep_batchnorm: bool,
) -> None:
    """TorchScript-based exporter (dynamo=False); batch made dynamic through dynamic_axes;
    TrainingMode.PRESERVE on the eval-mode model keeps BatchNormalization nodes unfolded."""
    mode = torch.onnx.TrainingMode.PRESERVE if keep_batchnorm else torch.onnx.TrainingMode.EVAL
    axes = {name: {0: "batch"} for name in [INPUT_NAME, *names]} if dynamic_batch else None
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*constant folding.*", category=UserWarning)
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=names,
            opset_version=opset,
            dynamic_axes=axes,
            do_constant_folding=True,
            training=mode,
        )


def _export_dynamo(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    names: list[str],
    opset: int,
    dynamic_batch: bool,
) -> None:
    """torch.export-based exporter (dynamo=True); batch made dynamic through dynamic_shapes.

    Falls back to a static batch (with a warning) when the dynamic export fails.
    """
    if dynamic_batch:
        try:
            _dynamo_call(model, example, path, names, opset, ({0: torch.export.Dim("batch")},))
            return
        except Exception as error:  # the exporter raises many unrelated types
            warnings.warn(
                f"dynamo export with dynamic batch failed ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else ''}); exporting a static batch",
                stacklevel=3,
            )
    _dynamo_call(model, example, path, names, opset, None)


def dynamo_opset(requested: int) -> int:
    """Opset the dynamo exporter is asked for: max(requested, DYNAMO_MIN_OPSET).

    torch 2.13's dynamo exporter only implements opset >= 18. Asked for 17 it exports 18 and
    tries a down-conversion that fails on ReduceMean with an axes input (model left at 18) and
    writes an invalid model for Split with ``num_outputs`` (YOLO C2f chunk: "Unrecognized
    attribute: num_outputs for operator Split"). Real dynamo output is therefore opset 18.
    """
    return max(requested, DYNAMO_MIN_OPSET)


def _dynamo_call(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    names: list[str],
    opset: int,
    dynamic_shapes: tuple | None,
) -> None:
    """One torch.onnx.export(dynamo=True) call with weights embedded in the file."""
    with torch.no_grad(), warnings.catch_warnings(), _quiet_logger("torch.onnx"):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=True,
            external_data=False,
            input_names=[INPUT_NAME],
            output_names=names,
            opset_version=dynamo_opset(opset),
            dynamic_shapes=dynamic_shapes,
            report=False,
            verbose=False,
        )


def export_onnx_inputs(
    model: nn.Module,
    path: str | Path,
    *,
    exporter: Exporter,
    example: dict[str, torch.Tensor],
    dynamic_axes: dict[str, dict[int, str]],
    output_names: Sequence[str],
    opset: int = 17,
) -> Path:
    """Export ``model`` (eval mode) taking several named inputs (e.g. token ids and masks).

    ``example`` maps input name -> example tensor, in the order of ``model.forward``'s
    arguments; ``dynamic_axes`` maps input name -> {axis: dimension name} (outputs get the
    dimensions of the same name through the exporter). One self-contained ONNX file.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"unknown exporter {exporter!r}; expected one of {', '.join(EXPORTERS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    names = list(example)
    args = tuple(example.values())
    with torch.no_grad(), warnings.catch_warnings(), _quiet_logger("torch.onnx"):
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(
                model,
                args,
                str(path),
                dynamo=False,
                input_names=names,
                output_names=list(output_names),
                opset_version=opset,
                dynamic_axes={name: dict(axes) for name, axes in dynamic_axes.items()},
                do_constant_folding=True,
            )
        else:
            dims: dict[str, torch.export.Dim] = {}
            for axes in dynamic_axes.values():
                for label in axes.values():
                    dims.setdefault(label, torch.export.Dim(label, max=_max_dim(model, label)))
            shapes = {
                name: {axis: dims[label] for axis, label in dynamic_axes.get(name, {}).items()}
                for name in names
            }
            torch.onnx.export(
                model,
                args,
                str(path),
                dynamo=True,
                external_data=False,
                input_names=names,
                output_names=list(output_names),
                opset_version=dynamo_opset(opset),
                dynamic_shapes=shapes,
                report=False,
                verbose=False,
            )
    _embed_external_data(path)
    return path


def _max_dim(model: nn.Module, label: str) -> int | None:
    """Upper bound of a dynamic dimension for torch.export: a ``max_<label>`` attribute of the
    model when it has one (e.g. the position table size for the sequence axis)."""
    value = getattr(model, f"max_{label}", None)
    return int(value) if value is not None else None


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """Raise logger ``name`` to ERROR for the duration (the exporter logs chatty warnings)."""
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _embed_external_data(path: Path) -> None:
    """If the exporter left weights in side files next to ``path``, load them and re-save the
    model as a single file (only possible below the 2 GB protobuf limit)."""
    model = onnx.load(str(path), load_external_data=False)
    has_external = any(
        init.data_location == onnx.TensorProto.EXTERNAL for init in model.graph.initializer
    )
    if not has_external:
        return
    side_files = {
        entry.value
        for init in model.graph.initializer
        for entry in init.external_data
        if entry.key == "location"
    }
    model = onnx.load(str(path), load_external_data=True)
    onnx.save_model(model, str(path), save_as_external_data=False)
    for name in side_files:
        (path.parent / name).unlink(missing_ok=True)
