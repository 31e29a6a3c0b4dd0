"""1-D convolutional classifier for sequences [B, C, L]: conv stack, global pool, MLP head."""

from __future__ import annotations

import torch
from torch import nn

from ._common import scale_channels


def conv1d_bn_relu(in_channels: int, out_channels: int, kernel: int, stride: int) -> nn.Sequential:
    """Conv1d (no bias, padding k//2) -> BatchNorm1d -> ReLU."""
    return nn.Sequential(
        nn.Conv1d(
            in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False
        ),
        nn.BatchNorm1d(out_channels),
        nn.ReLU(inplace=True),
    )


class Conv1dMLP(nn.Module):
    """Four Conv1d-BN-ReLU layers (64, 128, 128, 256; strides 1, 2, 1, 2) -> global average
    pool over L -> flatten -> Linear-ReLU-Dropout-Linear."""

    def __init__(self, in_channels: int, width: float, num_classes: int) -> None:
        super().__init__()
        layout = ((64, 7, 1), (128, 5, 2), (128, 3, 1), (256, 3, 2))
        layers: list[nn.Module] = []
        channels = in_channels
        for base, kernel, stride in layout:
            out_channels = scale_channels(base, width)
            layers.append(conv1d_bn_relu(channels, out_channels, kernel, stride))
            channels = out_channels
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool1d(1)
        hidden = scale_channels(128, width)
        self.head = nn.Sequential(
            nn.Linear(channels, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(0.1),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Sequence [B, C, L] -> logits [B, num_classes]."""
        return self.head(torch.flatten(self.pool(self.features(x)), 1))


def build_conv1d_mlp(*, width: float, num_classes: int, input_size: int, depth: float) -> nn.Module:
    """1-D conv classifier over 12-channel sequences (any length >= 4)."""
    del input_size, depth
    return Conv1dMLP(12, width, num_classes)
