"""EfficientNet-B0 (Tan & Le 2019): MBConv blocks with SiLU and squeeze-excite, no stochastic depth."""

from __future__ import annotations

import torch
from torch import nn

from ._common import conv_bn_act, make_divisible, scale_depth
from .mobilenet import SqueezeExcite


class MBConv(nn.Module):
    """1x1 expand (SiLU) -> kxk depthwise (SiLU) -> SE (SiLU, sigmoid gate, squeeze = in/4)
    -> 1x1 project (BN, no activation); identity residual when stride 1 and in == out."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int, expand_ratio: int
    ) -> None:
        super().__init__()
        expanded = make_divisible(in_channels * expand_ratio)
        layers: list[nn.Module] = []
        if expanded != in_channels:
            layers.append(conv_bn_act(in_channels, expanded, 1, activation=nn.SiLU, eps=1e-3))
        layers.append(
            conv_bn_act(
                expanded, expanded, kernel, stride, groups=expanded, activation=nn.SiLU, eps=1e-3
            )
        )
        layers.append(SqueezeExcite(expanded, max(1, in_channels // 4), nn.SiLU, nn.Sigmoid))
        layers.append(conv_bn_act(expanded, out_channels, 1, activation=None, eps=1e-3))
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + block(x) when shapes allow, else block(x)."""
        return x + self.block(x) if self.use_residual else self.block(x)


# (expand ratio, kernel, first stride, out channels, repeats)
_B0_STAGES = (
    (1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1),
)  # fmt: skip


class EfficientNet(nn.Module):
    """Stem 3x3/2 (SiLU) -> 7 MBConv stages -> 1x1 conv (4x last) -> pool -> dropout -> Linear."""

    def __init__(self, width: float, depth: float, num_classes: int) -> None:
        super().__init__()
        in_channels = make_divisible(32 * width)
        layers: list[nn.Module] = [
            conv_bn_act(3, in_channels, 3, stride=2, activation=nn.SiLU, eps=1e-3)
        ]
        for expand, kernel, stride, channels, repeats in _B0_STAGES:
            out_channels = make_divisible(channels * width)
            for index in range(scale_depth(repeats, depth)):
                block_stride = stride if index == 0 else 1
                layers.append(MBConv(in_channels, out_channels, kernel, block_stride, expand))
                in_channels = out_channels
        head_channels = 4 * in_channels
        layers.append(conv_bn_act(in_channels, head_channels, 1, activation=nn.SiLU, eps=1e-3))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(head_channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features -> global average pool -> flatten -> classifier logits."""
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def build_efficientnet_b0(
    *, width: float, num_classes: int, input_size: int, depth: float
) -> nn.Module:
    """EfficientNet-B0 (5,288,548 parameters at width 1, 1000 classes)."""
    del input_size
    return EfficientNet(width, depth, num_classes)
