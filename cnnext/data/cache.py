"""A disk cache of decoded image sets: one uint8 .npy per split (N x 3 x size x size) in a user-chosen directory,
with a .json beside it naming the source it was decoded from. The cache is rebuilt when the source changes (file
list, sizes or modification times), when it is unreadable, or when it does not match what it claims to hold.
Writes are atomic (temporary file + rename), so an interrupted run never leaves a half-written cache behind.

    images, kept, skipped = cached_images(paths, 32, cache_file_for("cifar10", root, "train", 32))
"""
import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from .images import load_stack

CACHE_ENV = "CNNEXT_CACHE"
DEFAULT_CACHE = Path("~/.cache/cnnext")


def resolve_cache_dir(cache_dir=None):
    """`cache_dir`, else $CNNEXT_CACHE, else ~/.cache/cnnext (created when first written)."""
    return Path(cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def cache_file_for(name, root, split, size, limit_per_class=None, cache_dir=None):
    """The .npy path that caches split `split` of data set `name` read from `root` at `size` pixels."""
    source = f"{Path(root).resolve()}|{limit_per_class}"
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    return resolve_cache_dir(cache_dir) / f"{name}-{split}-{size}px-{digest}.npy"


def source_fingerprint(paths, size):
    """Hash of the file list with each file's size and modification time, and the decode size."""
    digest = hashlib.sha256(f"size={size}\n".encode())
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _meta_file(cache_file):
    return Path(cache_file).with_suffix(".json")


def _atomic_write(path, write):
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as file:
            write(file)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def _read(cache_file, fingerprint, count, size):
    """The cached array, or None (with the reason warned) when it is missing, stale or damaged."""
    meta_file = _meta_file(cache_file)
    if not meta_file.is_file() or not cache_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text())
        if meta.get("fingerprint") != fingerprint:
            warnings.warn(f"{cache_file}: the source images changed since it was written; decoding again")
            return None
        images = np.load(cache_file, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        warnings.warn(f"{cache_file}: unreadable cache ({error}); decoding again")
        return None
    if images.dtype != np.uint8 or images.shape != (count, 3, size, size):
        warnings.warn(f"{cache_file}: holds {images.dtype} {images.shape}, expected uint8 {(count, 3, size, size)}; "
                      f"decoding again")
        return None
    return images


def _write(cache_file, images, fingerprint, paths):
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    meta_file = _meta_file(cache_file)
    meta_file.unlink(missing_ok=True)  # no meta = no cache: a crash below leaves nothing that looks valid
    _atomic_write(cache_file, lambda file: np.save(file, images, allow_pickle=False))
    meta = {"fingerprint": fingerprint, "shape": list(images.shape), "files": len(paths),
            "first": str(paths[0]) if paths else None, "last": str(paths[-1]) if paths else None}
    _atomic_write(meta_file, lambda file: file.write(json.dumps(meta, indent=1).encode()))


def cached_images(paths, size, cache_file, description="decoding"):
    """(uint8 tensor [N, 3, size, size], indices of the readable paths, unreadable paths), as load_stack gives them:
    read from `cache_file` (.npy) when it was written from the same files, else decoded (with a progress bar) and
    written there. A set with unreadable files is not cached (each run warns about them again)."""
    paths, cache_file = [str(p) for p in paths], Path(cache_file)
    fingerprint = source_fingerprint(paths, size)
    images = _read(cache_file, fingerprint, len(paths), size)
    if images is not None:
        return torch.from_numpy(images), tuple(range(len(paths))), ()
    # the disk cache is the cache here: load_stack's in-process memo would serve a changed file's old pixels
    stack, kept, skipped = load_stack.__wrapped__(tuple(paths), size, description)
    if not skipped:
        try:
            _write(cache_file, stack.numpy(), fingerprint, paths)
        except OSError as error:
            warnings.warn(f"could not write the image cache {cache_file} ({error}); continuing without it")
    return stack, kept, skipped
