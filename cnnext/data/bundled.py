"""Real data that scikit-learn ships with its package, so every experiment runs on a fresh machine with no data
directory and nothing to download; every report and console line names it.

- classification: the handwritten digits of sklearn.datasets.load_digits (1,797 8x8 grey images of 10 classes,
  UCI), upsampled to the experiment's image size;
- dehaze: square crops of the two photographs of sklearn.datasets.load_sample_images (china.jpg, flower.jpg),
  hazed with the atmospheric scattering model (cnnext.data.haze). Test crops come from the right-most
  `test_fraction` of each photo's columns, training crops from the rest, so no test pixel is seen in training.
  The crops and the haze are drawn from a fixed seed: the same pairs on every call, like a data folder.
"""
import functools

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits, load_sample_images

from .haze import random_haze
from .images import ImagePairs, LabelledImages, limit_parts, split_last

DIGITS_SOURCE = ("bundled: scikit-learn's handwritten digits (sklearn.datasets.load_digits: 1,797 8x8 images, "
                 "10 classes), upsampled; no --data or CNNEXT_DATA given")
PHOTOS_SOURCE = ("bundled: crops of scikit-learn's sample photos (sklearn.datasets.load_sample_images: china.jpg, "
                 "flower.jpg) hazed with I = J t + A (1 - t); no --data or CNNEXT_DATA given")
HAZE_SEED = 2017
PAIRS = 500


def _to_uint8(images):
    return (images * 255).round().clamp(0, 255).to(torch.uint8)


def bundled_digits(image_size=32, test_fraction=0.2, limit_per_class=None, augment=False, seed=0):
    """(train set, test set, class names '0'..'9'); per class the last `test_fraction` of the digits in the
    data set's order are the test set (the lab's rule)."""
    digits = load_digits()
    images = torch.from_numpy(digits.images).float()[:, None] / 16
    images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)
    images = _to_uint8(images).expand(-1, 3, -1, -1).contiguous()
    train, test = [], []
    for label in range(10):
        class_train, class_test = limit_parts(*split_last(np.flatnonzero(digits.target == label).tolist(),
                                                          test_fraction), limit_per_class, test_fraction)
        train += class_train
        test += class_test

    def dataset(indices, augment):
        return LabelledImages(images[indices], digits.target[indices], augment, seed)

    return dataset(train, augment), dataset(test, False), [str(label) for label in range(10)]


@functools.lru_cache(maxsize=4)
def _hazy_crops(image_size, count, test_fraction):
    rng = np.random.default_rng(HAZE_SEED)
    photos = [Image.fromarray(photo) for photo in load_sample_images().images]
    width, height = photos[0].size
    boundary = round(width * (1 - test_fraction))
    largest = min(height, boundary, width - boundary)  # the same crop sizes for train and test

    def crops(number, columns):
        hazy, clear = [], []
        for index in range(number):
            side = int(rng.integers(largest // 2, largest + 1))
            top = int(rng.integers(0, height - side + 1))
            left = int(rng.integers(columns[0], columns[1] - side + 1))
            crop = photos[index % len(photos)].crop((left, top, left + side, top + side))
            crop = np.asarray(crop.resize((image_size, image_size), Image.Resampling.BILINEAR)).transpose(2, 0, 1)
            if rng.uniform() < 0.5:
                crop = crop[..., ::-1]
            clear.append(crop)
            hazy.append(np.round(random_haze(crop / 255, rng) * 255).astype(np.uint8))
        return torch.from_numpy(np.stack(hazy)), torch.from_numpy(np.stack(clear))

    test_count = max(1, round(count * test_fraction))
    return crops(count - test_count, (0, boundary)), crops(test_count, (boundary, width))


def bundled_dehaze(image_size=128, test_fraction=0.2, limit=None, augment=False, seed=0):
    """(train set, test set) of (hazy, clear) pairs: PAIRS crops in all (or `limit`), `test_fraction` of them
    from the test columns of the photos."""
    train, test = _hazy_crops(image_size, limit or PAIRS, test_fraction)
    return ImagePairs(*train, augment, seed), ImagePairs(*test, False, seed)
