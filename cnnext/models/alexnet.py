"""AlexNet (Krizhevsky, Sutskever, Hinton 2012), single-tower, with a small-input variant and a width multiplier.

classic (224x224): conv 11x11/96 stride 4 -> maxpool 3/2 -> conv 5x5/256 same -> maxpool 3/2
                   -> conv 3x3/384, 3x3/384, 3x3/256 (same) -> maxpool 3/2 -> FC 4096 -> FC 4096 -> FC classes
small (32..96 px): the same layers with a 3x3 stride-1 first conv, so small images keep enough resolution.
variant='auto' picks classic from 128 px up, small below.
ReLU follows every conv and hidden FC; dropout precedes the hidden FCs, as in the paper.
"""
from torch import nn

from ..nn import layer_class


def _conv_out(size, kernel, stride=1, padding=0):
    return (size + 2 * padding - kernel) // stride + 1


class AlexNet(nn.Module):
    def __init__(self, num_classes=3, in_channels=3, image_size=224, variant="auto", width=1.0, dropout=0.5,
                 backend="cnnext"):
        super().__init__()
        if variant == "auto":
            variant = "classic" if image_size >= 128 else "small"
        if variant not in ("classic", "small"):
            raise ValueError(f"AlexNet: variant must be 'auto', 'classic' or 'small', got {variant!r}")
        self.variant = variant
        Conv2d, MaxPool2d = layer_class("Conv2d", backend), layer_class("MaxPool2d", backend)
        c1, c2, c3, c4, c5, hidden = (max(1, round(c * width)) for c in (96, 256, 384, 384, 256, 4096))
        first_kernel, first_stride, first_padding = (11, 4, 2) if variant == "classic" else (3, 1, 1)
        self.features = nn.Sequential(
            Conv2d(in_channels, c1, first_kernel, stride=first_stride, padding=first_padding), nn.ReLU(inplace=True),
            MaxPool2d(3, stride=2),
            Conv2d(c1, c2, 5, padding=2), nn.ReLU(inplace=True),
            MaxPool2d(3, stride=2),
            Conv2d(c2, c3, 3, padding=1), nn.ReLU(inplace=True),
            Conv2d(c3, c4, 3, padding=1), nn.ReLU(inplace=True),
            Conv2d(c4, c5, 3, padding=1), nn.ReLU(inplace=True),
            MaxPool2d(3, stride=2),
        )
        size = _conv_out(image_size, first_kernel, first_stride, first_padding)
        for _ in range(3):
            size = _conv_out(size, 3, 2)
        if size < 1:
            raise ValueError(f"AlexNet: image_size {image_size} is too small for the {variant!r} variant")
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout), nn.Linear(c5 * size * size, hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
