"""U-Net (Ronneberger et al. 2015) with BatchNorm, mixing ConvTranspose and Resize upsampling."""

from __future__ import annotations

import torch
from torch import nn

from ._common import conv_bn_act, scale_channels


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 conv-BN-ReLU layers."""
    return nn.Sequential(
        conv_bn_act(in_channels, out_channels, 3), conv_bn_act(out_channels, out_channels, 3)
    )


class TransposedUp(nn.Module):
    """ConvTranspose2d(k=2, s=2) halving channels, Concat with the skip, double conv."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.conv = double_conv(in_channels // 2 + skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """conv(cat([skip, up(x)], dim=1))."""
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class ResizeUp(nn.Module):
    """2x Resize (``mode``), 1x1 conv halving channels, Concat with the skip, double conv.

    ``functional`` selects ``F.interpolate`` instead of an ``nn.Upsample`` module (both export
    to ONNX Resize)."""

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        mode: str,
        functional: bool,
    ) -> None:
        super().__init__()
        self.mode = mode
        self.functional = functional
        align = False if mode == "bilinear" else None
        self.upsample = nn.Upsample(scale_factor=2, mode=mode, align_corners=align)
        self.reduce = nn.Conv2d(in_channels, in_channels // 2, kernel_size=1)
        self.conv = double_conv(in_channels // 2 + skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """conv(cat([skip, reduce(resize2x(x))], dim=1))."""
        if self.functional:
            x = nn.functional.interpolate(x, scale_factor=2.0, mode=self.mode)
        else:
            x = self.upsample(x)
        return self.conv(torch.cat([skip, self.reduce(x)], dim=1))


class UNet(nn.Module):
    """Encoder (double conv + 2x2 max-pool) x4, bottleneck, decoder x4 with skip Concats,
    1x1 conv to per-pixel class logits [B, num_classes, H, W]. Input H, W divisible by 16.

    Decoder upsampling: ConvTranspose (stage 1), bilinear nn.Upsample (stage 2),
    ConvTranspose (stage 3), nearest F.interpolate (stage 4)."""

    def __init__(self, width: float, num_classes: int) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = (scale_channels(c, width) for c in (64, 128, 256, 512, 1024))
        self.enc1 = double_conv(3, c1)
        self.enc2 = double_conv(c1, c2)
        self.enc3 = double_conv(c2, c3)
        self.enc4 = double_conv(c3, c4)
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = double_conv(c4, c5)
        self.up1 = TransposedUp(c5, c4, c4)
        self.up2 = ResizeUp(c4, c3, c3, mode="bilinear", functional=False)
        self.up3 = TransposedUp(c3, c2, c2)
        self.up4 = ResizeUp(c2, c1, c1, mode="nearest", functional=True)
        self.head = nn.Conv2d(c1, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segmentation logits at input resolution."""
        s1 = self.enc1(x)
        s2 = self.enc2(self.pool(s1))
        s3 = self.enc3(self.pool(s2))
        s4 = self.enc4(self.pool(s3))
        x = self.bottleneck(self.pool(s4))
        x = self.up1(x, s4)
        x = self.up2(x, s3)
        x = self.up3(x, s2)
        x = self.up4(x, s1)
        return self.head(x)


def build_unet(*, width: float, num_classes: int, input_size: int, depth: float) -> nn.Module:
    """U-Net with base widths 64..1024 scaled by ``width``; fixed 4-level depth."""
    del input_size, depth
    return UNet(width, num_classes)
