"""Data loaders: counts and splits on the real data (skipped without CNNEXT_DATA), both CIFAR-10 layouts,
the bundled stand-ins, and clear errors for missing or malformed data directories."""
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from cnnext import data as datasets
from cnnext.data import DataLayoutError, ImagePairs, UnreadableImageError, UnreadableImageWarning, load
from cnnext.data.dehaze import pair_files
from cnnext.data.haze import add_haze, depth_like_map, random_haze, transmission_from_depth
from cnnext.data.images import decode, split_last
from cnnext.data.vehicles import class_files, split_files
from cnnext.train import psnr_per_image

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
    assert not data.bundled and data.source.startswith("real")
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


def test_image_pairs_crop_the_same_window_of_input_and_target():
    inputs = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8).to(torch.uint8)
    pairs = ImagePairs(inputs, inputs.clone(), augment=True, seed=1, crop=5)
    windows = set()
    for _ in range(20):
        hazy, clear = pairs[1]
        assert hazy.shape == (3, 5, 5) and torch.equal(hazy, clear)
        windows.add(hazy[0, 0, 0].item())
    assert len(windows) > 3  # random windows
    with pytest.raises(ValueError, match="crop must be between 1 and the image size"):
        ImagePairs(inputs, inputs, crop=9)


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


# --------------------------------------------------------------------------------------------- bundled

