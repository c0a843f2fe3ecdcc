"""Augmentation of whole batches as tensor operations (no per-sample Python), for training from a uint8 tensor
held in memory: random translation (reflect padding, then a random crop per image) and horizontal flips, the
flips optionally alternating (Jordan's airbench: every image is flipped in every other epoch, chosen at random
in the first, so each consecutive pair of epochs sees both orientations).

    batches = AugmentedBatches(images, labels, batch_size=1024, translate=2, seed=0)
    for inputs, targets in batches.epoch(epoch): ...
"""
import math

import torch
import torch.nn.functional as F


def channel_stats(images):
    """Per-channel mean and standard deviation (shape [C]) of a uint8 or float batch [N, C, H, W], in its units."""
    flat = images.transpose(0, 1).reshape(images.shape[1], -1).double()
    return flat.mean(1).float(), flat.std(1).float()


def normalize(images, mean, std):
    """(images - mean) / std per channel, as float32."""
    return (images.float() - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


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


def flip_where(images, mask):
    """images with those where mask [N] is True mirrored left-right."""
    return torch.where(mask.view(-1, 1, 1, 1), images.flip(-1), images)


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
