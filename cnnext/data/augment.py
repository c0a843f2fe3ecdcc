"""Batched training-time augmentation of classification inputs (tensors [N, C, H, W] in [-1, 1], as the
loaders give them): every op draws its random factors per image and runs on the whole batch at once.

    augment = BatchAugment(geometric=True, photometric="strong", seed=0)
    inputs = augment(inputs)          # in the training loop, before the model

geometric: a random resized crop (scale 0.35-1 of the area, aspect 3/4-4/3, one affine_grid/grid_sample for
the batch) and a horizontal flip. photometric 'strong' is made for the vehicle set's shift between its
train and test parts (night photos, a darker and bluer second camera): brightness x0.3-1.4, gamma 0.6-1.8,
contrast x0.6-1.4, per-channel gains x0.7-1.3 (white balance), saturation x0-1.6 and 20% grayscale.
'light' is brightness x0.7-1.2 and contrast x0.8-1.2 only.
"""
import math

import torch
import torch.nn.functional as F

PHOTOMETRIC = ("none", "light", "strong")


def _uniform(count, low, high, generator, device):
    return low + (high - low) * torch.rand(count, generator=generator).to(device)


def _log_uniform(count, low, high, generator, device):
    return _uniform(count, math.log(low), math.log(high), generator, device).exp()


def random_resized_crop(images, generator, scale=(0.35, 1.0), ratio=(3 / 4, 4 / 3), flip=True):
    """Each image cropped to a random box (area fraction in `scale`, aspect in `ratio`), resized back to its
    size, and mirrored with probability 1/2 when `flip`."""
    n, device = len(images), images.device
    area = _uniform(n, *scale, generator, device)
    aspect = _log_uniform(n, *ratio, generator, device)
    width = (area * aspect).sqrt().clamp(max=1)    # as a fraction of the image side
    height = (area / aspect).sqrt().clamp(max=1)
    centre_x = (1 - width) * (2 * torch.rand(n, generator=generator).to(device) - 1)
    centre_y = (1 - height) * (2 * torch.rand(n, generator=generator).to(device) - 1)
    mirror = torch.where(torch.rand(n, generator=generator).to(device) < 0.5, -1.0, 1.0) if flip else 1.0
    theta = torch.zeros(n, 2, 3, device=device, dtype=images.dtype)
    theta[:, 0, 0], theta[:, 0, 2] = width * mirror, centre_x
    theta[:, 1, 1], theta[:, 1, 2] = height, centre_y
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def random_flip(images, generator):
    mirror = (torch.rand(len(images), generator=generator) < 0.5).to(images.device)
    return torch.where(mirror[:, None, None, None], images.flip(-1), images)


def photometric_jitter(images, generator, strength="strong"):
    """Random brightness, contrast (and for 'strong': gamma, white balance, saturation, grayscale) per image of
    a batch in [0, 1]; the result stays in [0, 1]."""
    if strength not in PHOTOMETRIC:
        raise ValueError(f"photometric strength must be one of {list(PHOTOMETRIC)}, got {strength!r}")
    if strength == "none":
        return images
    n, device = len(images), images.device
    per_image = (n, 1, 1, 1)
    strong = strength == "strong"
    brightness = _log_uniform(n, *((0.3, 1.4) if strong else (0.7, 1.2)), generator, device).view(per_image)
    contrast = _uniform(n, *((0.6, 1.4) if strong else (0.8, 1.2)), generator, device).view(per_image)
    images = images * brightness
    if strong:
        gamma = _log_uniform(n, 0.6, 1.8, generator, device).view(per_image)
        images = images.clamp(1e-4, 1).pow(gamma)
        gains = _uniform(n * images.shape[1], 0.7, 1.3, generator, device).view(n, images.shape[1], 1, 1)
        images = images * gains
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = (images - mean) * contrast + mean
    if strong and images.shape[1] == 3:
        grey = (images * torch.tensor([0.299, 0.587, 0.114], device=device).view(1, 3, 1, 1)).sum(1, keepdim=True)
        saturation = _uniform(n, 0, 1.6, generator, device)
        saturation = torch.where(torch.rand(n, generator=generator).to(device) < 0.2, 0.0, saturation)
        images = grey + (images - grey) * saturation.view(per_image)
    return images.clamp(0, 1)


class BatchAugment:
    """Callable on a batch of inputs in [-1, 1]: random resized crop + flip (`geometric`), or a flip alone
    when `flip`, then photometric jitter of strength `photometric` ('none', 'light', 'strong')."""

    def __init__(self, geometric=True, photometric="strong", flip=True, crop_scale=(0.35, 1.0), seed=0):
        if photometric not in PHOTOMETRIC:
            raise ValueError(f"BatchAugment: photometric must be one of {list(PHOTOMETRIC)}, got {photometric!r}")
        if not 0 < crop_scale[0] <= crop_scale[1] <= 1:
            raise ValueError(f"BatchAugment: crop_scale must be (low, high) with 0 < low <= high <= 1, "
                             f"got {crop_scale}")
        self.geometric, self.photometric, self.flip = geometric, photometric, flip
        self.crop_scale = tuple(crop_scale)
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, inputs):
        images = (inputs + 1) / 2
        if self.geometric:
            images = random_resized_crop(images, self.generator, self.crop_scale, flip=self.flip)
        elif self.flip:
            images = random_flip(images, self.generator)
        images = photometric_jitter(images, self.generator, self.photometric)
        return images * 2 - 1

    def __repr__(self):
        low, high = self.crop_scale
        parts = [f"random resized crop (scale {low:g}-{high:g})"] if self.geometric else []
        parts += ["flip"] if self.flip else []
        if self.photometric != "none":
            parts.append(f"{self.photometric} photometric jitter")
        return " + ".join(parts) or "none"
