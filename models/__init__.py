"""Reference model zoo: faithful PyTorch definitions of common architectures, exported to ONNX.

Used by tests, tools and benchmarks with the repository root as the working directory
(``import models``). Nothing here downloads weights: every model gets a seeded random init with
non-trivial BatchNorm/LayerNorm statistics so that BN folding and pruning are really exercised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import zoo
from .export import EXPORTERS, export_onnx, export_onnx_inputs
from .zoo._common import seeded_build

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelSpec:
    """One zoo entry.

    ``input_shape`` is the default per-sample shape, (C, H, W) for images or (C, L) for
    sequences; ``size`` replaces H and W (or L). ``size_multiple``: sizes must be divisible by it.
    """

    name: str
    builder: Builder
    input_shape: tuple[int, ...]
    task: str
    num_classes: int
    size_multiple: int = 1
    min_size: int = 1

    @property
    def is_text(self) -> bool:
        """Token-id models (inputs ``input_ids``, ``attention_mask``, ``token_type_ids``)."""
        return self.task == "text-embedding"

    def shape_for(self, size: int | None) -> tuple[int, ...]:
        """Per-sample input shape at spatial (or sequence) size ``size`` (default if None)."""
        if size is None:
            return self.input_shape
        if self.is_text:
            return (int(size),)
        return (self.input_shape[0],) + (int(size),) * (len(self.input_shape) - 1)


_IMAGE = (3, 224, 224)
MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("vgg16", zoo.build_vgg16, _IMAGE, "classification", 1000, 32, 32),
        ModelSpec("vgg16_bn", zoo.build_vgg16_bn, _IMAGE, "classification", 1000, 32, 32),
        ModelSpec("resnet18", zoo.build_resnet18, _IMAGE, "classification", 1000, 1, 32),
        ModelSpec("resnet50", zoo.build_resnet50, _IMAGE, "classification", 1000, 1, 32),
        ModelSpec("mobilenetv2", zoo.build_mobilenetv2, _IMAGE, "classification", 1000, 1, 32),
        ModelSpec(
            "mobilenetv3_small",
            zoo.build_mobilenetv3_small,
            _IMAGE,
            "classification",
            1000,
            1,
            32,
        ),
        ModelSpec(
            "efficientnet_b0", zoo.build_efficientnet_b0, _IMAGE, "classification", 1000, 1, 32
        ),
        ModelSpec("densenet", zoo.build_densenet, _IMAGE, "classification", 1000, 1, 32),
        ModelSpec("resnext", zoo.build_resnext, _IMAGE, "classification", 1000, 1, 32),
        ModelSpec("regnet", zoo.build_regnet, _IMAGE, "classification", 1000, 1, 32),
        ModelSpec("shufflenetv2", zoo.build_shufflenetv2, _IMAGE, "classification", 1000, 32, 32),
        ModelSpec("convnext", zoo.build_convnext, _IMAGE, "classification", 1000, 32, 32),
        ModelSpec("vit_tiny", zoo.build_vit_tiny, _IMAGE, "classification", 1000, 16, 32),
        ModelSpec("vit_tiny_mha", zoo.build_vit_tiny_mha, _IMAGE, "classification", 1000, 16, 32),
        ModelSpec(
            "vit_tiny_einsum", zoo.build_vit_tiny_einsum, _IMAGE, "classification", 1000, 16, 32
        ),
        ModelSpec("unet", zoo.build_unet, (3, 256, 256), "segmentation", 3, 16, 16),
        ModelSpec("yolo", zoo.build_yolo, (3, 640, 640), "detection", 80, 32, 64),
        ModelSpec(
            "conv1d_mlp", zoo.build_conv1d_mlp, (12, 256), "sequence-classification", 10, 1, 4
        ),
        ModelSpec("bert", zoo.build_bert, (128,), "text-embedding", 0, 1, 2),
        ModelSpec("bert_sdpa", zoo.build_bert_sdpa, (128,), "text-embedding", 0, 1, 2),
    )
}

# Small settings that export fast and still contain every block type of the model
# (all stages, residual/projection shortcuts, SE, Concat, Resize, heads). ``depth`` scales the
# number of repeated blocks per stage (min 1 per stage).
SMALL_CONFIG: dict[str, dict[str, float | int]] = {
    "vgg16": dict(width=0.125, size=32),
    "vgg16_bn": dict(width=0.125, size=32),
    "resnet18": dict(width=0.25, size=32),
    "resnet50": dict(width=0.25, size=32, depth=0.5),
    "mobilenetv2": dict(width=0.25, size=32, depth=0.5),
    "mobilenetv3_small": dict(width=0.25, size=32),
    "efficientnet_b0": dict(width=0.25, size=32, depth=0.5),
    "densenet": dict(width=0.25, size=32, depth=0.125),
    "resnext": dict(width=0.25, size=32, depth=0.5),
    "regnet": dict(width=0.25, size=32, depth=0.25),
    "shufflenetv2": dict(width=0.25, size=32, depth=0.25),
    "convnext": dict(width=0.25, size=32, depth=0.34),
    "vit_tiny": dict(width=0.25, size=32, depth=0.17),
    "vit_tiny_mha": dict(width=0.25, size=32, depth=0.17),
    "vit_tiny_einsum": dict(width=0.25, size=32, depth=0.17),
    "unet": dict(width=0.125, size=32),
    "yolo": dict(width=0.125, size=64, depth=0.17),
    "conv1d_mlp": dict(width=0.25, size=64),
    "bert": dict(width=0.25, size=16, depth=0.34),
    "bert_sdpa": dict(width=0.25, size=16, depth=0.34),
}


def get_spec(name: str) -> ModelSpec:
    """The registry entry for ``name``; ValueError listing the known names otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None


