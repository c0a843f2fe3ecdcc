"""Data loaders: counts and splits on the real data (skipped without CNNEXT_DATA), both CIFAR-10 layouts,
the synthetic stand-ins, and clear errors for missing or malformed data directories."""
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from cnnext import data as datasets
from cnnext.data import DataLayoutError, load
from cnnext.data.dehaze import pair_files
from cnnext.data.images import split_last
from cnnext.data.vehicles import class_files, split_files

VEHICLE_COUNTS = {"bus": 218, "car": 779, "truck": 360}


def write_image(path, size=(20, 16), colour=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


# ----------------------------------------------------------------------------------------------- real data

def test_vehicle_counts_and_last_fraction_split(data_dir):
    classes = class_files(data_dir / "vehicles")
    assert {name: len(files) for name, files in classes.items()} == VEHICLE_COUNTS
    train, test, names = split_files(data_dir / "vehicles", test_fraction=0.2)
    assert names == sorted(VEHICLE_COUNTS)
    for label, name in enumerate(names):
        files = classes[name]
        test_count = round(len(files) * 0.2)
        assert [p for p, l in test if l == label] == files[-test_count:]  # the last 20% by file name
        assert [p for p, l in train if l == label] == files[:-test_count]
    assert len(train) + len(test) == sum(VEHICLE_COUNTS.values())
    assert len(test) == round(779 * 0.2) + round(218 * 0.2) + round(360 * 0.2)


def test_vehicle_loader_on_real_images(data_dir):
    data = load("vehicles", data_dir, image_size=32, test_fraction=0.3)
    assert not data.synthetic and data.source.startswith("real")
    assert len(data.test) == sum(round(n * 0.3) for n in VEHICLE_COUNTS.values())
    assert len(data.train) + len(data.test) == 1357
    image, label = data.train[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert -1 <= image.min() and image.max() <= 1
    assert torch.bincount(data.test.labels).tolist() == [round(VEHICLE_COUNTS[n] * 0.3) for n in data.classes]


def test_dehaze_pairs_on_real_images(data_dir):
    pairs = pair_files(data_dir / "dehaze")
    assert len(pairs) == 520
    assert all(hazy.name == clear.name for hazy, clear in pairs)
    data = load("dehaze", data_dir, image_size=24)
    assert (len(data.train), len(data.test)) == (416, 104)
    hazy, clear = data.test[0]
    assert hazy.shape == clear.shape == (3, 24, 24) and 0 <= hazy.min() and hazy.max() <= 1


def test_cifar10_folder_layout_on_real_images(data_dir):
    data = load("cifar10", data_dir, image_size=32, limit_per_class=3)
    assert len(data.classes) == 10 and "airplane" in data.classes
    assert (len(data.train), len(data.test)) == (30, 30)
    assert data.train[0][0].shape == (3, 32, 32)


# --------------------------------------------------------------------------------------- layouts in tmp

def test_cifar10_pickle_layout(tmp_path):
    batches = tmp_path / "cifar10" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), b"labels": [i % 10 for i in range(20)]}
        (batches / name).write_bytes(pickle.dumps(batch))
    (batches / "batches.meta").write_bytes(pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}))
    data = load("cifar10", tmp_path, image_size=16)
    assert data.classes == [f"c{i}" for i in range(10)]
    assert (len(data.train), len(data.test)) == (100, 20)
    assert data.train[0][0].shape == (3, 16, 16)
    assert len(load("cifar10", tmp_path, image_size=32, limit_per_class=1).train) == 10


def test_vehicles_any_size_resized_and_non_images_skipped(tmp_path):
    for name in ("bus", "car"):
        for index in range(5):
            write_image(tmp_path / "vehicles" / name / f"{name}{index}.jpg", size=(30 + 7 * index, 21))
        (tmp_path / "vehicles" / name / "notes.txt").write_text("not an image")
        (tmp_path / "vehicles" / name / ".DS_Store").write_bytes(b"\0")
    data = load("vehicles", tmp_path, image_size=12, test_fraction=0.4)
    assert data.classes == ["bus", "car"]
    assert (len(data.train), len(data.test)) == (6, 4)
    assert data.test[0][0].shape == (3, 12, 12)


def fake_vehicles(root, counts={"bus": 10, "car": 25, "truck": 15}):
    for name, count in counts.items():
        for index in range(count):
            write_image(root / "vehicles" / name / f"{name}{index:03d}.jpg", colour=(index * 9, 40, 90))
    return root / "vehicles"


