"""The speedrun network: airbench's 8-layer net (Jordan 2024, after Page's ResNet-9 and hlb-CIFAR10).

whiten (2x2 conv, 3 -> 24, frozen weights set from the data, see `init_whitening`) -> GELU
-> three blocks of [conv3x3 -> maxpool 2 -> BN -> GELU -> conv3x3 -> BN -> GELU], widths 64/256/256
-> maxpool 3 -> linear (no bias) -> scale 1/9.
The 3x3 convs start as an identity on their first input channels (Dirac init), and BatchNorm keeps its scale
fixed at 1 and trains only its shift, with a fast running-statistics momentum.
"""
import torch
from torch import nn

from ..nn import layer_class


class BatchNorm(nn.BatchNorm2d):
    """BatchNorm with a frozen scale of 1 (only the shift trains) and running statistics that follow the
    last batches closely (PyTorch momentum 0.4)."""

    def __init__(self, channels, momentum=0.4, eps=1e-12):
        super().__init__(channels, eps=eps, momentum=momentum)
        self.weight.requires_grad_(False)


def _dirac_conv(Conv2d, in_channels, out_channels):
    conv = Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[:in_channels])
    return conv


class ConvGroup(nn.Module):
    def __init__(self, in_channels, out_channels, backend="cnnext"):
        super().__init__()
        Conv2d, MaxPool2d = layer_class("Conv2d", backend), layer_class("MaxPool2d", backend)
        self.conv1 = _dirac_conv(Conv2d, in_channels, out_channels)
        self.pool = MaxPool2d(2)
        self.norm1 = BatchNorm(out_channels)
        self.conv2 = _dirac_conv(Conv2d, out_channels, out_channels)
        self.norm2 = BatchNorm(out_channels)
        self.activation = nn.GELU()

    def forward(self, x):
        x = self.activation(self.norm1(self.pool(self.conv1(x))))
        return self.activation(self.norm2(self.conv2(x)))


class SpeedrunNet(nn.Module):
    def __init__(self, num_classes=10, in_channels=3, widths=(64, 256, 256), whiten_kernel=2, scale=1 / 9,
                 backend="cnnext"):
        super().__init__()
        Conv2d, MaxPool2d = layer_class("Conv2d", backend), layer_class("MaxPool2d", backend)
        whiten_width = 2 * in_channels * whiten_kernel ** 2
        self.whiten = Conv2d(in_channels, whiten_width, whiten_kernel, bias=True)
        self.whiten.weight.requires_grad_(False)
        self.activation = nn.GELU()
        channels, groups = whiten_width, []
        for width in widths:
            groups.append(ConvGroup(channels, width, backend))
            channels = width
        self.groups = nn.Sequential(*groups)
        self.pool = MaxPool2d(3)
        self.head = nn.Linear(channels, num_classes, bias=False)
        self.scale = scale

    def forward(self, x):
        x = self.groups(self.activation(self.whiten(x)))
        return self.head(self.pool(x).flatten(1)) * self.scale

    @torch.no_grad()
    def init_whitening(self, images, eps=5e-4):
        """Sets the frozen first layer to ZCA-like patch whitening of `images` (float, normalised, N x C x H x W):
        the eigenvectors of the patch covariance scaled by 1/sqrt(eigenvalue), and their negatives (so the GELU
        that follows keeps both signs)."""
        weight = self.whiten.weight
        channels, (height, width) = images.shape[1], weight.shape[2:]
        patches = images.unfold(2, height, 1).unfold(3, width, 1).transpose(1, 3).reshape(-1, channels * height
                                                                                            * width).double()
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.T.flip(0)
        filters = eigenvectors.reshape(-1, channels, height, width)
        filters = filters / torch.sqrt(eigenvalues + eps).view(-1, 1, 1, 1)
        weight.copy_(torch.cat([filters, -filters]).to(weight.dtype))
