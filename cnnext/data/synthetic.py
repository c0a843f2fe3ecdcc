"""Synthetic stand-ins, generated in code, so every experiment runs on a fresh machine without any data.

They are NOT real images: results on them only show that the code runs, and every report says so.
- classification: three classes of noisy coloured patterns (horizontal stripes, vertical stripes, a disc);
- dehaze: smooth random scenes hazed with the atmospheric scattering model I = J t + A (1 - t).
"""
import numpy as np
import torch

from .images import ImagePairs, LabelledImages, split_last

CLASSES = ["horizontal-stripes", "vertical-stripes", "disc"]


def _pattern(label, size, rng):
    y, x = np.mgrid[0:size, 0:size] / size
    frequency, phase = rng.uniform(2, 5), rng.uniform(0, 2 * np.pi)
    if label == 0:
        mask = np.sin(2 * np.pi * frequency * y + phase) > 0
    elif label == 1:
        mask = np.sin(2 * np.pi * frequency * x + phase) > 0
    else:
        cy, cx, radius = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.3)
        mask = (y - cy) ** 2 + (x - cx) ** 2 < radius ** 2
    foreground, background = rng.uniform(0, 1, (2, 3, 1, 1))
    image = np.where(mask, foreground, background) + rng.normal(0, 0.15, (3, size, size))
    return np.clip(image * 255, 0, 255).astype(np.uint8)


def synthetic_classification(image_size=32, per_class=100, test_fraction=0.2, augment=False, seed=0):
    """(train set, test set, class names); per class the last `test_fraction` samples are the test set."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in range(len(CLASSES)):
        samples = [(_pattern(label, image_size, rng), label) for _ in range(per_class)]
        class_train, class_test = split_last(samples, test_fraction)
        train += class_train
        test += class_test

    def dataset(samples, augment):
        images, labels = zip(*samples)
        return LabelledImages(torch.from_numpy(np.stack(images)), labels, augment, seed)

    return dataset(train, augment), dataset(test, False), list(CLASSES)


def _hazy_pair(size, rng):
    y, x = np.mgrid[0:size, 0:size] / size
    clear = sum(rng.uniform(0, 1, (3, 1, 1)) * np.sin(2 * np.pi * (rng.uniform(0.5, 2) * x + rng.uniform(0.5, 2) * y)
                                                         + rng.uniform(0, 2 * np.pi)) for _ in range(3))
    clear = (clear - clear.min()) / (np.ptp(clear) + 1e-6)
    depth = np.clip(rng.uniform(0.2, 1) * y + rng.uniform(0, 0.5) * x, 0, 1)
    transmission = np.exp(-rng.uniform(1, 2.5) * depth)
    airlight = rng.uniform(0.75, 1.0)
    hazy = clear * transmission + airlight * (1 - transmission)
    return [np.clip(image * 255, 0, 255).astype(np.uint8) for image in (hazy, clear)]


def synthetic_dehaze(image_size=64, count=80, test_fraction=0.2, augment=False, seed=0):
    """(train set, test set) of synthetic (hazy, clear) pairs."""
    rng = np.random.default_rng(seed)
    train, test = split_last([_hazy_pair(image_size, rng) for _ in range(count)], test_fraction)

    def dataset(pairs, augment):
        hazy, clear = zip(*pairs)
        return ImagePairs(torch.from_numpy(np.stack(hazy)), torch.from_numpy(np.stack(clear)), augment, seed)

    return dataset(train, augment), dataset(test, False)
