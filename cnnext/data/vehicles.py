"""The lab's vehicle set: vehicles/<class>/*.jpg (car, bus, truck), any image size, resized to a square."""
from pathlib import Path

from .images import DataLayoutError, image_files, labelled_images, split_last

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


def split_files(root, test_fraction=0.2, limit_per_class=None):
    """(train, test) lists of (path, label) and the class names; per class the last `test_fraction` of the
    files in name order are the test set. `limit_per_class` keeps the first files of each part (smoke tests)."""
    classes = class_files(root)
    train, test = [], []
    for label, files in enumerate(classes.values()):
        class_train, class_test = split_last(files, test_fraction)
        if limit_per_class:
            test_limit = max(1, round(limit_per_class * test_fraction))
            class_train, class_test = class_train[:limit_per_class - test_limit], class_test[:test_limit]
        train += [(path, label) for path in class_train]
        test += [(path, label) for path in class_test]
    return train, test, list(classes)


def load_vehicles(root, image_size=64, test_fraction=0.2, limit_per_class=None, augment=False, seed=0):
    """(train set, test set, class names) for the vehicle folders under `root`."""
    train, test, classes = split_files(root, test_fraction, limit_per_class)

    def dataset(samples, augment):
        paths, labels = zip(*samples)
        return labelled_images(paths, labels, image_size, augment, seed)

    return dataset(train, augment), dataset(test, False), classes
