"""DenseNet-121-style network (Huang et al. 2017): dense blocks with channel Concat, transitions."""

from __future__ import annotations

import torch
from torch import nn

from ._common import scale_channels, scale_depth


class DenseLayer(nn.Module):
    """Concat(all previous features) -> BN-ReLU-1x1 conv (bn_size*growth) -> BN-ReLU-3x3 conv
    (growth); returns only the ``growth`` new channels."""

    def __init__(self, in_channels: int, growth: int, bn_size: int) -> None:
        super().__init__()
        bottleneck = bn_size * growth
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, bottleneck, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bottleneck)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bottleneck, growth, 3, padding=1, bias=False)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """conv2(relu(norm2(conv1(relu(norm1(cat(features, dim=1)))))))."""
        x = torch.cat(features, dim=1)
        x = self.conv1(self.relu1(self.norm1(x)))
        return self.conv2(self.relu2(self.norm2(x)))


class DenseBlock(nn.Module):
    """``num_layers`` dense layers; output = Concat(input, every layer's new channels)."""

    def __init__(self, num_layers: int, in_channels: int, growth: int, bn_size: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DenseLayer(in_channels + index * growth, growth, bn_size) for index in range(num_layers)
        )
        self.out_channels = in_channels + num_layers * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Grow the feature list layer by layer and concatenate it along channels."""
        features = [x]
        for layer in self.layers:
            features.append(layer(features))
        return torch.cat(features, dim=1)


class Transition(nn.Module):
    """BN -> ReLU -> 1x1 conv (halves channels) -> 2x2 average pool (stride 2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """pool(conv(relu(norm(x))))."""
        return self.pool(self.conv(self.relu(self.norm(x))))


class DenseNet(nn.Module):
    """7x7/2 stem + BN-ReLU + 3x3/2 max-pool, dense blocks with transitions, final BN-ReLU,
    global average pool, Linear."""

    def __init__(
        self,
        block_layers: tuple[int, ...],
        growth: int,
        stem_channels: int,
        bn_size: int,
        num_classes: int,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(3, stem_channels, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(stem_channels),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        ]
        channels = stem_channels
        for index, num_layers in enumerate(block_layers):
            block = DenseBlock(num_layers, channels, growth, bn_size)
            layers.append(block)
            channels = block.out_channels
            if index != len(block_layers) - 1:
                layers.append(Transition(channels, channels // 2))
                channels //= 2
        layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features -> global average pool -> flatten -> classifier logits."""
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def build_densenet(*, width: float, num_classes: int, input_size: int, depth: float) -> nn.Module:
    """DenseNet-121 (6, 12, 24, 16 layers, growth 32; 7,978,856 parameters at width 1, depth 1,
    1000 classes). ``width`` scales growth and stem; ``depth`` scales the layers per block."""
    del input_size
    block_layers = tuple(scale_depth(n, depth) for n in (6, 12, 24, 16))
    growth = scale_channels(32, width)
    return DenseNet(block_layers, growth, scale_channels(64, width), 4, num_classes)
