"""The feed-forward baseline of the previous lab: flatten the image, hidden ReLU layers, linear classifier."""
from torch import nn


class MLP(nn.Sequential):
    def __init__(self, num_classes=3, in_channels=3, image_size=64, hidden=(512, 256), dropout=0.2, backend=None):
        del backend  # no convolutions; accepted so every model is built the same way
        layers, features = [nn.Flatten()], in_channels * image_size * image_size
        for width in hidden:
            layers += [nn.Linear(features, width), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            features = width
        layers.append(nn.Linear(features, num_classes))
        super().__init__(*layers)
