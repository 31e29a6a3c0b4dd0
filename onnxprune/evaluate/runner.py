"""Run a model over a Dataset in batches and collect its outputs (first axis = samples).

Sessions come from :func:`onnxprune.runtime.create_session`. A model whose batch dimension is
static (exported with batch 1, say) is fed batches of exactly that size: the last batch is
padded by repeating its last sample and the padding is cut from the outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from onnxprune.errors import InputError
from onnxprune.evaluate.data import Dataset


@dataclass
class ModelOutputs:
    """Outputs of one model over a dataset: arrays in output order, with names and provider."""

    arrays: list[np.ndarray]
    names: list[str]
    provider: str
    notes: list[str] = field(default_factory=list)

    def by_name(self) -> dict[str, np.ndarray]:
        return dict(zip(self.names, self.arrays, strict=True))


def static_batch(input_specs) -> int | None:
    """The fixed batch size of the model's inputs (first dimension), None when dynamic."""
    sizes = {spec[2][0] for spec in input_specs if spec[2] and isinstance(spec[2][0], int)}
    if len(sizes) > 1:
        raise InputError(f"model inputs have different static batch sizes {sorted(sizes)}")
    return sizes.pop() if sizes else None


def open_runner(model, provider: str = "cpu"):
    """A :class:`~onnxprune.runtime.ModelRunner` for a path or ModelProto, measuring: outputs
    that are non-tensor views (ZipMap's maps) come as the tensors they view
    (:func:`onnxprune.graph.tensor_outputs.tensor_output_model`)."""
    from onnxprune.runtime import create_session

    return create_session(_measured(model), provider=provider)


def _measured(model):
    """``model`` (a path stays a path) or its copy with tensor outputs where it has ZipMaps,
    and with ONNX ``Attention`` nodes in the form onnxprune writes
    (:func:`onnxprune.passes.lower_attention.attention_lowered`: ONNX Runtime's kernel refuses
    PyTorch's padding masks)."""
    import os

    import onnx

    from onnxprune.graph.tensor_outputs import non_tensor_sources, tensor_output_model
    from onnxprune.passes.lower_attention import attention_lowered

    if not isinstance(model, onnx.ModelProto):
        header = onnx.load(os.fspath(model), load_external_data=False)
        if not non_tensor_sources(header) and not _has_attention(header):
            return model
        model = onnx.load(os.fspath(model))
    return tensor_output_model(attention_lowered(model)[0])


def _has_attention(model) -> bool:
    return any(node.op_type == "Attention" and node.domain in ("", "ai.onnx")
               for node in model.graph.node)  # fmt: skip


def run_dataset(
    model,
    dataset: Dataset,
    *,
    provider: str = "cpu",
    batch_size: int = 64,
    runner=None,
    progress: Callable[[int, int], None] | None = None,
) -> ModelOutputs:
    """Outputs of ``model`` (path, ModelProto, or an open ``runner``) over every sample of
    ``dataset``, concatenated along the first axis. ``progress(done, total)`` is called after
    each batch."""
    own = runner is None
    runner = open_runner(model, provider) if own else runner
    try:
        fixed = static_batch(runner.input_specs)
        size = fixed or batch_size
        total = len(dataset)
        chunks: list[list[np.ndarray]] = [[] for _ in runner.output_names]
        done = 0
        for feeds, _ in dataset.batches(size):
            count = len(next(iter(feeds.values())))
            if fixed and count < fixed:
                feeds = {k: _pad(v, fixed) for k, v in feeds.items()}
            outputs = runner.run(feeds)
            for position, (name, array) in enumerate(
                zip(runner.output_names, outputs, strict=True)
            ):
                array = np.asarray(array)
                batch = len(next(iter(feeds.values())))
                if array.ndim == 0 or array.shape[0] != batch:
                    raise InputError(_not_batch_first(name, array.shape, batch))
                chunks[position].append(array[:count])
            done += count
            if progress is not None:
                progress(done, total)
        arrays = [np.concatenate(parts, axis=0) for parts in chunks]
        notes = list(runner.notes)
        if fixed and batch_size != fixed:
            notes.append(f"the model has a static batch of {fixed}: evaluated {fixed} at a time")
        return ModelOutputs(arrays, list(runner.output_names), runner.provider, notes)
    finally:
        if own:
            runner.close()


def _not_batch_first(name: str, shape: tuple[int, ...], batch: int) -> str:
    """The one-line error of an output whose first axis is not the batch (of size ``batch``)."""
    head = (
        f"output '{name}' has shape {list(shape)}: its first axis is not the batch, so outputs "
        "cannot be collected per sample"
    )
    if len(shape) >= 2 and shape[1] == batch:
        return (
            f"{head}; its batch looks like axis 1 (a sequence-first output [T, B, C], as CTC "
            "recognizers write): re-export the model with that output batch-first (in PyTorch "
            "return out.permute(1, 0, 2))"
        )
    return (
        f"{head} (an output squeezed or reshaped without its batch axis, or a variable count "
        "such as detections after NMS: re-export the model so that every output keeps the "
        "batch axis, e.g. without the final squeeze or NMS)"
    )


def _pad(array: np.ndarray, size: int) -> np.ndarray:
    repeat = np.repeat(array[-1:], size - len(array), axis=0)
    return np.concatenate([array, repeat], axis=0)
