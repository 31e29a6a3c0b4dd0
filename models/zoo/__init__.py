"""PyTorch definitions of the reference models (no torchvision/timm).

Every builder has the keyword-only signature
``build_x(*, width: float, num_classes: int, input_size: int, depth: float) -> nn.Module``.
"""

from .bert import build_bert, build_bert_sdpa
from .conv1d import build_conv1d_mlp
from .convnext import build_convnext
from .densenet import build_densenet
from .efficientnet import build_efficientnet_b0
from .mobilenet import build_mobilenetv2, build_mobilenetv3_small
from .regnet import build_regnet
from .resnet import build_resnet18, build_resnet50, build_resnext
from .shufflenet import build_shufflenetv2
from .unet import build_unet
from .vgg import build_vgg16, build_vgg16_bn
from .vit import build_vit_tiny, build_vit_tiny_einsum, build_vit_tiny_mha
from .yolo import build_yolo

__all__ = [
    "build_bert",
    "build_bert_sdpa",
    "build_conv1d_mlp",
    "build_convnext",
    "build_densenet",
    "build_efficientnet_b0",
    "build_mobilenetv2",
    "build_mobilenetv3_small",
    "build_regnet",
    "build_resnet18",
    "build_resnet50",
    "build_resnext",
    "build_shufflenetv2",
    "build_unet",
    "build_vgg16",
    "build_vgg16_bn",
    "build_vit_tiny",
    "build_vit_tiny_einsum",
    "build_vit_tiny_mha",
    "build_yolo",
]
