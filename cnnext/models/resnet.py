"""ResNet-18 as the CNN lab gives it (He et al. 2016, CIFAR-style stem), its plain twin, and a dilated variant.

3x3/64 stem (stride 1) -> stages of two basic blocks: 64, 128 /2, 256 /2, 512 /2 -> global avg pool -> FC.
A basic block is conv3x3-BN-ReLU-conv3x3-BN, added to the shortcut (identity, or 1x1 conv + BN where the
shape changes) before the final ReLU. The plain twin drops the shortcut and keeps everything else.
The dilated variant (Yu, Koltun, Funkhouser, "Dilated Residual Networks", 2017) replaces the stride of the
chosen stages by dilation, so the last stages keep a larger feature map with the same number of weights.
"""
from torch import nn

from ..nn import layer_class


class BasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1, dilation=1, residual=True, backend="cnnext"):
        super().__init__()
        Conv2d = layer_class("Conv2d", backend)
        self.residual = residual
        self.conv1 = Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation,
                            bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = Conv2d(out_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if residual and (stride != 1 or in_channels != out_channels):
            self.shortcut = nn.Sequential(Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + self.shortcut(x)
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(self, num_classes=3, in_channels=3, blocks=(2, 2, 2, 2), widths=(64, 128, 256, 512),
                 dilations=(1, 1, 1, 1), residual=True, zero_init_residual=False, backend="cnnext"):
        super().__init__()
        Conv2d = layer_class("Conv2d", backend)
        self.stem = nn.Sequential(Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        stages, channels = [], widths[0]
        for index, (count, width, dilation) in enumerate(zip(blocks, widths, dilations)):
            stride = 1 if index == 0 or dilation > 1 else 2
            layers = []
            for block in range(count):
                layers.append(BasicBlock(channels, width, stride if block == 0 else 1, dilation, residual, backend))
                channels = width
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        if zero_init_residual and residual:
            # Goyal et al. 2017 (torchvision's zero_init_residual): every residual block starts as the identity,
            # so a deep net starts as trainable as a shallow one
            for module in self.modules():
                if isinstance(module, BasicBlock):
                    nn.init.zeros_(module.bn2.weight)

    def forward(self, x):
        return self.fc(self.pool(self.stages(self.stem(x))).flatten(1))


def _widths(width):
    return tuple(max(1, round(c * width)) for c in (64, 128, 256, 512))


def resnet18(num_classes=3, in_channels=3, width=1.0, backend="cnnext"):
    return ResNet(num_classes, in_channels, widths=_widths(width), backend=backend)


def plain18(num_classes=3, in_channels=3, width=1.0, backend="cnnext"):
    """ResNet-18 without shortcuts: the same 18 weight layers (bar the 1x1 projections)."""
    return ResNet(num_classes, in_channels, widths=_widths(width), residual=False, backend=backend)


def resnet18_dilated(num_classes=3, in_channels=3, width=1.0, dilations=(1, 1, 1, 2), backend="cnnext"):
    """ResNet-18 whose last stage trades its stride 2 for dilation 2 (output stride 8 instead of 16 here)."""
    return ResNet(num_classes, in_channels, widths=_widths(width), dilations=dilations, backend=backend)
