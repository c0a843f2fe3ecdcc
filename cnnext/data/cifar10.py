"""CIFAR-10 in either layout: cifar10/{train,test}/<class>/*.jpg, or the original pickled
cifar10/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}."""
import functools
import pickle
from pathlib import Path

import numpy as np
import torch

from .cache import cache_file_for, cached_images
from .images import DataLayoutError, LabelledImages, image_files, labelled_images

LAYOUT = ("cifar10/train/<class>/*.jpg and cifar10/test/<class>/*.jpg, or the pickled batches "
          "cifar10/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}")
PICKLE_DIR = "cifar-10-batches-py"


def _folder_split(folder, classes, image_size, limit_per_class, augment, seed, cache_dir=None):
    """LabelledImages of one split folder; decoded once into `cache_dir` when one is given."""
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = image_files(folder / name)[:limit_per_class]
        paths += files
        labels += [label] * len(files)
    if cache_dir is None:
        return labelled_images(paths, labels, image_size, augment, seed)
    cache_file = cache_file_for("cifar10", folder, folder.name, image_size, limit_per_class, cache_dir)
    load = functools.partial(cached_images, cache_file=cache_file,
                             description=f"decoding cifar10/{folder.name} into {cache_file.parent}")
    return labelled_images(paths, labels, image_size, augment, seed, load)


@functools.lru_cache(maxsize=4)
def _read_batches(batch_dir, names):
    images, labels = [], []
    for name in names:
        with open(Path(batch_dir) / name, "rb") as file:
            batch = pickle.load(file, encoding="bytes")
        images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels += list(batch[b"labels"])
    return torch.from_numpy(np.concatenate(images)), labels


def _pickle_split(batch_dir, names, image_size, limit_per_class):
    images, labels = _read_batches(str(batch_dir), tuple(names))
    if limit_per_class:
        keep = _first_per_class(labels, limit_per_class)
        images, labels = images[keep], [labels[i] for i in keep]
    if image_size != 32:
        images = torch.nn.functional.interpolate(images.float(), size=image_size, mode="bilinear",
                                                 align_corners=False).round().clamp(0, 255).to(torch.uint8)
    return images, labels


def _first_per_class(labels, limit):
    seen, keep = {}, []
    for index, label in enumerate(labels):
        if seen.get(label, 0) < limit:
            seen[label] = seen.get(label, 0) + 1
            keep.append(index)
    return keep


def load_cifar10(root, image_size=32, limit_per_class=None, augment=False, seed=0, cache_dir=None):
    """(train set, test set, class names) from either CIFAR-10 layout under `root`. With `cache_dir`, decoded
    JPEGs are kept there as one .npy per split (cnnext.data.cache) and reused while the files are unchanged."""
    root = Path(root)
    batch_dir = root / PICKLE_DIR if (root / PICKLE_DIR).is_dir() else root
    if (batch_dir / "data_batch_1").is_file():
        with open(batch_dir / "batches.meta", "rb") as file:
            classes = [name.decode() for name in pickle.load(file, encoding="bytes")[b"label_names"]]
        train = LabelledImages(*_pickle_split(batch_dir, [f"data_batch_{i}" for i in range(1, 6)], image_size,
                                              limit_per_class), augment=augment, seed=seed)
        test = LabelledImages(*_pickle_split(batch_dir, ["test_batch"], image_size, limit_per_class), seed=seed)
    elif (root / "train").is_dir() and (root / "test").is_dir():
        classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
        missing = [name for name in classes if not (root / "test" / name).is_dir()]
        if not classes or missing:
            raise DataLayoutError(f"{root}: class folders {missing or 'none'} missing; expected {LAYOUT}")
        train = _folder_split(root / "train", classes, image_size, limit_per_class, augment, seed, cache_dir)
        test = _folder_split(root / "test", classes, image_size, limit_per_class, False, seed, cache_dir)
    else:
        raise DataLayoutError(f"CIFAR-10 data not found under {root}: expected {LAYOUT}")
    return train, test, classes
