"""YOLOv8-style detector: Conv-BN-SiLU, C2f, SPPF, FPN/PAN neck, three raw head outputs."""

from __future__ import annotations

import torch
from torch import nn

from ._common import conv_bn_act, scale_channels, scale_depth

_REG_MAX = 16


def conv(in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1) -> nn.Sequential:
    """YOLO Conv: conv (no bias) -> BatchNorm (eps 1e-3) -> SiLU."""
    return conv_bn_act(in_channels, out_channels, kernel, stride, activation=nn.SiLU, eps=1e-3)


class Bottleneck(nn.Module):
    """Two 3x3 Convs; adds the input back when ``shortcut``."""

    def __init__(self, channels: int, shortcut: bool) -> None:
        super().__init__()
        self.cv1 = conv(channels, channels, 3)
        self.cv2 = conv(channels, channels, 3)
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + cv2(cv1(x)) if shortcut else cv2(cv1(x))."""
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """cv1 (1x1 to 2c) -> chunk into two halves; each bottleneck consumes the last piece;
    Concat(both halves, every bottleneck output) -> cv2 (1x1)."""

    def __init__(self, in_channels: int, out_channels: int, repeats: int, shortcut: bool) -> None:
        super().__init__()
        self.hidden = out_channels // 2
        self.cv1 = conv(in_channels, 2 * self.hidden)
        self.cv2 = conv((2 + repeats) * self.hidden, out_channels)
        self.m = nn.ModuleList(Bottleneck(self.hidden, shortcut) for _ in range(repeats))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Cross-stage partial block with chunk + Concat."""
        pieces = list(self.cv1(x).chunk(2, 1))
        for block in self.m:
            pieces.append(block(pieces[-1]))
        return self.cv2(torch.cat(pieces, 1))


class SPPF(nn.Module):
    """cv1 (1x1, halve) -> three chained 5x5/1 max-pools -> Concat(4 tensors) -> cv2 (1x1)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        hidden = in_channels // 2
        self.cv1 = conv(in_channels, hidden)
        self.cv2 = conv(4 * hidden, out_channels)
        self.pool = nn.MaxPool2d(kernel_size=5, stride=1, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Spatial pyramid pooling, fast variant."""
        x = self.cv1(x)
        y1 = self.pool(x)
        y2 = self.pool(y1)
        return self.cv2(torch.cat((x, y1, y2, self.pool(y2)), 1))


class DetectBranch(nn.Module):
    """One scale of the decoupled head: box (Conv, Conv, 1x1 to 4*reg_max) and class
    (Conv, Conv, 1x1 to num_classes) branches, Concat along channels (raw, no decoding)."""

    def __init__(self, channels: int, box_hidden: int, cls_hidden: int, num_classes: int) -> None:
        super().__init__()
        self.box = nn.Sequential(
            conv(channels, box_hidden, 3),
            conv(box_hidden, box_hidden, 3),
            nn.Conv2d(box_hidden, 4 * _REG_MAX, 1),
        )
        self.cls = nn.Sequential(
            conv(channels, cls_hidden, 3),
            conv(cls_hidden, cls_hidden, 3),
            nn.Conv2d(cls_hidden, num_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """cat([box(x), cls(x)], 1): [B, 4*reg_max + num_classes, H, W]."""
        return torch.cat((self.box(x), self.cls(x)), 1)


class YOLOv8(nn.Module):
    """Backbone (P1..P5 + SPPF), FPN top-down and PAN bottom-up neck, raw heads at
    strides 8, 16, 32 returned as a tuple."""

    def __init__(self, width: float, depth: float, num_classes: int) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = (scale_channels(c, width) for c in (64, 128, 256, 512, 512))
        n3, n6 = scale_depth(3, depth), scale_depth(6, depth)
        self.stem = conv(3, c1, 3, 2)
        self.down2 = conv(c1, c2, 3, 2)
        self.stage2 = C2f(c2, c2, n3, shortcut=True)
        self.down3 = conv(c2, c3, 3, 2)
        self.stage3 = C2f(c3, c3, n6, shortcut=True)
        self.down4 = conv(c3, c4, 3, 2)
        self.stage4 = C2f(c4, c4, n6, shortcut=True)
        self.down5 = conv(c4, c5, 3, 2)
        self.stage5 = C2f(c5, c5, n3, shortcut=True)
        self.sppf = SPPF(c5, c5)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.top_down4 = C2f(c5 + c4, c4, n3, shortcut=False)
        self.top_down3 = C2f(c4 + c3, c3, n3, shortcut=False)
        self.bottom_up_down4 = conv(c3, c3, 3, 2)
        self.bottom_up4 = C2f(c3 + c4, c4, n3, shortcut=False)
        self.bottom_up_down5 = conv(c4, c4, 3, 2)
        self.bottom_up5 = C2f(c4 + c5, c5, n3, shortcut=False)
        box_hidden = max(16, c3 // 4, 4 * _REG_MAX)
        cls_hidden = max(c3, min(num_classes, 100))
        self.heads = nn.ModuleList(
            DetectBranch(c, box_hidden, cls_hidden, num_classes) for c in (c3, c4, c5)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Image [B, 3, H, W] (H, W divisible by 32) -> raw maps at H/8, H/16, H/32."""
        x = self.stage2(self.down2(self.stem(x)))
        p3 = self.stage3(self.down3(x))
        p4 = self.stage4(self.down4(p3))
        p5 = self.sppf(self.stage5(self.down5(p4)))
        t4 = self.top_down4(torch.cat((self.upsample(p5), p4), 1))
        out3 = self.top_down3(torch.cat((self.upsample(t4), p3), 1))
        out4 = self.bottom_up4(torch.cat((self.bottom_up_down4(out3), t4), 1))
        out5 = self.bottom_up5(torch.cat((self.bottom_up_down5(out4), p5), 1))
        return tuple(head(f) for head, f in zip(self.heads, (out3, out4, out5), strict=True))


def build_yolo(*, width: float, num_classes: int, input_size: int, depth: float) -> nn.Module:
    """YOLOv8-L-style layout at width 1, depth 1 (64..512 channels, C2f repeats 3/6/6/3);
    width 0.25 and depth 0.33 give the YOLOv8-n layout."""
    del input_size
    return YOLOv8(width, depth, num_classes)
