"""Data sets for the lab, from a data directory (`--data DIR` or CNNEXT_DATA) holding vehicles/, dehaze/ and
cifar10/, or, with neither, a synthetic stand-in generated in code and labelled as such everywhere.

    data = cnnext.data.load("vehicles", data_dir="/data", image_size=64)
    data.train, data.test, data.classes, data.source
"""
import os
from dataclasses import dataclass
from pathlib import Path

from .cifar10 import load_cifar10
from .dehaze import load_dehaze
from .images import DataLayoutError, ImagePairs, LabelledImages
from .synthetic import synthetic_classification, synthetic_dehaze
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
    synthetic: bool

    def summary(self):
        return {"dataset": self.name, "task": self.task, "synthetic": self.synthetic, "source": self.source,
                "classes": self.classes, "image_size": self.image_size,
                "train_samples": len(self.train), "test_samples": len(self.test)}


def resolve_data_dir(data_dir=None):
    """`data_dir`, else $CNNEXT_DATA, else None (synthetic data); a given directory must exist."""
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
         cache_dir=None):
    """The train/test split of data set `name` ('vehicles', 'cifar10', 'dehaze') as a Data record.

    limit_per_class caps samples per class (pairs for dehaze), for smoke tests; cache_dir keeps decoded CIFAR-10
    JPEGs on disk between runs (cnnext.data.cache). Without a data directory the
    synthetic stand-in of the same task is returned, with synthetic=True."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}, expected one of {list(DATASETS)}")
    root = resolve_data_dir(data_dir)
    task = "dehaze" if name == "dehaze" else "classification"
    if root is None:
        source = "synthetic: generated in code (no --data or CNNEXT_DATA given); NOT real images"
        count = limit_per_class or 100
        if task == "dehaze":
            train, test = synthetic_dehaze(image_size, count, test_fraction, augment, seed)
            return Data(name, task, train, test, None, image_size, source, True)
        train, test, classes = synthetic_classification(image_size, count, test_fraction, augment, seed)
        return Data(name, task, train, test, classes, image_size, source, True)
    folder = root / name
    if not folder.is_dir():
        raise DataLayoutError(f"{root} has no {name}/ folder; expected a data directory laid out as {LAYOUT}")
    if name == "dehaze":
        train, test = load_dehaze(folder, image_size, test_fraction, limit_per_class, augment, seed)
        return Data(name, task, train, test, None, image_size, f"real: {folder}", False)
    if name == "vehicles":
        train, test, classes = load_vehicles(folder, image_size, test_fraction, limit_per_class, augment, seed)
    else:
        train, test, classes = load_cifar10(folder, image_size, limit_per_class, augment, seed, cache_dir)
    return Data(name, task, train, test, classes, image_size, f"real: {folder}", False)


__all__ = ["DATASETS", "Data", "DataLayoutError", "ImagePairs", "LabelledImages", "load", "load_cifar10",
           "load_dehaze", "load_vehicles", "resolve_data_dir", "synthetic_classification", "synthetic_dehaze"]
