"""Per-image standardisation as the first layer of a classifier: each image (each channel with
`per_channel`) is shifted to mean 0 and scaled to standard deviation 1 before the network sees it, so a
darker or lower-contrast photo (night, another camera) reaches the first convolution like a normal one."""
from torch import nn


class PerImageStandardization(nn.Module):
    def __init__(self, per_channel=False, eps=1e-5):
        super().__init__()
        self.per_channel, self.eps = per_channel, eps

    def forward(self, x):
        dims = (2, 3) if self.per_channel else (1, 2, 3)
        mean = x.mean(dim=dims, keepdim=True)
        std = x.std(dim=dims, keepdim=True, unbiased=False)
        return (x - mean) / (std + self.eps)

    def extra_repr(self):
        return f"per_channel={self.per_channel}"


def standardized(model, per_channel=False):
    """`model` behind a PerImageStandardization layer (model[1] is the original)."""
    return nn.Sequential(PerImageStandardization(per_channel), model)


__all__ = ["PerImageStandardization", "standardized"]
