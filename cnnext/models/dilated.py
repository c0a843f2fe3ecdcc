"""Hybrid Dilated Convolution (Wang et al., "Understanding Convolution for Semantic Segmentation", WACV 2018).

Stacking dilated convolutions with rates that share a factor (2, 4, 8) leaves a grid of input pixels that
no output ever sees ("gridding"). HDC picks rates so that the receptive field has no holes:
  - with M_n = r_n and M_i = max(M_{i+1} - 2 r_i, M_{i+1} - 2 (M_{i+1} - r_i), r_i), the largest gap
    between non-zero taps after the first two layers must satisfy M_2 <= K (the kernel size);
  - the rates must not all share a common factor greater than 1.
"""
import math
from dataclasses import dataclass, field

from torch import nn

from ..nn import layer_class
from .cnn import conv_bn_relu


@dataclass
class HDCResult:
    rates: tuple
    kernel_size: int
    max_distances: tuple  # M_1 .. M_n
    reasons: list = field(default_factory=list)  # why the rates fail; empty when they satisfy HDC

    @property
    def valid(self):
        return not self.reasons

    def __bool__(self):
        return self.valid

    def __str__(self):
        verdict = "satisfies HDC" if self.valid else "breaks HDC: " + "; ".join(self.reasons)
        return f"rates {list(self.rates)} with {self.kernel_size}x{self.kernel_size} kernels {verdict}"


def hdc_check(rates, kernel_size=3):
    """Checks dilation `rates` (applied in order) against the HDC rule for `kernel_size` kernels.

    Returns an HDCResult: truthy when the rates satisfy HDC, with `max_distances` (the M_i) and, when they
    do not, `reasons` saying which condition fails.
        >>> bool(hdc_check([1, 2, 5]))   # the lab's rates: M_2 = 2 <= 3
        True
        >>> hdc_check([2, 4, 8]).reasons
        ['M_2 = 4 > kernel size 3: ...', 'rates share the common factor 2: ...']
    """
    rates = tuple(rates)
    if not rates or not all(isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in rates):
        raise ValueError(f"hdc_check: rates must be a non-empty list of positive ints, got {list(rates)}")
    if not isinstance(kernel_size, int) or kernel_size < 2:
        raise ValueError(f"hdc_check: kernel_size must be an int >= 2, got {kernel_size!r}")
    distances = [rates[-1]]
    for rate in reversed(rates[:-1]):
        following = distances[0]
        distances.insert(0, max(following - 2 * rate, following - 2 * (following - rate), rate))
    reasons = []
    if len(rates) >= 2 and distances[1] > kernel_size:
        reasons.append(f"M_2 = {distances[1]} > kernel size {kernel_size}: the stacked receptive field has holes "
                       f"(M_i = {distances})")
    common = math.gcd(*rates)
    if common > 1:
        reasons.append(f"rates share the common factor {common}: each output sees only one input pixel in every "
                       f"{common} along each axis (gridding)")
    return HDCResult(rates, kernel_size, tuple(distances), reasons)


class DilatedCNN(nn.Module):
    """Conv-BN-ReLU layers with the given dilation rates, then global average pooling + FC.

    With `stages=1` (the lab's net) the rates form one group of 3x3 layers of widths base, 2 base, 4 base with no
    padding, so each layer shrinks the map by 2*rate: the lab's rates (1, 2, 5) take 32 -> 30 -> 26 -> 16.
    With `stages=S > 1` (a deeper net for CIFAR-10) the group is repeated S times at widths base, 2 base, 4 base,
    ..., each layer padded to keep its map size (padding = rate), with 2x2 max pooling between stages.
    """

    def __init__(self, num_classes=3, in_channels=3, image_size=32, rates=(1, 2, 5), base_channels=32, kernel_size=3,
                 stages=1, backend="cnnext"):
        super().__init__()
        if not isinstance(stages, int) or stages < 1:
            raise ValueError(f"DilatedCNN: stages must be a positive int, got {stages!r}")
        self.rates, self.stages = tuple(rates), stages
        self.feature_sizes = [image_size]  # the input's, then each dilated layer's output size
        for stage in range(stages):
            for rate in self.rates:
                size = self.feature_sizes[-1] - rate * (kernel_size - 1) if stages == 1 else image_size // 2 ** stage
                self.feature_sizes.append(size)
        if self.feature_sizes[-1] < 1:
            raise ValueError(f"DilatedCNN: image_size {image_size} is too small for rates {list(self.rates)} "
                             f"and {stages} stage(s) (sizes {self.feature_sizes})")
        MaxPool2d = layer_class("MaxPool2d", backend)
        layers, channels = [], in_channels
        for stage in range(stages):
            if stage:
                layers.append(MaxPool2d(2))
            for index, rate in enumerate(self.rates):
                out_channels = base_channels * 2 ** (min(index, 2) if stages == 1 else stage)
                layers.append(conv_bn_relu(channels, out_channels, kernel_size, backend,
                                           padding=0 if stages == 1 else None, dilation=rate))
                channels = out_channels
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))
