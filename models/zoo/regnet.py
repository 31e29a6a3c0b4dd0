"""RegNetX-400MF-style network (Radosavovic et al. 2020): X blocks with a fixed group width."""

from __future__ import annotations

import torch
from torch import nn

from ._common import conv_bn_act, scale_channels, scale_depth


class XBlock(nn.Module):
    """1x1 conv-BN-ReLU -> 3x3 grouped conv (stride) -BN-ReLU -> 1x1 conv-BN, plus identity or
    1x1 conv-BN projection shortcut, then ReLU (bottleneck ratio 1)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, group_width: int) -> None:
        super().__init__()
        self.a = conv_bn_act(in_channels, out_channels, 1)
        self.b = conv_bn_act(
            out_channels, out_channels, 3, stride, groups=out_channels // group_width
        )
        self.c = conv_bn_act(out_channels, out_channels, 1, activation=None)
        self.shortcut = (
            None
            if stride == 1 and in_channels == out_channels
            else conv_bn_act(in_channels, out_channels, 1, stride, activation=None)
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(c(b(a(x))) + shortcut(x))."""
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.relu(self.c(self.b(self.a(x))) + identity)


# RegNetX-400MF: depths, widths, group width 16, stem 32
_DEPTHS = (1, 2, 7, 12)
_WIDTHS = (32, 64, 160, 384)
_GROUP_WIDTH = 16


def stage_width(base: int, width: float) -> tuple[int, int]:
    """(channels, group width) of a stage: channels scaled to a multiple of 8, group width
    min(16, channels), channels then rounded up to a multiple of the group width."""
    channels = scale_channels(base, width)
    group_width = min(_GROUP_WIDTH, channels)
    channels = -(-channels // group_width) * group_width
    return channels, group_width


class RegNetX(nn.Module):
    """3x3/2 stem (32) -> four stages of X blocks (first block strided) -> pool -> Linear."""

    def __init__(self, width: float, depth: float, num_classes: int) -> None:
        super().__init__()
        stem = scale_channels(32, width)
        layers: list[nn.Module] = [conv_bn_act(3, stem, 3, stride=2)]
        in_channels = stem
        for base, count in zip(_WIDTHS, _DEPTHS, strict=True):
            channels, group_width = stage_width(base, width)
            for index in range(scale_depth(count, depth)):
                layers.append(XBlock(in_channels, channels, 2 if index == 0 else 1, group_width))
                in_channels = channels
        self.trunk = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Trunk -> global average pool -> flatten -> fc logits."""
        return self.fc(torch.flatten(self.avgpool(self.trunk(x)), 1))


def build_regnet(*, width: float, num_classes: int, input_size: int, depth: float) -> nn.Module:
    """RegNetX-400MF-style: depths (1, 2, 7, 12), widths (32, 64, 160, 384), group width 16."""
    del input_size
    return RegNetX(width, depth, num_classes)
