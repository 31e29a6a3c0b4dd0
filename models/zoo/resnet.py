"""ResNet-18/50 (He et al. 2016, stride on the 3x3 conv, "v1.5") and ResNeXt-50 32x4d."""

from __future__ import annotations

import torch
from torch import nn

from ._common import scale_channels, scale_depth


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN projection) shortcut, then ReLU."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = _projection(in_channels, channels, stride)
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (grouped for ResNeXt, carries the stride) -> 1x1 expand, residual, ReLU."""

    def __init__(
        self, in_channels: int, mid_channels: int, out_channels: int, stride: int, groups: int
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, mid_channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_channels)
        self.conv2 = nn.Conv2d(
            mid_channels, mid_channels, 3, stride=stride, padding=1, groups=groups, bias=False
        )
        self.bn2 = nn.BatchNorm2d(mid_channels)
        self.conv3 = nn.Conv2d(mid_channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _projection(in_channels, out_channels, stride)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x))."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    """1x1 conv-BN shortcut when shape changes, else None (identity shortcut)."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class ResNet(nn.Module):
    """7x7/2 stem, 3x3/2 max-pool, four stages of blocks, global average pool, Linear."""

    def __init__(self, stem_channels: int, stages: list[nn.Sequential], num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, stem_channels, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(stages[-1][-1].out_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Stem -> layer1..4 -> global average pool -> flatten -> fc logits."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _basic_resnet(blocks: tuple[int, ...], width: float, depth: float, num_classes: int) -> ResNet:
    """ResNet with BasicBlocks: stage widths 64, 128, 256, 512 scaled by ``width``."""
    stem = scale_channels(64, width)
    in_channels = stem
    stages = []
    for index, count in enumerate(blocks):
        channels = scale_channels(64 * 2**index, width)
        layers = []
        for block in range(scale_depth(count, depth)):
            stride = 2 if index > 0 and block == 0 else 1
            layers.append(BasicBlock(in_channels, channels, stride))
            in_channels = channels
        stages.append(nn.Sequential(*layers))
    return ResNet(stem, stages, num_classes)


def _bottleneck_resnet(
    blocks: tuple[int, ...],
    width: float,
    depth: float,
    num_classes: int,
    groups: int,
    width_per_group: int,
) -> ResNet:
    """Bottleneck ResNet/ResNeXt: stage outputs 256..2048 scaled by ``width``.

    Inner (3x3) width of stage i is ``groups * width_per_group * 2**i``; for plain ResNet
    (groups=1, width_per_group=64) that is 64 * 2**i scaled by ``width``. For ResNeXt the group
    width stays ``width_per_group`` and the number of groups scales with ``width``.
    """
    stem = scale_channels(64, width)
    in_channels = stem
    stages = []
    for index, count in enumerate(blocks):
        out_channels = scale_channels(256 * 2**index, width)
        if groups == 1:
            mid_channels = scale_channels(width_per_group * 2**index, width)
        else:
            mid_channels = groups * width_per_group * 2**index
        layers = []
        for block in range(scale_depth(count, depth)):
            stride = 2 if index > 0 and block == 0 else 1
            layers.append(Bottleneck(in_channels, mid_channels, out_channels, stride, groups))
            in_channels = out_channels
        stages.append(nn.Sequential(*layers))
    return ResNet(stem, stages, num_classes)


def build_resnet18(*, width: float, num_classes: int, input_size: int, depth: float) -> nn.Module:
    """ResNet-18: BasicBlocks (2, 2, 2, 2); 11,689,512 parameters at width 1, 1000 classes."""
    del input_size
    return _basic_resnet((2, 2, 2, 2), width, depth, num_classes)


def build_resnet50(*, width: float, num_classes: int, input_size: int, depth: float) -> nn.Module:
    """ResNet-50: Bottlenecks (3, 4, 6, 3); 25,557,032 parameters at width 1, 1000 classes."""
    del input_size
    return _bottleneck_resnet((3, 4, 6, 3), width, depth, num_classes, 1, 64)


def build_resnext(*, width: float, num_classes: int, input_size: int, depth: float) -> nn.Module:
    """ResNeXt-50 32x4d: grouped 3x3 bottlenecks; 25,028,904 parameters at width 1, 1000 classes.

    Groups = max(1, round(32 * width)) with a fixed group width of 4 channels.
    """
    del input_size
    groups = max(1, round(32 * width))
    return _bottleneck_resnet((3, 4, 6, 3), width, depth, num_classes, groups, 4)
