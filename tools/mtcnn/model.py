"""MTCNN's R-Net and O-Net with the weights packaged in ``facenet-pytorch``, exported by torch.onnx.

Third-party models nobody trained here: the refinement (R-Net, 24×24 faces) and output (O-Net,
48×48 faces) stages of the MTCNN face detector, whose pretrained weights ship inside the
``facenet-pytorch`` 2.6.0 wheel (``facenet_pytorch/data/rnet.pt``, ``onet.pt``). They exercise
per-channel PReLU, max pools with ``ceil_mode``, a Permute(0, 3, 2, 1) before the flattened
dense layer, a softmax over two classes and several outputs (face probability, box
regression, five landmarks). The layers below are written from the layout of the state
dicts; the package itself is not imported (it imports torchvision, which this machine cannot),
only its data folder is located: ``pip install --no-deps facenet-pytorch==2.6.0``.

    python tools/mtcnn/model.py OUT_DIR     # rnet_ts.onnx, rnet_dynamo.onnx, onet_*.onnx
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import torch
from torch import nn

#: name -> (input side, output names)
NETWORKS = {"rnet": (24, ("prob", "box")), "onet": (48, ("prob", "box", "landmarks"))}


def weights_dir() -> Path:
    """``facenet_pytorch/data`` of the installed wheel, found without importing the package."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("install the weights: pip install --no-deps facenet-pytorch==2.6.0")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


class RNet(nn.Module):
    """24×24 face crop → (face probability [N, 2], box offsets [N, 4])."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.pool(self.prelu1(self.conv1(x)))
        x = self.pool(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
        return torch.softmax(self.dense5_1(x), dim=1), self.dense5_2(x)


class ONet(nn.Module):
    """48×48 face crop → (face probability [N, 2], box offsets [N, 4], landmarks [N, 10])."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2 = nn.Linear(256, 2), nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)
        self.pool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.pool2 = nn.MaxPool2d(2, 2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.pool3(self.prelu1(self.conv1(x)))
        x = self.pool3(self.prelu2(self.conv2(x)))
        x = self.pool2(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        return torch.softmax(self.dense6_1(x), dim=1), self.dense6_2(x), self.dense6_3(x)


def load(name: str) -> nn.Module:
    """The network ``name`` (``rnet`` or ``onet``) with the packaged weights (strict load)."""
    network = {"rnet": RNet, "onet": ONet}[name]()
    state = torch.load(weights_dir() / f"{name}.pt", map_location="cpu", weights_only=True)
    network.load_state_dict(state, strict=True)
    return network.eval()


def export(name: str, path: Path, exporter: str) -> Path:
    """Export ``name`` with a dynamic batch axis: ``torchscript`` (opset 17) or ``dynamo``
    (opset 18; the weights go to ``path.data`` beside it, as that exporter writes them)."""
    side, outputs = NETWORKS[name]
    sample = (torch.randn(1, 3, side, side),)
    if exporter == "dynamo":
        torch.onnx.export(
            load(name),
            sample,
            str(path),
            input_names=["input"],
            output_names=list(outputs),
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            dynamo=True,
            opset_version=18,
        )
    else:
        torch.onnx.export(
            load(name),
            sample,
            str(path),
            input_names=["input"],
            output_names=list(outputs),
            dynamic_axes={"input": {0: "batch"}},
            dynamo=False,
            opset_version=17,
        )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for <net>_<exporter>.onnx")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in NETWORKS:
        for exporter in ("torchscript", "dynamo"):
            tag = "ts" if exporter == "torchscript" else exporter
            print("wrote", export(name, args.out / f"{name}_{tag}.onnx", exporter))


if __name__ == "__main__":
    main()
