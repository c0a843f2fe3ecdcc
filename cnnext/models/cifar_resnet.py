"""The CIFAR-10 networks of He et al. 2016 ("Deep Residual Learning for Image Recognition", section 4.2) that
show the degradation problem: 6n+2 weight layers, a 3x3/16 stem and three stages of n basic blocks with
widths 16, 32/2, 64/2, global average pooling and one linear layer. plain-20/56 (n = 3, 9) drop the
shortcuts; ResNet-20/56 keep them (1x1 projections where the shape changes, the paper's option B).
Weights start from He (Kaiming) normal initialisation, as in the paper; the residual nets also start each
block's last BatchNorm scale at 0 (Goyal et al. 2017), so that ResNet-56 is not slower to start than ResNet-20
(with the paper's initialisation alone it lagged ResNet-20 in training loss after the lab's few hundred steps).
"""
from torch import nn

from .resnet import ResNet


def cifar_resnet(depth, residual=True, num_classes=10, in_channels=3, backend="cnnext"):
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"cifar_resnet: depth must be 6n+2 with n >= 1 (20, 32, 44, 56, 110), got {depth}")
    blocks = (depth - 2) // 6
    model = ResNet(num_classes, in_channels, blocks=(blocks,) * 3, widths=(16, 32, 64), dilations=(1, 1, 1),
                   residual=residual, zero_init_residual=residual, backend=backend)
    for module in model.modules():
        if hasattr(module, "weight") and module.weight is not None and module.weight.dim() == 4:
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return model


def resnet20(num_classes=10, in_channels=3, backend="cnnext"):
    return cifar_resnet(20, True, num_classes, in_channels, backend)


def resnet56(num_classes=10, in_channels=3, backend="cnnext"):
    return cifar_resnet(56, True, num_classes, in_channels, backend)


def plain20(num_classes=10, in_channels=3, backend="cnnext"):
    return cifar_resnet(20, False, num_classes, in_channels, backend)


def plain56(num_classes=10, in_channels=3, backend="cnnext"):
    return cifar_resnet(56, False, num_classes, in_channels, backend)
