"""ShuffleNetV2 x1.0 (Ma et al. 2018): channel split, two branches, concat, channel shuffle.

The channel shuffle (view → transpose → reshape) permutes the concatenated branches, so a
channel of one unit's output is read by the next unit at another position: the pattern every
exported ShuffleNet-family backbone (and PicoDet's ESNet) carries.
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import conv_bn_act, scale_channels, scale_depth

# x1.0: stage repeats and output channels (stem, three stages, last 1x1 conv)
_REPEATS = (4, 8, 4)
_CHANNELS = (24, 116, 232, 464, 1024)


def channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    """[N, g·c, H, W] → view [N, g, c, H, W] → swap the two channel axes → [N, c·g, H, W]."""
    batch, channels, height, width = x.shape
    x = x.view(batch, groups, channels // groups, height, width)
    return torch.transpose(x, 1, 2).contiguous().view(batch, channels, height, width)


class InvertedResidual(nn.Module):
    """Stride 1: split the input in halves, keep the first, transform the second
    (1x1-BN-ReLU, 3x3 depthwise-BN, 1x1-BN-ReLU), concat, shuffle. Stride 2: both branches
    see the whole input (left: 3x3 depthwise/2-BN, 1x1-BN-ReLU), concat, shuffle."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        branch = out_channels // 2
        self.left = (
            nn.Sequential(
                conv_bn_act(in_channels, in_channels, 3, stride, in_channels, activation=None),
                conv_bn_act(in_channels, branch, 1),
            )
            if stride > 1
            else None
        )
        source = in_channels if stride > 1 else branch
        self.right = nn.Sequential(
            conv_bn_act(source, branch, 1),
            conv_bn_act(branch, branch, 3, stride, branch, activation=None),
            conv_bn_act(branch, branch, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """shuffle(concat(left(x) or x₁, right(x or x₂)))."""
        if self.left is None:
            kept, transformed = x.chunk(2, dim=1)
            out = torch.cat((kept, self.right(transformed)), dim=1)
        else:
            out = torch.cat((self.left(x), self.right(x)), dim=1)
        return channel_shuffle(out)


class ShuffleNetV2(nn.Module):
    """3x3/2 stem-BN-ReLU, 3x3/2 max pool, three stages (first unit strided), 1x1 conv-BN-ReLU,
    global average pool, Linear."""

    def __init__(self, width: float, depth: float, num_classes: int) -> None:
        super().__init__()
        # branches are half a stage: keep stage widths even multiples of 8
        stem, *stages, last = (
            _CHANNELS[0] if width == 1 else scale_channels(_CHANNELS[0], width),
            *(c if width == 1 else scale_channels(c, width, 16) for c in _CHANNELS[1:4]),
            _CHANNELS[4] if width == 1 else scale_channels(_CHANNELS[4], width),
        )
        self.stem = nn.Sequential(conv_bn_act(3, stem, 3, 2), nn.MaxPool2d(3, 2, 1))
        units: list[nn.Module] = []
        in_channels = stem
        for channels, repeats in zip(stages, _REPEATS, strict=True):
            for index in range(scale_depth(repeats, depth)):
                units.append(InvertedResidual(in_channels, channels, 2 if index == 0 else 1))
                in_channels = channels
        self.stages = nn.Sequential(*units)
        self.last = conv_bn_act(in_channels, last, 1)
        self.fc = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Stem → stages → last conv → mean over H, W → fc logits."""
        return self.fc(self.last(self.stages(self.stem(x))).mean([2, 3]))


def build_shufflenetv2(
    *, width: float, num_classes: int, input_size: int, depth: float
) -> nn.Module:
    """ShuffleNetV2 x1.0: stage repeats (4, 8, 4), channels (24, 116, 232, 464, 1024)."""
    del input_size
    return ShuffleNetV2(width, depth, num_classes)
