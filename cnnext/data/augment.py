"""Augmentation of whole batches as tensor operations (random factors drawn per image, no per-sample Python).

Two drivers share the ops below:
- BatchAugment, a callable for the training loop (cnnext.train: TrainConfig.augment) on float inputs in [-1, 1]:
      augment = BatchAugment(geometric=True, photometric="strong", seed=0)
      inputs = augment(inputs)
  geometric: a random resized crop (scale 0.35-1 of the area, aspect 3/4-4/3, one affine_grid/grid_sample for
  the batch) and a horizontal flip. photometric 'strong' is made for the vehicle set's shift between its train
  and test parts (night photos, a darker and bluer second camera): brightness x0.3-1.4, gamma 0.6-1.8, contrast
  x0.6-1.4, per-channel gains x0.7-1.3 (white balance), saturation x0-1.6 and 20% grayscale. 'light' is
  brightness x0.7-1.2 and contrast x0.8-1.2 only.
- BatchMix, a callable for the training loop (TrainConfig.mix): mixup or CutMix of each batch with a shuffled copy
  of itself; the loop weighs the loss of both label sets by the mixing share.
- AugmentedBatches, shuffled batches from a uint8 set held in memory (the CIFAR-10 speedrun): random translation
  (reflect padding, then a random crop per image) and flips, optionally alternating (Jordan's airbench: every
  image is flipped in every other epoch, chosen at random in the first, so each consecutive pair of epochs sees
  both orientations):
      batches = AugmentedBatches(images, labels, batch_size=1024, translate=2, seed=0)
      for inputs, targets in batches.epoch(epoch): ...
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

PHOTOMETRIC = ("none", "light", "strong")
MIXES = ("none", "mixup", "cutmix")


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


def flip_where(images, mask):
    """images with those where mask [N] is True mirrored left-right."""
    return torch.where(mask.to(images.device).view(-1, 1, 1, 1), images.flip(-1), images)


def random_crop(padded, size, generator):
    """A random size x size window of each image of `padded` [N, C, H, W] (all windows equally likely)."""
    count, span = len(padded), padded.shape[-1] - size + 1
    if span == 1:
        return padded
    offsets = torch.randint(0, span, (count, 2), generator=generator)
    out = torch.empty(padded.shape[:2] + (size, size), dtype=padded.dtype)
    for top in range(span):          # (2 * translate + 1)^2 slicing ops per batch, not one per image
        for left in range(span):
            chosen = ((offsets[:, 0] == top) & (offsets[:, 1] == left)).nonzero().flatten()
            if len(chosen):
                out[chosen] = padded[chosen, :, top:top + size, left:left + size]
    return out


def channel_stats(images):
    """Per-channel mean and standard deviation (shape [C]) of a uint8 or float batch [N, C, H, W], in its units."""
    flat = images.transpose(0, 1).reshape(images.shape[1], -1).double()
    return flat.mean(1).float(), flat.std(1).float()


def normalize(images, mean, std):
    """(images - mean) / std per channel, as float32."""
    return (images.float() - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


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
    """Callable on a batch of inputs in [-1, 1]: random resized crop + flip (`geometric`), or else a random
    translation by up to `translate` pixels (reflect padding) and a flip when `flip`, then photometric jitter of
    strength `photometric` ('none', 'light', 'strong')."""

    def __init__(self, geometric=True, photometric="strong", flip=True, crop_scale=(0.35, 1.0), translate=0, seed=0):
        if not isinstance(translate, int) or translate < 0:
            raise ValueError(f"BatchAugment: translate must be an int >= 0 (pixels), got {translate!r}")
        if geometric and translate:
            raise ValueError("BatchAugment: translate is for geometric=False (a random resized crop already moves "
                             "the image)")
        if photometric not in PHOTOMETRIC:
            raise ValueError(f"BatchAugment: photometric must be one of {list(PHOTOMETRIC)}, got {photometric!r}")
        if not 0 < crop_scale[0] <= crop_scale[1] <= 1:
            raise ValueError(f"BatchAugment: crop_scale must be (low, high) with 0 < low <= high <= 1, "
                             f"got {crop_scale}")
        self.geometric, self.photometric, self.flip = geometric, photometric, flip
        self.crop_scale, self.translate = tuple(crop_scale), translate
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, inputs):
        images = (inputs + 1) / 2
        if self.geometric:
            images = random_resized_crop(images, self.generator, self.crop_scale, flip=self.flip)
        else:
            if self.translate:
                padded = F.pad(images, (self.translate,) * 4, mode="reflect")
                images = random_crop(padded, images.shape[-1], self.generator)
            if self.flip:
                images = flip_where(images, torch.rand(len(images), generator=self.generator) < 0.5)
        images = photometric_jitter(images, self.generator, self.photometric)
        return images * 2 - 1

    def __repr__(self):
        low, high = self.crop_scale
        parts = [f"random resized crop (scale {low:g}-{high:g})"] if self.geometric else []
        parts += [f"random translation by up to {self.translate} px (reflect padding)"] if self.translate else []
        parts += ["flip"] if self.flip else []
        if self.photometric != "none":
            parts.append(f"{self.photometric} photometric jitter")
        return " + ".join(parts) or "none"


class BatchMix:
    """Callable on a training batch (inputs, targets): mixes it with a shuffled copy of itself and returns (mixed
    inputs, the partners' targets, the share of the originals). One share per batch, drawn from Beta(alpha,
    alpha). 'mixup' (Zhang et al. 2018) blends whole images; 'cutmix' (Yun et al. 2019) pastes a box of the
    partner covering 1 - share of the area (the share is then the box's exact complement after clipping to the
    image). The training loss is share * loss(targets) + (1 - share) * loss(partner targets)."""

    def __init__(self, mode="cutmix", alpha=1.0, seed=0):
        if mode not in MIXES[1:]:
            raise ValueError(f"BatchMix: mode must be one of {list(MIXES[1:])}, got {mode!r}")
        if not alpha > 0:
            raise ValueError(f"BatchMix: alpha must be > 0, got {alpha!r}")
        self.mode, self.alpha = mode, alpha
        self.rng = np.random.default_rng(seed)

    def __call__(self, inputs, targets):
        share = float(self.rng.beta(self.alpha, self.alpha))
        order = torch.from_numpy(self.rng.permutation(len(inputs))).to(inputs.device)
        if self.mode == "mixup":
            return share * inputs + (1 - share) * inputs[order], targets[order], share
        height, width = inputs.shape[-2:]
        cut = math.sqrt(1 - share)
        centre_y, centre_x = self.rng.integers(height), self.rng.integers(width)
        top, bottom = max(centre_y - round(cut * height / 2), 0), min(centre_y + round(cut * height / 2), height)
        left, right = max(centre_x - round(cut * width / 2), 0), min(centre_x + round(cut * width / 2), width)
        mixed = inputs.clone()
        mixed[..., top:bottom, left:right] = inputs[order, ..., top:bottom, left:right]  # only the box is copied
        return mixed, targets[order], 1 - (bottom - top) * (right - left) / (height * width)

    def __repr__(self):
        return f"{'mixup' if self.mode == 'mixup' else 'CutMix'} (share ~ Beta({self.alpha:g}, {self.alpha:g}))"


class AugmentedBatches:
    """Shuffled, augmented training batches from uint8 images [N, C, H, W] and labels [N].

    translate: pixels of random shift (reflect padding); flip: 'alternating', 'random' or 'none'. Batches are
    uint8 until `epoch` hands them out normalised (float32, per-channel statistics of the given images)."""

    def __init__(self, images, labels, batch_size, translate=2, flip="alternating", seed=0, drop_last=False):
        if flip not in ("alternating", "random", "none"):
            raise ValueError(f"AugmentedBatches: flip must be 'alternating', 'random' or 'none', got {flip!r}")
        if len(images) != len(labels):
            raise ValueError(f"AugmentedBatches: {len(images)} images but {len(labels)} labels")
        self.labels, self.batch_size, self.translate, self.flip = torch.as_tensor(labels), batch_size, translate, flip
        self.size = images.shape[-1]
        self.mean, self.std = channel_stats(images)
        pad = (translate,) * 4
        # reflect padding needs float; padding once keeps the per-batch work to slicing
        self.padded = F.pad(images.float(), pad, mode="reflect").to(images.dtype) if translate else images
        self.generator = torch.Generator().manual_seed(seed)
        self.first_flips = torch.rand(len(images), generator=self.generator) < 0.5
        self.drop_last = drop_last

    def __len__(self):
        count = len(self.labels) / self.batch_size
        return math.floor(count) if self.drop_last else math.ceil(count)

    def _flips(self, indices, epoch):
        if self.flip == "none":
            return None
        if self.flip == "random":
            return torch.rand(len(indices), generator=self.generator) < 0.5
        return self.first_flips[indices] ^ bool(epoch % 2)

    def epoch(self, epoch):
        """Yields (float inputs normalised, labels) batches of one epoch in a fresh random order."""
        order = torch.randperm(len(self.labels), generator=self.generator)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            indices = order[start:start + self.batch_size]
            batch = random_crop(self.padded[indices], self.size, self.generator)
            flips = self._flips(indices, epoch)
            if flips is not None:
                batch = flip_where(batch, flips)
            yield normalize(batch, self.mean, self.std), self.labels[indices]
