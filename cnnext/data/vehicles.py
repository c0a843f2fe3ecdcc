"""The lab's vehicle set: vehicles/<class>/*.jpg (car, bus, truck), any image size, resized to a square."""
from pathlib import Path

from sklearn.model_selection import train_test_split

from .images import DataLayoutError, image_files, labelled_images, split_last

SPLITS = ("lab", "random")

LAYOUT = "vehicles/<class>/*.jpg with one folder per class (e.g. vehicles/car, vehicles/bus, vehicles/truck)"


def class_files(root):
    """{class name: image files in name order} for the class folders of `root` (sorted by class name)."""
    root = Path(root)
    if not root.is_dir():
        raise DataLayoutError(f"vehicle data not found: {root} is not a directory; expected {LAYOUT}")
    classes = {folder.name: image_files(folder) for folder in sorted(root.iterdir())
               if folder.is_dir() and not folder.name.startswith(".")}
    classes = {name: files for name, files in classes.items() if files}
    if len(classes) < 2:
        raise DataLayoutError(f"{root} has {len(classes)} class folder(s) with images; expected {LAYOUT}")
    return classes


def split_files(root, test_fraction=0.2, limit_per_class=None, split="lab", seed=0):
    """(train, test) lists of (path, label) and the class names.

    split 'lab' (the lab's rule): per class the last `test_fraction` of the files in name order are the test
    set. split 'random': a stratified random split with the same fraction per class, seeded by `seed`
    (scikit-learn's train_test_split). `limit_per_class` keeps the first files of each part (smoke tests)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    classes = class_files(root)
    train, test = [], []
    for label, files in enumerate(classes.values()):
        if split == "lab":
            class_train, class_test = split_last(files, test_fraction)
        else:
            class_train, class_test = train_test_split(files, test_size=max(1, round(len(files) * test_fraction)),
                                                       random_state=seed + label)
            class_train, class_test = sorted(class_train), sorted(class_test)
        if limit_per_class:
            test_limit = max(1, round(limit_per_class * test_fraction))
            class_train, class_test = class_train[:limit_per_class - test_limit], class_test[:test_limit]
        train += [(path, label) for path in class_train]
        test += [(path, label) for path in class_test]
    return train, test, list(classes)


def load_vehicles(root, image_size=64, test_fraction=0.2, limit_per_class=None, augment=False, seed=0,
                  split="lab"):
    """(train set, test set, class names) for the vehicle folders under `root`; see split_files."""
    train, test, classes = split_files(root, test_fraction, limit_per_class, split, seed)

    def dataset(samples, augment):
        paths, labels = zip(*samples)
        return labelled_images(paths, labels, image_size, augment, seed)

    return dataset(train, augment), dataset(test, False), classes
