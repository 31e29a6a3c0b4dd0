"""ConvNeXt-Tiny (Liu et al. 2022): 7x7 depthwise, channels-last LayerNorm + MLP, layer scale."""

from __future__ import annotations

import torch
from torch import nn

from ._common import scale_channels, scale_depth


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over the channel axis of [B, C, H, W], written out as in the ConvNeXt code:
    y = weight[c] * (x - mean_c) / sqrt(var_c + eps) + bias[c] (biased variance)."""

    is_channel_norm = True

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize each pixel's channel vector, then scale and shift per channel."""
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class ConvNeXtBlock(nn.Module):
    """x + permute_back(gamma * fc2(gelu(fc1(LN(permute_last(dwconv7x7(x)))))))."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Depthwise conv, channels-last LayerNorm and MLP, layer scale, residual add."""
        shortcut = x
        x = self.dwconv(x).permute(0, 2, 3, 1)
        x = self.pwconv2(self.act(self.pwconv1(self.norm(x))))
        x = (self.gamma * x).permute(0, 3, 1, 2)
        return shortcut + x


class ConvNeXt(nn.Module):
    """Stem (4x4/4 conv + channels-first LN), 4 stages separated by (LN + 2x2/2 conv)
    downsamples, global mean pool, LayerNorm, Linear head."""

    def __init__(self, depths: tuple[int, ...], dims: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.downsample_layers = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4), ChannelsFirstLayerNorm(dims[0]))]
        )
        for index in range(len(dims) - 1):
            self.downsample_layers.append(
                nn.Sequential(
                    ChannelsFirstLayerNorm(dims[index]),
                    nn.Conv2d(dims[index], dims[index + 1], 2, stride=2),
                )
            )
        self.stages = nn.ModuleList(
            nn.Sequential(*(ConvNeXtBlock(dim) for _ in range(count)))
            for dim, count in zip(dims, depths, strict=True)
        )
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Stages -> mean over H, W -> LayerNorm -> head logits."""
        for downsample, stage in zip(self.downsample_layers, self.stages, strict=True):
            x = stage(downsample(x))
        return self.head(self.norm(x.mean([-2, -1])))


def build_convnext(*, width: float, num_classes: int, input_size: int, depth: float) -> nn.Module:
    """ConvNeXt-Tiny: depths (3, 3, 9, 3), dims (96, 192, 384, 768); 28,589,128 parameters at
    width 1, depth 1, 1000 classes."""
    del input_size
    depths = tuple(scale_depth(n, depth) for n in (3, 3, 9, 3))
    dims = tuple(scale_channels(d, width) for d in (96, 192, 384, 768))
    return ConvNeXt(depths, dims, num_classes)
