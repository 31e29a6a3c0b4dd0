"""The two demo networks: the zoo's YOLOv8-style detector with a YOLOv8-export head, and the
zoo's U-Net.

``ShapesDetector.forward`` returns what an exported YOLOv8 returns: one tensor
[N, 4 + C, A] holding, per anchor point, the box centre x, centre y, width, height in input
pixels and the C class probabilities (sigmoid). Box sides come from the distribution focal
head: per side, softmax over ``REG_MAX`` bins, expectation · stride, measured from the anchor
point (grid cell centre) to the left, top, right and bottom edges.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.zoo.unet import build_unet  # noqa: E402
from models.zoo.yolo import _REG_MAX as REG_MAX  # noqa: E402
from models.zoo.yolo import build_yolo  # noqa: E402

STRIDES = (8, 16, 32)


def anchor_points(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(points [A, 2] cell centres in pixels, strides [A]) for the three scales, scale by
    scale, row-major within a scale."""
    points, strides = [], []
    for stride in STRIDES:
        cells = size // stride
        ys, xs = torch.meshgrid(torch.arange(cells), torch.arange(cells), indexing="ij")
        grid = torch.stack((xs.reshape(-1), ys.reshape(-1)), 1).float()
        points.append((grid + 0.5) * stride)
        strides.append(torch.full((cells * cells,), float(stride)))
    return torch.cat(points), torch.cat(strides)


class ShapesDetector(nn.Module):
    """YOLOv8 (zoo) backbone, neck and raw heads + the YOLOv8 export decoding (module doc)."""

    def __init__(self, num_classes: int, size: int, width: float, depth: float) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.net = build_yolo(width=width, num_classes=num_classes, input_size=size, depth=depth)
        points, strides = anchor_points(size)
        self.register_buffer("points", points)
        self.register_buffer("strides", strides)
        self.register_buffer("bins", torch.arange(REG_MAX, dtype=torch.float32))

    def raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(distances [N, A, 4] left/top/right/bottom in pixels, class logits [N, A, C])."""
        maps = self.net(x)
        batch = x.shape[0]
        flat = torch.cat([m.reshape(batch, 4 * REG_MAX + self.num_classes, -1) for m in maps], 2)
        box, logits = flat.split((4 * REG_MAX, self.num_classes), 1)
        bins = box.reshape(batch, 4, REG_MAX, -1).softmax(2)
        distances = (bins * self.bins.reshape(1, 1, REG_MAX, 1)).sum(2)
        distances = distances.transpose(1, 2) * self.strides.reshape(1, -1, 1)
        return distances, logits.transpose(1, 2)

    @staticmethod
    def to_xyxy(points: torch.Tensor, distances: torch.Tensor) -> torch.Tensor:
        """Boxes [N, A, 4] x1 y1 x2 y2 from anchor points and edge distances."""
        return torch.cat((points - distances[..., :2], points + distances[..., 2:]), -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 4 + C, A]: cx, cy, w, h (pixels) and class probabilities."""
        distances, logits = self.raw(x)
        xyxy = self.to_xyxy(self.points, distances)
        centre = (xyxy[..., :2] + xyxy[..., 2:]) / 2
        extent = xyxy[..., 2:] - xyxy[..., :2]
        return torch.cat((centre, extent, logits.sigmoid()), -1).transpose(1, 2)


def build_segmenter(num_classes: int, width: float) -> nn.Module:
    """The zoo's U-Net: logits [N, num_classes, H, W]."""
    return build_unet(width=width, num_classes=num_classes, input_size=0, depth=1.0)
