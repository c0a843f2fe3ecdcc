"""Which input pixels an output pixel of a stack of dilated convolutions sees, and through how many paths.

`path_counts(rates)` pushes a single bright pixel through the stack with all-ones kernels (a ones kernel is
symmetric, so cross-correlation and convolution agree): pixel (i, j) of the result is the number of paths from
input (i, j) to the centre output. Zeros inside the footprint are the "holes" of gridding that the Hybrid
Dilated Convolution rule (`cnnext.hdc_check`) forbids.
"""
import torch

from .functional import conv2d


def receptive_field_size(rates, kernel_size=3):
    """Side of the square a stack of `kernel_size` convolutions with these dilation rates sees: 1 + sum (k-1)·d."""
    return 1 + sum((kernel_size - 1) * rate for rate in rates)


def path_counts(rates, kernel_size=3):
    """Square float64 tensor of side `receptive_field_size(rates)`: paths from each input pixel to the centre."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"path_counts: kernel_size must be an odd positive int, got {kernel_size!r}")
    if not rates or any(int(rate) != rate or rate < 1 for rate in rates):
        raise ValueError(f"path_counts: rates must be a non-empty list of positive ints, got {rates!r}")
    size = receptive_field_size(rates, kernel_size)
    image = torch.zeros(1, 1, size, size, dtype=torch.float64)
    image[0, 0, size // 2, size // 2] = 1.0
    ones = torch.ones(1, 1, kernel_size, kernel_size, dtype=torch.float64)
    for rate in rates:
        image = conv2d(image, ones, padding=rate * (kernel_size // 2), dilation=rate)
    return image[0, 0]
