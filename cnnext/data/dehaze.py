"""Dehazing pairs: dehaze/hazy/NAME and dehaze/clear/NAME are one (input, target) pair, resized to a square."""
from pathlib import Path

from .images import DataLayoutError, ImagePairs, image_files, limit_parts, load_stack, split_last

LAYOUT = "dehaze/hazy/*.jpg and dehaze/clear/*.jpg, paired by identical file names"


def pair_files(root):
    """[(hazy path, clear path)] in file-name order; every hazy image needs its clear twin and vice versa."""
    root = Path(root)
    hazy_dir, clear_dir = root / "hazy", root / "clear"
    if not hazy_dir.is_dir() or not clear_dir.is_dir():
        raise DataLayoutError(f"dehaze data not found under {root}: expected {LAYOUT}")
    hazy = {p.name: p for p in image_files(hazy_dir)}
    clear = {p.name: p for p in image_files(clear_dir)}
    unpaired = sorted(set(hazy) ^ set(clear))
    if unpaired:
        raise DataLayoutError(f"{root}: {len(unpaired)} image(s) without a partner, e.g. {unpaired[:3]}; "
                              f"expected {LAYOUT}")
    if not hazy:
        raise DataLayoutError(f"{root}: no image pairs found; expected {LAYOUT}")
    return [(hazy[name], clear[name]) for name in sorted(hazy)]


def load_dehaze(root, image_size=128, test_fraction=0.2, limit=None, augment=False, seed=0):
    """(train set, test set) of (hazy, clear) pairs; the last `test_fraction` of the pairs is the test set.
    A pair with an unreadable image is left out with a warning naming the file."""
    train, test = limit_parts(*split_last(pair_files(root), test_fraction), limit, test_fraction)

    def dataset(pairs, augment):
        hazy, hazy_kept, hazy_skipped = load_stack(tuple(path for path, _ in pairs), image_size)
        clear, clear_kept, clear_skipped = load_stack(tuple(path for _, path in pairs), image_size)
        kept = sorted(set(hazy_kept) & set(clear_kept))  # a pair with an unreadable image is left out whole
        return ImagePairs(hazy[[hazy_kept.index(i) for i in kept]], clear[[clear_kept.index(i) for i in kept]],
                          augment, seed, hazy_skipped + clear_skipped)

    return dataset(train, augment), dataset(test, False)