def _check_size(spec: ModelSpec, size: int) -> None:
    """ValueError unless ``size`` >= spec.min_size and divisible by spec.size_multiple."""
    if size < spec.min_size or size % spec.size_multiple:
        raise ValueError(
            f"{spec.name}: size {size} must be >= {spec.min_size} "
            f"and a multiple of {spec.size_multiple}"
        )


def build_model(
    name: str,
    width: float = 1.0,
    num_classes: int | None = None,
    seed: int = 0,
    *,
    size: int | None = None,
    depth: float = 1.0,
) -> nn.Module:
    """Build zoo model ``name`` in eval mode, deterministic given ``seed``.

    ``width`` scales channels (rounded to multiples of 8, min 8), ``depth`` scales repeated
    blocks per stage, ``size`` is the input resolution the model is built for (only the ViT
    position embedding and the VGG classifier grid depend on it), ``num_classes`` defaults to
    the spec's.
    """
    spec = get_spec(name)
    if width <= 0 or depth <= 0:
        raise ValueError(f"width and depth must be positive, got {width} and {depth}")
    input_size = spec.input_shape[-1] if size is None else int(size)
    _check_size(spec, input_size)
    return seeded_build(
        spec.builder,
        seed,
        width=float(width),
        num_classes=int(num_classes if num_classes is not None else spec.num_classes),
        input_size=input_size,
        depth=float(depth),
    )


def build_onnx(
    name: str,
    path: str | Path,
    exporter: str = "torchscript",
    width: float = 1.0,
    size: int | None = None,
    num_classes: int | None = None,
    opset: int = 17,
    *,
    depth: float = 1.0,
    seed: int = 0,
    dynamic_batch: bool = True,
    keep_batchnorm: bool = False,
) -> Path:
    """Build zoo model ``name`` (see build_model) and export it to ``path`` (see export_onnx)."""
    spec = get_spec(name)
    model = build_model(name, width, num_classes, seed, size=size, depth=depth)
    if spec.is_text:
        return export_onnx_inputs(
            model,
            path,
            exporter=exporter,  # type: ignore[arg-type]
            example=text_inputs(name, batch=2, size=size, seed=0),
            dynamic_axes={n: {0: "batch", 1: "sequence"} for n in zoo.bert.INPUT_NAMES}
            if dynamic_batch
            else {},
            output_names=zoo.bert.OUTPUT_NAMES,
            opset=opset,
        )
    return export_onnx(
        model,
        path,
        exporter=exporter,  # type: ignore[arg-type]
        input_shape=(1, *spec.shape_for(size)),
        opset=opset,
        dynamic_batch=dynamic_batch,
        keep_batchnorm=keep_batchnorm,
    )


def sample_input(name: str, batch: int = 2, size: int | None = None, seed: int = 0) -> torch.Tensor:
    """A seeded standard-normal float32 input of shape (batch, *spec.shape_for(size))."""
    shape = (batch, *get_spec(name).shape_for(size))
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def text_inputs(
    name: str, batch: int = 2, size: int | None = None, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Seeded inputs of a text model: ids in [0, 64) (valid at any width), a 0/1 attention mask whose first
    token is always 1 (trailing padding per row), token types in {0, 1} (two segments)."""
    spec = get_spec(name)
    if not spec.is_text:
        raise ValueError(f"{name} is not a text model")
    length = spec.shape_for(size)[0]
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, zoo.bert.MIN_VOCAB, (batch, length), generator=generator)
    lengths = torch.randint(max(1, length // 2), length + 1, (batch, 1), generator=generator)
    positions = torch.arange(length)[None, :]
    mask = (positions < lengths).long()
    split = torch.randint(1, length + 1, (batch, 1), generator=generator)
    types = (positions >= split).long() * mask
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


__all__ = [
    "EXPORTERS",
    "MODELS",
    "SMALL_CONFIG",
    "ModelSpec",
    "build_model",
    "build_onnx",
    "export_onnx",
    "get_spec",
    "sample_input",
    "text_inputs",
]
