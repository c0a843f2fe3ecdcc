"""Data sets for the lab, from a data directory (`--data DIR` or CNNEXT_DATA) holding vehicles/, dehaze/ and
cifar10/, or, with neither, real data that scikit-learn ships (cnnext.data.bundled: handwritten digits for
classification, hazed crops of its sample photos for dehazing), labelled as such everywhere.

    data = cnnext.data.load("vehicles", data_dir="/data", image_size=64)
    data.train, data.test, data.classes, data.source
"""
import os
from dataclasses import dataclass
from pathlib import Path

from .bundled import bundled_dehaze, bundled_digits, DIGITS_SOURCE, PHOTOS_SOURCE
from .cifar10 import load_cifar10
from .dehaze import load_dehaze
from .images import DataLayoutError, ImagePairs, LabelledImages, UnreadableImageError, UnreadableImageWarning
from .vehicles import load_vehicles

DATASETS = ("vehicles", "cifar10", "dehaze")
DATA_ENV = "CNNEXT_DATA"
LAYOUT = "DIR/vehicles/<class>/*.jpg, DIR/dehaze/{hazy,clear}/*.jpg, DIR/cifar10/{train,test}/<class>/*.jpg"


@dataclass
class Data:
    name: str          # 'vehicles', 'cifar10' or 'dehaze'
    task: str          # 'classification' or 'dehaze'
    train: object      # torch Dataset
    test: object
    classes: list      # class names; None for dehaze
    image_size: int
    source: str        # where it came from, in words
    bundled: bool      # scikit-learn's bundled stand-in, used when no data directory was given
    split: str = None  # how train and test were divided, in words

    @property
    def skipped(self):
        """Unreadable image files the loaders left out (with a warning each)."""
        return getattr(self.train, "skipped", ()) + getattr(self.test, "skipped", ())

    def summary(self):
        return {"dataset": self.name, "task": self.task, "bundled": self.bundled, "source": self.source,
                "split": self.split, "classes": self.classes, "image_size": self.image_size,
                "train_samples": len(self.train), "test_samples": len(self.test),
                "skipped_files": [str(path) for path in self.skipped],
                "train_crop": getattr(self.train, "crop", None)}


def resolve_data_dir(data_dir=None):
    """`data_dir`, else $CNNEXT_DATA, else None (bundled data); a given directory must exist."""
    chosen = data_dir or os.environ.get(DATA_ENV) or None
    if chosen is None:
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        origin = "--data" if data_dir else DATA_ENV
        raise DataLayoutError(f"data directory {str(path)!r} (from {origin}) does not exist; expected a directory "
                              f"laid out as {LAYOUT}")
    return path


def load(name, data_dir=None, image_size=64, test_fraction=0.2, limit_per_class=None, augment=False, seed=0,
         split="lab", cache_dir=None):
    """The train/test split of data set `name` ('vehicles', 'cifar10', 'dehaze') as a Data record.

    split (vehicles): 'lab' = the last test_fraction of each class by file name, 'random' = a stratified random
    split with the same fraction, seeded by `seed` (see cnnext.data.vehicles.split_files).
    limit_per_class caps samples per class (pairs for dehaze), for smoke tests; cache_dir keeps decoded CIFAR-10
    JPEGs on disk between runs (cnnext.data.cache). Without a data directory the
    bundled stand-in of the same task is returned (cnnext.data.bundled), with bundled=True. Unreadable image
    files are left out with a warning naming each (Data.skipped lists them)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}, expected one of {list(DATASETS)}")
    root = resolve_data_dir(data_dir)
    task = "dehaze" if name == "dehaze" else "classification"
    if root is None:
        if task == "dehaze":
            train, test = bundled_dehaze(image_size, test_fraction, limit_per_class, augment, seed)
            return Data("hazed-photos", task, train, test, None, image_size, PHOTOS_SOURCE, True)
        train, test, classes = bundled_digits(image_size, test_fraction, limit_per_class, augment, seed)
        return Data("digits", task, train, test, classes, image_size, DIGITS_SOURCE, True,
                    describe_split("lab", test_fraction, seed))
    folder = root / name
    if not folder.is_dir():
        raise DataLayoutError(f"{root} has no {name}/ folder; expected a data directory laid out as {LAYOUT}")
    if name == "dehaze":
        train, test = load_dehaze(folder, image_size, test_fraction, limit_per_class, augment, seed)
        return Data(name, task, train, test, None, image_size, f"real: {folder}", False,
                    f"lab: the last {test_fraction:.0%} of the pairs by file name")
    if name == "vehicles":
        train, test, classes = load_vehicles(folder, image_size, test_fraction, limit_per_class, augment, seed,
                                             split)
        return Data(name, task, train, test, classes, image_size, f"real: {folder}", False,
                    describe_split(split, test_fraction, seed))
    train, test, classes = load_cifar10(folder, image_size, limit_per_class, augment, seed, cache_dir)
    return Data(name, task, train, test, classes, image_size, f"real: {folder}", False,
                "CIFAR-10's own train/test sets")


def describe_split(split, test_fraction, seed):
    if split == "lab":
        return f"lab: the last {test_fraction:.0%} of each class by file name"
    return f"random: stratified, {test_fraction:.0%} of each class, seed {seed}"


__all__ = ["DATASETS", "Data", "DataLayoutError", "ImagePairs", "LabelledImages", "UnreadableImageError",
           "UnreadableImageWarning", "bundled_dehaze", "bundled_digits", "load", "load_cifar10", "load_dehaze",
           "load_vehicles", "resolve_data_dir"]
