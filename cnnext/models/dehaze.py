"""AOD-Net (Li et al., "AOD-Net: All-in-One Dehazing Network", ICCV 2017): a tiny image-to-image dehazer.

The atmospheric scattering model I = J t + A (1 - t) is rewritten as J = K(I) * I - K(I) + b, with one
map K estimated by five small convolutions whose outputs are concatenated multi-scale, as in the paper.
"""
import torch
from torch import nn

from ..nn import layer_class


class AODNet(nn.Module):
    def __init__(self, channels=3, bias=1.0, backend="cnnext"):
        super().__init__()
        Conv2d = layer_class("Conv2d", backend)
        self.conv1 = Conv2d(channels, channels, 1)
        self.conv2 = Conv2d(channels, channels, 3, padding=1)
        self.conv3 = Conv2d(2 * channels, channels, 5, padding=2)
        self.conv4 = Conv2d(2 * channels, channels, 7, padding=3)
        self.conv5 = Conv2d(4 * channels, channels, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.bias = bias

    def forward(self, hazy):
        x1 = self.relu(self.conv1(hazy))
        x2 = self.relu(self.conv2(x1))
        x3 = self.relu(self.conv3(torch.cat((x1, x2), 1)))
        x4 = self.relu(self.conv4(torch.cat((x2, x3), 1)))
        k = self.relu(self.conv5(torch.cat((x1, x2, x3, x4), 1)))
        return self.relu(k * hazy - k + self.bias)