def test_bundled_digits_are_the_default_and_labelled(monkeypatch):
    monkeypatch.delenv("CNNEXT_DATA", raising=False)
    data = load("vehicles", image_size=16)
    assert data.bundled and data.summary()["bundled"] and data.source.startswith("bundled")
    assert "load_digits" in data.source and data.name == "digits" and data.classes == [str(d) for d in range(10)]
    assert len(data.train) + len(data.test) == 1797
    counts = torch.bincount(data.test.labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # the last 20% of each class (about 180 per class)
    image, label = data.train[0]
    assert image.shape == (3, 16, 16) and -1 <= image.min() < 0 < image.max() <= 1
    assert torch.equal(image[0], image[1])  # grey digits on all three channels
    small = load("cifar10", image_size=8, limit_per_class=5)
    assert small.bundled and len(small.train) == 40 and len(small.test) == 10


def test_bundled_dehaze_pairs_are_hazed_photos(monkeypatch):
    monkeypatch.delenv("CNNEXT_DATA", raising=False)
    data = load("dehaze", image_size=24, limit_per_class=30)
    assert data.bundled and "load_sample_images" in data.source and data.task == "dehaze"
    assert (len(data.train), len(data.test)) == (24, 6)
    again = load("dehaze", image_size=24, limit_per_class=30, seed=5)
    assert torch.equal(data.test.inputs, again.test.inputs)  # fixed pairs, like a data folder
    hazy, clear = data.train.inputs.float(), data.train.targets.float()
    assert hazy.shape == clear.shape == (24, 3, 24, 24)
    assert hazy.std((1, 2, 3)).mean() < clear.std((1, 2, 3)).mean()  # haze lowers contrast
    assert 8 < psnr_per_image(hazy / 255, clear / 255).mean() < 25


# ----------------------------------------------------------------------------------------- haze model

def test_haze_model_limits_and_monotonicity():
    rng = np.random.default_rng(0)
    clear = rng.uniform(0, 1, (3, 8, 8))
    assert np.allclose(add_haze(clear, np.ones((8, 8)), 0.9), clear)  # t = 1: the scene itself
    assert np.allclose(add_haze(clear, np.zeros((8, 8)), 0.9), 0.9)   # t = 0: only airlight
    airlight = np.array([0.8, 0.9, 1.0])[:, None, None]
    light, heavy = (add_haze(clear, np.full((8, 8), t), airlight) for t in (0.8, 0.3))
    assert (np.abs(heavy - airlight) <= np.abs(light - airlight) + 1e-12).all()  # less t: closer to A
    assert np.allclose(transmission_from_depth(np.zeros(4), 2.0), 1)
    assert np.all(np.diff(transmission_from_depth(np.linspace(0, 1, 5), 1.5)) < 0)
    with pytest.raises(ValueError, match="transmission must lie in"):
        add_haze(clear, np.full((8, 8), 1.5), 0.9)


def test_random_haze_stays_in_range_and_brightens_dark_scenes():
    rng = np.random.default_rng(1)
    depth = depth_like_map(16, rng)
    assert depth.shape == (16, 16) and depth.min() >= 0 and depth.max() <= 1 + 1e-6
    dark = np.full((3, 16, 16), 0.1)
    hazy = random_haze(dark, rng)
    assert hazy.shape == dark.shape and 0 <= hazy.min() and hazy.max() <= 1 and hazy.mean() > 0.1


def test_data_dir_comes_from_the_environment(tmp_path, monkeypatch):
    for index in range(3):
        write_image(tmp_path / "vehicles" / "bus" / f"{index}.png")
        write_image(tmp_path / "vehicles" / "car" / f"{index}.png")
    monkeypatch.setenv("CNNEXT_DATA", str(tmp_path))
    assert datasets.resolve_data_dir() == tmp_path
    assert not load("vehicles", image_size=8).bundled


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


# ------------------------------------------------------------------------------------------ bad images

def write_bad_images(folder):
    """An empty file, a truncated JPEG and a text file named .png in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jpg").write_bytes(b"")
    write_image(folder / "whole.jpg", size=(64, 64))
    (folder / "truncated.jpg").write_bytes((folder / "whole.jpg").read_bytes()[:300])
    (folder / "whole.jpg").unlink()
    (folder / "notes.png").write_text("not an image")
    return ["empty.jpg", "notes.png", "truncated.jpg"]


@pytest.mark.parametrize("name", ["empty.jpg", "truncated.jpg", "notes.png"])
def test_decoding_a_bad_file_names_it(tmp_path, name):
    write_bad_images(tmp_path)
    with pytest.raises(UnreadableImageError, match=f"{name}: not a readable image") as error:
        decode(tmp_path / name, 8)
    assert error.value.__cause__ is None and isinstance(error.value, DataLayoutError)


def test_vehicles_skip_unreadable_files_with_a_warning_and_a_count(tmp_path):
    for index in range(5):
        write_image(tmp_path / "vehicles" / "bus" / f"{index}.jpg")
        write_image(tmp_path / "vehicles" / "car" / f"{index}.jpg", colour=(10, 200, 10))
    bad = write_bad_images(tmp_path / "vehicles" / "car")
    with pytest.warns(UnreadableImageWarning) as record:
        data = load("vehicles", tmp_path, image_size=8, test_fraction=0.25)
    messages = [str(w.message) for w in record]
    for name in bad:
        assert any(name in message and "not a readable image" in message for message in messages)
    counts = [int(m.split()[1]) for m in messages if m.startswith("skipped ") and "unreadable of" in m]
    assert sum(counts) == 3  # one count per loaded part (train, test)
    assert sorted(path.name for path in data.skipped) == bad
    assert data.summary()["skipped_files"] and len(data.train) + len(data.test) == 10
    assert torch.bincount(torch.cat([data.train.labels, data.test.labels])).tolist() == [5, 5]


def test_a_class_of_only_unreadable_files_stops(tmp_path):
    write_image(tmp_path / "vehicles" / "bus" / "0.jpg")
    write_bad_images(tmp_path / "vehicles" / "car")
    with pytest.raises(UnreadableImageError, match="none of the .* image files is readable"):
        with pytest.warns(UnreadableImageWarning):
            load("vehicles", tmp_path, image_size=8, test_fraction=0.5)


def test_dehaze_drops_a_pair_with_an_unreadable_image(tmp_path):
    for index in range(6):
        write_image(tmp_path / "dehaze" / "hazy" / f"{index}.jpg", colour=(180, 180, 180))
        write_image(tmp_path / "dehaze" / "clear" / f"{index}.jpg")
    (tmp_path / "dehaze" / "clear" / "1.jpg").write_bytes(b"")
    (tmp_path / "dehaze" / "hazy" / "2.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.warns(UnreadableImageWarning, match=r"1\.jpg: not a readable image \(empty file\)"):
        data = load("dehaze", tmp_path, image_size=8, test_fraction=0.2)
    assert (len(data.train), len(data.test)) == (3, 1)
    assert sorted(str(path.relative_to(tmp_path)) for path in data.skipped) == ["dehaze/clear/1.jpg",
                                                                                "dehaze/hazy/2.jpg"]
    hazy, clear = data.train[0]
    assert hazy.mean() > clear.mean() - 1 and hazy.shape == clear.shape  # pairs stay aligned


def test_cifar10_folders_skip_unreadable_files(tmp_path):
    for part in ("train", "test"):
        for name in ("cat", "dog"):
            for index in range(2):
                write_image(tmp_path / "cifar10" / part / name / f"{index}.png")
    write_bad_images(tmp_path / "cifar10" / "train" / "dog")
    with pytest.warns(UnreadableImageWarning, match="skipped 3 unreadable of 7"):
        data = load("cifar10", tmp_path, image_size=8)
    assert len(data.train) == 4 and len(data.test) == 4 and len(data.skipped) == 3
    assert data.train.labels.tolist() == [0, 0, 1, 1]
