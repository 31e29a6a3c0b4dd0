"""VGG-16 (configuration D) with and without BatchNorm, as in Simonyan & Zisserman (2014)."""

from __future__ import annotations

import torch
from torch import nn

from ._common import scale_channels

_VGG16_LAYOUT: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip


class VGG(nn.Module):
    """Plain 3x3-conv stack with max-pools, adaptive average pool, Flatten and a 3-layer MLP head.

    The pooled grid is ``pool_size`` x ``pool_size`` (7 at 224 input, as in the original), so
    the first classifier Linear sees ``channels * pool_size**2`` features after Flatten.
    """

    def __init__(
        self,
        layout: tuple[int | str, ...],
        *,
        batch_norm: bool,
        width: float,
        num_classes: int,
        pool_size: int,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for item in layout:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            out_channels = scale_channels(int(item), width)
            layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((pool_size, pool_size))
        hidden = scale_channels(4096, width)
        self.classifier = nn.Sequential(
            nn.Linear(in_channels * pool_size * pool_size, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features -> pool -> flatten -> classifier logits [B, num_classes]."""
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def _pool_size(input_size: int) -> int:
    """Classifier grid: 7 as in the original, smaller when the input gives a smaller feature map."""
    return max(1, min(7, input_size // 32))


def build_vgg16(*, width: float, num_classes: int, input_size: int, depth: float) -> nn.Module:
    """VGG-16 without BatchNorm (138,357,544 parameters at width 1, 1000 classes)."""
    del depth
    return VGG(
        _VGG16_LAYOUT,
        batch_norm=False,
        width=width,
        num_classes=num_classes,
        pool_size=_pool_size(input_size),
    )


def build_vgg16_bn(*, width: float, num_classes: int, input_size: int, depth: float) -> nn.Module:
    """VGG-16 with BatchNorm after every conv (138,365,992 parameters at width 1, 1000 classes)."""
    del depth
    return VGG(
        _VGG16_LAYOUT,
        batch_norm=True,
        width=width,
        num_classes=num_classes,
        pool_size=_pool_size(input_size),
    )