def test_random_split_is_stratified_seeded_and_disjoint(tmp_path):
    root = fake_vehicles(tmp_path)
    lab_train, lab_test, _ = split_files(root, 0.2, split="lab")
    train, test, classes = split_files(root, 0.2, split="random", seed=3)
    assert not {p for p, _ in train} & {p for p, _ in test}
    assert sorted(train + test) == sorted(lab_train + lab_test)
    for label in range(len(classes)):   # the same number per class as the lab's rule
        assert sum(l == label for _, l in test) == sum(l == label for _, l in lab_test)
    assert set(test) != set(lab_test)
    assert split_files(root, 0.2, split="random", seed=3) == (train, test, classes)
    assert split_files(root, 0.2, split="random", seed=4)[1] != test


def test_load_records_the_split(tmp_path):
    fake_vehicles(tmp_path)
    random = load("vehicles", tmp_path, 16, split="random", seed=2)
    assert random.split == "random: stratified, 20% of each class, seed 2"
    assert load("vehicles", tmp_path, 16).split == "lab: the last 20% of each class by file name"
    with pytest.raises(ValueError, match="split must be one of"):
        split_files(tmp_path / "vehicles", split="shuffled")


def test_split_last_rejects_a_bad_fraction():
    assert split_last(list(range(10)), 0.3) == (list(range(7)), [7, 8, 9])
    with pytest.raises(ValueError, match="test_fraction"):
        split_last([1, 2, 3], 1.5)


# ------------------------------------------------------------------------------------------- synthetic

def test_synthetic_default_is_labelled_and_deterministic(monkeypatch):
    monkeypatch.delenv("CNNEXT_DATA", raising=False)
    first, second = load("vehicles", image_size=16, seed=3), load("vehicles", image_size=16, seed=3)
    assert first.synthetic and "synthetic" in first.source and first.summary()["synthetic"]
    assert torch.equal(first.train.images, second.train.images)
    dehaze = load("dehaze", image_size=16)
    assert dehaze.synthetic and dehaze.task == "dehaze"
    hazy, clear = dehaze.train[0]
    assert hazy.shape == clear.shape == (3, 16, 16) and hazy.mean() > clear.mean()  # haze brightens


def test_data_dir_comes_from_the_environment(tmp_path, monkeypatch):
    for index in range(3):
        write_image(tmp_path / "vehicles" / "bus" / f"{index}.png")
        write_image(tmp_path / "vehicles" / "car" / f"{index}.png")
    monkeypatch.setenv("CNNEXT_DATA", str(tmp_path))
    assert datasets.resolve_data_dir() == tmp_path
    assert not load("vehicles", image_size=8).synthetic


# ---------------------------------------------------------------------------------------------- errors

def test_missing_data_directory_names_the_expected_layout(tmp_path):
    with pytest.raises(DataLayoutError, match="does not exist.*vehicles/<class>"):
        load("vehicles", tmp_path / "nowhere")


def test_data_directory_without_the_dataset_folder(tmp_path):
    with pytest.raises(DataLayoutError, match="has no dehaze/ folder"):
        load("dehaze", tmp_path)


def test_vehicles_with_a_single_class(tmp_path):
    write_image(tmp_path / "vehicles" / "car" / "1.jpg")
    (tmp_path / "vehicles" / "bus").mkdir()
    with pytest.raises(DataLayoutError, match="1 class folder.*one folder per class"):
        load("vehicles", tmp_path)


def test_dehaze_with_unpaired_images(tmp_path):
    write_image(tmp_path / "dehaze" / "hazy" / "001.jpg")
    write_image(tmp_path / "dehaze" / "hazy" / "002.jpg")
    write_image(tmp_path / "dehaze" / "clear" / "001.jpg")
    with pytest.raises(DataLayoutError, match="without a partner.*002.jpg"):
        load("dehaze", tmp_path)
    (tmp_path / "dehaze" / "clear").rename(tmp_path / "dehaze" / "targets")
    with pytest.raises(DataLayoutError, match="hazy/.*clear/"):
        load("dehaze", tmp_path)


def test_cifar10_with_neither_layout(tmp_path):
    (tmp_path / "cifar10" / "train").mkdir(parents=True)
    with pytest.raises(DataLayoutError, match="cifar-10-batches-py"):
        load("cifar10", tmp_path)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        load("mnist")
