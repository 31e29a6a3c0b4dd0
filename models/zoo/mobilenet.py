"""MobileNetV2 (Sandler et al. 2018) and MobileNetV3-Small (Howard et al. 2019)."""

from __future__ import annotations

import torch
from torch import nn

from ._common import conv_bn_act, make_divisible, scale_depth


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (ReLU6) -> 3x3 depthwise (ReLU6) -> 1x1 linear project,
    with an identity residual when stride is 1 and in == out channels."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = round(in_channels * expand_ratio)
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_bn_act(in_channels, hidden, 1, activation=nn.ReLU6))
        layers += [
            conv_bn_act(hidden, hidden, 3, stride=stride, groups=hidden, activation=nn.ReLU6),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + conv(x) when shapes allow, else conv(x)."""
        return x + self.conv(x) if self.use_residual else self.conv(x)


# (expand ratio t, output channels c, repeats n, first stride s)
_MOBILENETV2_SETTINGS = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)  # fmt: skip


class MobileNetV2(nn.Module):
    """Stem 3x3/2 -> 17 inverted residuals -> 1x1 conv to 1280 -> pool -> dropout -> Linear."""

    def __init__(self, width: float, depth: float, num_classes: int) -> None:
        super().__init__()
        in_channels = make_divisible(32 * width)
        last_channels = make_divisible(1280 * max(1.0, width))
        layers: list[nn.Module] = [conv_bn_act(3, in_channels, 3, stride=2, activation=nn.ReLU6)]
        for expand, channels, repeats, stride in _MOBILENETV2_SETTINGS:
            out_channels = make_divisible(channels * width)
            for index in range(scale_depth(repeats, depth)):
                block_stride = stride if index == 0 else 1
                layers.append(InvertedResidual(in_channels, out_channels, block_stride, expand))
                in_channels = out_channels
        layers.append(conv_bn_act(in_channels, last_channels, 1, activation=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last_channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features -> global average pool -> flatten -> classifier logits."""
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


class SqueezeExcite(nn.Module):
    """SE gate: global average pool -> 1x1 conv (reduce) -> activation -> 1x1 conv -> gate,
    output = x * gate (gate broadcast over H, W)."""

    def __init__(
        self,
        channels: int,
        squeeze_channels: int,
        activation: type[nn.Module],
        gate: type[nn.Module],
    ) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.activation = activation()
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x * gate(fc2(act(fc1(avgpool(x)))))."""
        scale = self.gate(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return x * scale


# (kernel, expanded, out, use_se, activation, stride); "RE" = ReLU, "HS" = Hardswish
_MOBILENETV3_SMALL = (
    (3, 16, 16, True, "RE", 2), (3, 72, 24, False, "RE", 2), (3, 88, 24, False, "RE", 1),
    (5, 96, 40, True, "HS", 2), (5, 240, 40, True, "HS", 1), (5, 240, 40, True, "HS", 1),
    (5, 120, 48, True, "HS", 1), (5, 144, 48, True, "HS", 1), (5, 288, 96, True, "HS", 2),
    (5, 576, 96, True, "HS", 1), (5, 576, 96, True, "HS", 1),
)  # fmt: skip


class MobileNetV3Block(nn.Module):
    """Optional 1x1 expand -> kxk depthwise -> optional SE (hardsigmoid gate) -> 1x1 project,
    residual when stride 1 and in == out."""

    def __init__(
        self,
        in_channels: int,
        kernel: int,
        expanded: int,
        out_channels: int,
        use_se: bool,
        activation: type[nn.Module],
        stride: int,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if expanded != in_channels:
            layers.append(conv_bn_act(in_channels, expanded, 1, activation=activation, eps=1e-3))
        layers.append(
            conv_bn_act(
                expanded, expanded, kernel, stride, groups=expanded, activation=activation, eps=1e-3
            )
        )
        if use_se:
            squeeze = make_divisible(expanded // 4)
            layers.append(SqueezeExcite(expanded, squeeze, nn.ReLU, nn.Hardsigmoid))
        layers.append(conv_bn_act(expanded, out_channels, 1, activation=None, eps=1e-3))
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + block(x) when shapes allow, else block(x)."""
        return x + self.block(x) if self.use_residual else self.block(x)


class MobileNetV3Small(nn.Module):
    """Stem 3x3/2 (hardswish) -> 11 blocks -> 1x1 conv (6x) -> pool -> Linear-HS-Linear head."""

    def __init__(self, width: float, num_classes: int) -> None:
        super().__init__()
        in_channels = make_divisible(16 * width)
        layers: list[nn.Module] = [
            conv_bn_act(3, in_channels, 3, stride=2, activation=nn.Hardswish, eps=1e-3)
        ]
        for kernel, expanded, out, use_se, act, stride in _MOBILENETV3_SMALL:
            activation = nn.Hardswish if act == "HS" else nn.ReLU
            expanded_channels = make_divisible(expanded * width)
            out_channels = make_divisible(out * width)
            layers.append(
                MobileNetV3Block(
                    in_channels, kernel, expanded_channels, out_channels, use_se, activation, stride
                )
            )
            in_channels = out_channels
        last_conv = 6 * in_channels
        layers.append(conv_bn_act(in_channels, last_conv, 1, activation=nn.Hardswish, eps=1e-3))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        hidden = make_divisible(1024 * width)
        self.classifier = nn.Sequential(
            nn.Linear(last_conv, hidden),
            nn.Hardswish(),
            nn.Dropout(0.2),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features -> global average pool -> flatten -> classifier logits."""
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def build_mobilenetv2(
    *, width: float, num_classes: int, input_size: int, depth: float
) -> nn.Module:
    """MobileNetV2 (3,504,872 parameters at width 1, 1000 classes)."""
    del input_size
    return MobileNetV2(width, depth, num_classes)


def build_mobilenetv3_small(
    *, width: float, num_classes: int, input_size: int, depth: float
) -> nn.Module:
    """MobileNetV3-Small (2,542,856 parameters at width 1, 1000 classes); fixed 11-block layout."""
    del input_size, depth
    return MobileNetV3Small(width, num_classes)
