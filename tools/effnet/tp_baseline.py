"""Torch-Pruning 1.6.1 baseline: L1-magnitude structured pruning of the PyTorch model, no fine-tuning.

``tp.pruner.MagnitudePruner`` (an alias of ``BasePruner`` in 1.6.1) with
``tp.importance.MagnitudeImportance(p=1)`` (group L1 norm, mean-reduced over the coupled layers),
one step, a uniform ``pruning_ratio`` per group, the classifier ``_fc`` ignored (its outputs are
the 1000 classes). The pruned model is exported to ONNX like the original and counted and
evaluated with the same code as the onnxprune models.
"""

from __future__ import annotations

import copy
import tempfile
import warnings
from pathlib import Path

import onnx

from effnet.model import RESOLUTION, export


def prune_torch(model, ratio: float):
    """A pruned deep copy of ``model`` at the uniform channel ``ratio``."""
    import torch
    import torch_pruning as tp

    pruned = copy.deepcopy(model).eval()
    if ratio <= 0:
        return pruned
    example = torch.randn(1, 3, RESOLUTION, RESOLUTION)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = tp.pruner.MagnitudePruner(
            pruned,
            example,
            importance=tp.importance.MagnitudeImportance(p=1),
            pruning_ratio=ratio,
            ignored_layers=[pruned._fc],
        )
        pruner.step()
    return pruned.eval()


def export_onnx(model, workdir: Path, tag: str) -> onnx.ModelProto:
    """Export ``model`` (TorchScript, opset 17, dynamic batch) and load it back."""
    path = export(model, Path(workdir) / f"{tag}.onnx")
    return onnx.load(str(path))


def pruned_onnx(model, ratio: float, workdir: str | Path | None = None) -> onnx.ModelProto:
    """Prune with Torch-Pruning at ``ratio`` and return the exported ONNX model."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        return export_onnx(prune_torch(model, ratio), Path(tmp), f"tp_{ratio:.5f}")
