"""Decoding, resizing and in-memory caching of image files, and the tensor datasets built from them."""
import functools
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from tqdm import tqdm

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


class DataLayoutError(ValueError):
    """A data directory that is missing or does not have the layout a loader expects."""


class UnreadableImageError(DataLayoutError):
    """A file with an image suffix that Pillow cannot decode (corrupt, truncated, empty, not an image)."""


class UnreadableImageWarning(UserWarning):
    """An unreadable image file that a loader left out."""


def image_files(folder):
    """The image files of `folder` in file-name order; other files (README, .DS_Store, ...) are skipped."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def split_last(items, test_fraction):
    """(train, test): the last round(len * test_fraction) items are the test set (the lab's rule)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    test_count = max(1, round(len(items) * test_fraction))
    return items[:-test_count], items[-test_count:]


def limit_parts(train, test, limit, test_fraction):
    """The first items of `train` and `test` so that about `limit` are kept in all, `test_fraction` of them test
    items (smoke tests); everything when `limit` is None."""
    if not limit:
        return train, test
    test_limit = max(1, round(limit * test_fraction))
    return train[:limit - test_limit], test[:test_limit]


def decode(path, size):
    """The image at `path` as an RGB uint8 array of shape (size, size, 3); UnreadableImageError names the file
    when it cannot be decoded."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))  # JPEG: decode at the smallest scale still >= size (much faster)
            return np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:  # PIL's decode failures
        if Path(path).stat().st_size == 0:
            reason = "empty file"
        elif isinstance(error, UnidentifiedImageError):
            reason = "not an image format Pillow recognises, or a corrupt header"
        else:
            reason = f"{type(error).__name__}: {error}"
        raise UnreadableImageError(f"{path}: not a readable image ({reason})") from None


@functools.lru_cache(maxsize=16)
def load_stack(paths, size, description="decoding"):
    """(uint8 tensor [N, 3, size, size] of the readable images at `paths` (a tuple), the indices into `paths`
    of those images, the unreadable paths). Each unreadable file is left out with an UnreadableImageWarning
    naming it; none readable at all is an UnreadableImageError. Cached, so every run and epoch in a process
    decodes each file once; a progress bar (`description`) shows for a thousand files or more."""
    images, kept, skipped = [], [], []
    progress = tqdm(paths, desc=description, unit="img", dynamic_ncols=True, mininterval=1.0,
                    disable=len(paths) < 1000 or None)
    for index, path in enumerate(progress):
        try:
            images.append(decode(path, size))
            kept.append(index)
        except UnreadableImageError as error:
            warnings.warn(f"skipping {error}", UnreadableImageWarning, stacklevel=2)
            skipped.append(path)
    if paths and not images:
        raise UnreadableImageError(f"none of the {len(paths)} image files is readable, e.g. {skipped[0]}")
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable of {len(paths)} image files", UnreadableImageWarning,
                      stacklevel=2)
    stack = (torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous() if images
             else torch.empty(0, 3, size, size, dtype=torch.uint8))
    return stack, tuple(kept), tuple(skipped)


def labelled_images(paths, labels, size, augment=False, seed=0, load=load_stack):
    """LabelledImages of the readable files among `paths` with their `labels` (unreadable ones left out);
    `load(paths, size)` gives (images, kept indices, skipped paths), as load_stack does."""
    images, kept, skipped = load(tuple(paths), size)
    return LabelledImages(images, [labels[i] for i in kept], augment, seed, skipped)


def _flip_and_crop(images, generator, pad):
    """The same random horizontal flip and random crop (after reflect-padding by `pad`) for every image given."""
    if torch.rand((), generator=generator) < 0.5:
        images = [image.flip(-1) for image in images]
    if pad:
        size = images[0].shape[-1]
        top, left = torch.randint(0, 2 * pad + 1, (2,), generator=generator).tolist()
        images = [torch.nn.functional.pad(image[None], (pad,) * 4, mode="reflect")[0, :, top:top + size,
                                                                                   left:left + size]
                  for image in images]
    return images


def _jitter_brightness_contrast(image, generator, brightness=(0.5, 1.2), contrast=(0.7, 1.3)):
    """Scales brightness and contrast by random factors (an image in [0, 1] stays in [0, 1])."""
    low, high = torch.tensor([brightness[0], contrast[0]]), torch.tensor([brightness[1], contrast[1]])
    scale_brightness, scale_contrast = (low + (high - low) * torch.rand(2, generator=generator)).tolist()
    image = image * scale_brightness
    mean = image.mean()
    return ((image - mean) * scale_contrast + mean).clamp_(0, 1)


class LabelledImages(Dataset):
    """Classification samples from a cached uint8 tensor: (image normalised to [-1, 1], label); augmentation is
    a random flip, a random crop of the image padded by 1/8 of its size, and brightness/contrast jitter."""

    def __init__(self, images, labels, augment=False, seed=0, skipped=()):
        self.images, self.labels, self.augment = images, torch.as_tensor(labels, dtype=torch.long), augment
        self.generator = torch.Generator().manual_seed(seed)
        self.skipped = tuple(skipped)  # unreadable files left out

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        image = self.images[index].float().div_(255)
        if self.augment:
            (image,) = _flip_and_crop([image], self.generator, pad=image.shape[-1] // 8)
            image = _jitter_brightness_contrast(image, self.generator)
        return image.mul_(2).sub_(1), self.labels[index]


class ImagePairs(Dataset):
    """Image-to-image samples: (input, target), both float in [0, 1]. Augmentation flips both alike; `crop`
    (an int) makes each sample a random crop x crop window of the pair, the same window in both."""

    def __init__(self, inputs, targets, augment=False, seed=0, skipped=(), crop=None):
        if inputs.shape != targets.shape:
            raise ValueError(f"ImagePairs: inputs {tuple(inputs.shape)} and targets {tuple(targets.shape)} differ")
        if crop is not None and not 0 < crop <= min(inputs.shape[-2:]):
            raise ValueError(f"ImagePairs: crop must be between 1 and the image size {tuple(inputs.shape[-2:])}, "
                             f"got {crop}")
        self.inputs, self.targets, self.augment, self.crop = inputs, targets, augment, crop
        self.generator = torch.Generator().manual_seed(seed)
        self.skipped = tuple(skipped)  # unreadable files left out (with their partners)

    def __len__(self):
        return len(self.inputs)

    def __getitem__(self, index):
        pair = [self.inputs[index], self.targets[index]]
        if self.crop is not None:
            height, width = pair[0].shape[-2:]
            top = torch.randint(0, height - self.crop + 1, (), generator=self.generator).item()
            left = torch.randint(0, width - self.crop + 1, (), generator=self.generator).item()
            pair = [image[:, top:top + self.crop, left:left + self.crop] for image in pair]
        pair = [image.float().div_(255) for image in pair]
        if self.augment:
            pair = _flip_and_crop(pair, self.generator, pad=0)
        return pair[0], pair[1]
