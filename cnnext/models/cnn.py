"""The lab's plain CNN: N blocks of Conv-BatchNorm-ReLU-MaxPool, then one fully connected layer."""
from torch import nn

from ..nn import layer_class


def conv_bn_relu(in_channels, out_channels, kernel_size, backend, stride=1, padding=None, dilation=1):
    """Conv (no bias: BatchNorm has one) -> BatchNorm -> ReLU; padding defaults to 'same' for odd kernels."""
    Conv2d = layer_class("Conv2d", backend)
    if padding is None:
        padding = dilation * (kernel_size - 1) // 2
    return nn.Sequential(
        Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class PlainCNN(nn.Sequential):
    """`num_blocks` x (Conv k x k 'same' -> BN -> ReLU -> MaxPool 2), widths base_channels x 1, 2, 4, ...; then FC.

    The lab's hand-written variant is num_blocks=1, its torch.nn variant num_blocks=3.
    """

    def __init__(self, num_classes=3, in_channels=3, image_size=64, num_blocks=3, kernel_size=3, base_channels=32,
                 backend="cnnext"):
        if num_blocks < 1:
            raise ValueError(f"PlainCNN: num_blocks must be at least 1, got {num_blocks}")
        if kernel_size % 2 == 0:
            raise ValueError(f"PlainCNN: kernel_size must be odd so 'same' padding is symmetric, got {kernel_size}")
        if image_size % 2 ** num_blocks:
            raise ValueError(f"PlainCNN: image_size must be divisible by 2**num_blocks={2 ** num_blocks}, "
                             f"got {image_size}")
        MaxPool2d = layer_class("MaxPool2d", backend)
        layers, channels = [], in_channels
        for block in range(num_blocks):
            out_channels = base_channels * 2 ** block
            layers += [conv_bn_relu(channels, out_channels, kernel_size, backend), MaxPool2d(2)]
            channels = out_channels
        feature_size = image_size // 2 ** num_blocks
        layers += [nn.Flatten(), nn.Linear(channels * feature_size * feature_size, num_classes)]
        super().__init__(*layers)
