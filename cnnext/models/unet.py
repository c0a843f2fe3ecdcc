"""A small U-Net for image restoration (Ronneberger et al. 2015's encoder-decoder with skip connections) that
predicts a per-pixel scale and shift of its input, J = (1 + s(I)) I + b(I): the atmospheric scattering model
J = (I - A (1 - t)) / t is exactly such a map, and AOD-Net's J = K(I) I - K(I) + 1 a constrained one. The last
convolution starts at zero, so the untrained net is the identity and training learns only the correction.

Each level is two 3x3 Conv-ReLU layers; the encoder halves the resolution with 2x2 average pooling and doubles
the width, the decoder upsamples bilinearly and concatenates the encoder's features of the same resolution.
Three poolings give the deepest layers a receptive field of most of a 128 px image, enough to see the haze
and airlight of the whole scene, which AOD-Net's 7x7 context cannot.
"""
import torch
import torch.nn.functional as F
from torch import nn

from ..nn import layer_class


def _level(Conv2d, in_channels, out_channels):
    return nn.Sequential(Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True),
                         Conv2d(out_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True))


class DehazeUNet(nn.Module):
    def __init__(self, channels=3, features=8, depth=3, backend="cnnext"):
        super().__init__()
        Conv2d = layer_class("Conv2d", backend)
        widths = [features * 2 ** level for level in range(depth + 1)]
        self.pool = layer_class("AvgPool2d", backend)(2)
        self.encoder = nn.ModuleList([_level(Conv2d, channels, widths[0])]
                                     + [_level(Conv2d, widths[k], widths[k + 1]) for k in range(depth)])
        self.decoder = nn.ModuleList([_level(Conv2d, widths[k + 1] + widths[k], widths[k])
                                      for k in reversed(range(depth))])
        self.head = Conv2d(widths[0], 2 * channels, 1)
        nn.init.zeros_(self.head.weight)  # s = b = 0: start as the identity, J = I
        nn.init.zeros_(self.head.bias)

    def forward(self, image):
        skips, x = [], image
        for level, encode in enumerate(self.encoder):
            x = encode(self.pool(x) if level else x)
            skips.append(x)
        skips.pop()
        for decode in self.decoder:
            skip = skips.pop()
            x = decode(torch.cat((F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False),
                                  skip), 1))
        scale, shift = self.head(x).chunk(2, 1)
        return (1 + scale) * image + shift
