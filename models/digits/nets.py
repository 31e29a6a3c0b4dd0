"""Network definitions for the digits classifiers (input N x 1 x 32 x 32, 10 classes).

``DigitsVGG``: Conv-BN-ReLU stacks and max-pools, Flatten (merges 128 x 4 x 4), then a
two-layer Linear head with a ReLU hidden layer. ``DigitsMobileNetV2``: stem conv, ten inverted
residual blocks (1x1 expand, 3x3 depthwise, 1x1 linear project, identity Add when shapes allow),
ReLU6, 1x1 head conv, global average pool, Linear.
"""

from __future__ import annotations

import torch
from torch import nn

IN_CHANNELS = 1
NUM_CLASSES = 10


def conv_bn(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    groups: int = 1,
    activation: type[nn.Module] | None = nn.ReLU,
) -> nn.Sequential:
    """Conv2d (no bias, "same" padding for odd kernels) -> BatchNorm2d -> optional activation."""
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            groups=groups,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels),
    ]
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


# Feature layout: an int is a 3x3 Conv-BN-ReLU with that many output channels, "M" a 2x2 max-pool.
VGG_LAYOUT: tuple[int | str, ...] = (32, 32, "M", 64, 64, "M", 128, "M")
VGG_HIDDEN = 64


class DigitsVGG(nn.Module):
    """32x32 -> [32, 32, pool, 64, 64, pool, 128, pool] -> Flatten(128*4*4) -> Linear(2048, 64)
    -> ReLU -> Dropout -> Linear(64, 10)."""

    def __init__(
        self,
        layout: tuple[int | str, ...] = VGG_LAYOUT,
        hidden: int = VGG_HIDDEN,
        input_size: int = 32,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels, size = IN_CHANNELS, input_size
        for item in layout:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                size //= 2
            else:
                layers.append(conv_bn(channels, int(item), 3))
                channels = int(item)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * size * size, hidden),
            nn.ReLU(),
            nn.Dropout(0.3),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) for inputs (N, 1, H, W)."""
        return self.classifier(self.features(x))


class InvertedResidual(nn.Module):
    """1x1 expand (ReLU6, skipped at expansion 1) -> 3x3 depthwise (ReLU6) -> 1x1 project (linear),
    plus ``x`` when stride is 1 and input and output channels agree."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(conv_bn(in_channels, hidden, 1, activation=nn.ReLU6))
        layers.append(conv_bn(hidden, hidden, 3, stride=stride, groups=hidden, activation=nn.ReLU6))
        layers.append(conv_bn(hidden, out_channels, 1, activation=None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """block(x) + x with a residual, else block(x)."""
        out = self.block(x)
        return out + x if self.residual else out


# (expansion, output channels, repeats, stride of the first repeat): 10 blocks.
MBV2_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (4, 24, 2, 2),
    (4, 32, 3, 2),
    (4, 64, 2, 1),
    (4, 80, 2, 1),
)
MBV2_STEM = 16
MBV2_HEAD = 192


class DigitsMobileNetV2(nn.Module):
    """Stem 3x3/2 (16, ReLU6) at 32x32 -> 10 inverted residuals (16x16 -> 8x8 -> 4x4) ->
    1x1 conv to 192 (ReLU6) -> global average pool -> Linear(192, 10)."""

    def __init__(
        self,
        stages: tuple[tuple[int, int, int, int], ...] = MBV2_STAGES,
        stem: int = MBV2_STEM,
        head: int = MBV2_HEAD,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn(IN_CHANNELS, stem, 3, stride=2, activation=nn.ReLU6)]
        channels = stem
        for expansion, out_channels, repeats, stride in stages:
            for index in range(repeats):
                block_stride = stride if index == 0 else 1
                layers.append(InvertedResidual(channels, out_channels, block_stride, expansion))
                channels = out_channels
        layers.append(conv_bn(channels, head, 1, activation=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(head, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) for inputs (N, 1, H, W)."""
        return self.classifier(self.pool(self.features(x)))


NETS: dict[str, type[nn.Module]] = {"vgg": DigitsVGG, "mbv2": DigitsMobileNetV2}
"""Model key (as in ``digits_<key>.onnx``) -> network class (default arguments = shipped model)."""
