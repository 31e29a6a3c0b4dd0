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
    from onnxprune.passes.lower_attention import attention_lowered, holds_attention

    if not isinstance(model, onnx.ModelProto):
        header = onnx.load(os.fspath(model), load_external_data=False)
        if not non_tensor_sources(header) and not holds_attention(header):
            return model
        model = onnx.load(os.fspath(model))
    return tensor_output_model(attention_lowered(model)[0])


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
    each batch.

    An output whose batch is not its first axis — a sequence-first ``[T, B, C]``, as CTC
    recognizers and speech models write — is collected along its batch axis and returned with
    that axis first (a note names it). The batch axis is the one whose size follows the batch
    size in every batch run (:func:`_batch_axis`); the first axis wins while it qualifies."""
    own = runner is None
    runner = open_runner(model, provider) if own else runner
    try:
        fixed = static_batch(runner.input_specs)
        size = fixed or batch_size
        total = len(dataset)
        chunks: list[list[tuple[np.ndarray, int, int]]] = [[] for _ in runner.output_names]
        done = 0
        for feeds, _ in dataset.batches(size):
            count = len(next(iter(feeds.values())))
            if fixed and count < fixed:
                feeds = {k: _pad(v, fixed) for k, v in feeds.items()}
            outputs = runner.run(feeds)
            batch = len(next(iter(feeds.values())))
            for position, array in enumerate(outputs):
                chunks[position].append((np.asarray(array), batch, count))
            done += count
            if progress is not None:
                progress(done, total)
        batch_axes = [
            _batch_axis(name, [(part.shape, batch) for part, batch, _ in parts])
            for name, parts in zip(runner.output_names, chunks, strict=True)
        ]
        arrays = [
            np.concatenate([np.moveaxis(part, axis, 0)[:count] for part, _, count in parts])
            for parts, axis in zip(chunks, batch_axes, strict=True)
        ]
        notes = list(runner.notes)
        notes += [
            f"output '{name}' has its batch on axis {axis} (sequence-first): measured per "
            "sample with that axis first"
            for name, axis in zip(runner.output_names, batch_axes, strict=True)
            if axis
        ]
        if fixed and batch_size != fixed:
            notes.append(f"the model has a static batch of {fixed}: evaluated {fixed} at a time")
        return ModelOutputs(arrays, list(runner.output_names), runner.provider, notes)
    finally:
        if own:
            runner.close()


def _batch_axis(name: str, runs: list[tuple[tuple[int, ...], int]]) -> int:
    """The batch axis of an output from its shape in every run, ``(shape, batch size)``: an
    axis whose size was the batch size in every run, the first axis when it qualifies (the
    usual layout, and the only reading when every batch had the same size), else the only one;
    an InputError when none qualifies or several do without the first."""
    shape, batch = runs[0]
    candidates = set(range(len(shape)))
    for run_shape, run_batch in runs:
        if len(run_shape) != len(shape):
            raise InputError(_not_batch_first(name, run_shape, run_batch))
        candidates &= {axis for axis, size in enumerate(run_shape) if size == run_batch}
    if 0 in candidates:
        return 0
    if len(candidates) != 1:
        raise InputError(_not_batch_first(name, shape, batch))
    return candidates.pop()


def _not_batch_first(name: str, shape: tuple[int, ...], batch: int) -> str:
    """The one-line error of an output whose first axis is not the batch (of size ``batch``)."""
    head = (
        f"output '{name}' has shape {list(shape)}: its first axis is not the batch, so outputs "
        "cannot be collected per sample"
    )
    if sum(size == batch for size in shape) > 1:
        return (
            f"{head}: several axes have the batch size {batch}, so its batch axis cannot be "
            "told (re-export the model with every output batch-first, or evaluate with "
            "another --batch-size)"
        )
    return (
        f"{head} (an output squeezed or reshaped without its batch axis, or a variable count "
        "such as detections after NMS: re-export the model so that every output keeps the "
        "batch axis, e.g. without the final squeeze or NMS)"
    )


def _pad(array: np.ndarray, size: int) -> np.ndarray:
    repeat = np.repeat(array[-1:], size - len(array), axis=0)
    return np.concatenate([array, repeat], axis=0)
