"""Training losses beyond torch.nn's."""
from torch import nn
import torch.nn.functional as F

from .train import ssim_per_image


class L1SSIMLoss(nn.Module):
    """L1 + ssim_weight * (1 - SSIM) for image restoration (Zhao et al., "Loss Functions for Image Restoration
    with Neural Networks", 2017): L1 keeps colours and brightness right without MSE's blur towards the mean,
    the SSIM term rewards local contrast and structure, which is what haze takes away."""

    def __init__(self, ssim_weight=0.2):
        super().__init__()
        self.ssim_weight = ssim_weight

    def forward(self, output, target):
        return F.l1_loss(output, target) + self.ssim_weight * (1 - ssim_per_image(output, target).mean())

    def extra_repr(self):
        return f"ssim_weight={self.ssim_weight}"
