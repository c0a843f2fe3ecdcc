"""CIFAR-10 pipeline: the decoded-image cache (hit, rebuild on change, damaged files), whole-batch augmentation,
the speedrun network's whitening layer, and `--quick` runs of the cifar and speedrun experiments on a few hundred
JPEGs in the CIFAR-10 folder layout."""
import json
import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from cnnext.data import cache as cache_module
from cnnext.data import load_cifar10
from cnnext.data.augment import AugmentedBatches, channel_stats, normalize, random_crop
from cnnext.data.cache import cache_file_for, cached_images, resolve_cache_dir
from cnnext.models.speedrun_net import SpeedrunNet
from test_cli import run

CLASSES = ["cat", "dog"]


def _write_jpeg(path, rng, size=32):
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path, quality=90)


@pytest.fixture
def cifar_dir(tmp_path):
    """tmp/cifar10/{train,test}/{cat,dog}/*.jpg: 120 train and 30 test images per class (300 in all)."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 120), ("test", 30)):
        for name in CLASSES:
            folder = tmp_path / "cifar10" / split / name
            folder.mkdir(parents=True)
            for index in range(count):
                _write_jpeg(folder / f"{index:04d}.jpg", rng)
    return tmp_path


def _train_paths(root):
    return sorted((root / "cifar10" / "train").glob("*/*.jpg"))


def test_cache_is_written_once_then_read_without_decoding(cifar_dir, tmp_path, monkeypatch):
    paths, cache_file = _train_paths(cifar_dir), tmp_path / "cache" / "train.npy"
    first = cached_images(paths, 32, cache_file)[0]
    assert first.shape == (240, 3, 32, 32) and first.dtype == torch.uint8
    assert cache_file.is_file() and cache_file.with_suffix(".json").is_file()
    assert not [p for p in cache_file.parent.iterdir() if p.name.endswith(".tmp")]

    def no_decoding(*args):
        raise AssertionError("decoded although the cache is valid")
    monkeypatch.setattr(cache_module.load_stack, "__wrapped__", no_decoding)
    assert torch.equal(cached_images(paths, 32, cache_file)[0], first)


def test_cache_matches_direct_decoding(cifar_dir, tmp_path):
    paths = _train_paths(cifar_dir)
    expected = np.asarray(Image.open(paths[7]).convert("RGB")).transpose(2, 0, 1)
    assert np.array_equal(cached_images(paths, 32, tmp_path / "c.npy")[0][7].numpy(), expected)


def test_cache_is_rebuilt_when_a_source_file_changes(cifar_dir, tmp_path):
    paths, cache_file = _train_paths(cifar_dir), tmp_path / "train.npy"
    before = cached_images(paths, 32, cache_file)[0]
    _write_jpeg(paths[3], np.random.default_rng(99))
    os.utime(paths[3], ns=(1, 1))   # a different modification time even on coarse file systems
    with pytest.warns(UserWarning, match="changed"):
        after = cached_images(paths, 32, cache_file)[0]
    assert not torch.equal(after[3], before[3]) and torch.equal(after[4], before[4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # and the rebuilt cache is valid again
        assert torch.equal(cached_images(paths, 32, cache_file)[0], after)


def test_cache_is_rebuilt_when_files_are_added(cifar_dir, tmp_path):
    paths, cache_file = _train_paths(cifar_dir), tmp_path / "train.npy"
    cached_images(paths[:-1], 32, cache_file)[0]
    with pytest.warns(UserWarning, match="changed"):
        assert len(cached_images(paths, 32, cache_file)[0]) == len(paths)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong shape", "no meta"])
def test_damaged_cache_is_rebuilt(cifar_dir, tmp_path, damage):
    paths, cache_file = _train_paths(cifar_dir), tmp_path / "train.npy"
    expected = cached_images(paths, 32, cache_file)[0]
    if damage == "truncate":
        cache_file.write_bytes(cache_file.read_bytes()[:5000])
    elif damage == "garbage":
        cache_file.write_bytes(b"not a numpy file at all")
    elif damage == "wrong shape":
        np.save(cache_file, np.zeros((3, 3, 32, 32), dtype=np.uint8))
    else:
        cache_file.with_suffix(".json").unlink()
    if damage == "no meta":
        images = cached_images(paths, 32, cache_file)[0]
    else:
        with pytest.warns(UserWarning, match="decoding again"):
            images = cached_images(paths, 32, cache_file)[0]
    assert torch.equal(images, expected)
    assert json.loads(cache_file.with_suffix(".json").read_text())["shape"] == [240, 3, 32, 32]


def test_cache_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNEXT_CACHE", str(tmp_path / "env"))
    assert resolve_cache_dir() == tmp_path / "env"
    assert resolve_cache_dir(tmp_path / "given") == tmp_path / "given"
    monkeypatch.delenv("CNNEXT_CACHE")
    assert resolve_cache_dir().name == "cnnext"
    one, other = cache_file_for("cifar10", tmp_path / "a", "train", 32), cache_file_for("cifar10", tmp_path / "b",
                                                                                        "train", 32)
    assert one != other and one.suffix == ".npy"


def test_load_cifar10_with_cache_equals_without(cifar_dir, tmp_path):
    cached = load_cifar10(cifar_dir / "cifar10", cache_dir=tmp_path / "cache")
    direct = load_cifar10(cifar_dir / "cifar10")
    assert cached[2] == direct[2] == CLASSES
    for a, b in zip(cached[:2], direct[:2]):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2


# ----------------------------------------------------------------------------------------------- augmentation

def test_random_crop_takes_windows_of_the_padded_images():
    images = torch.arange(6 * 3 * 8 * 8, dtype=torch.float32).view(6, 3, 8, 8)
    padded = torch.nn.functional.pad(images, (2,) * 4)
    crops = random_crop(padded, 8, torch.Generator().manual_seed(0))
    for crop, source in zip(crops, padded):
        windows = [source[:, top:top + 8, left:left + 8] for top in range(5) for left in range(5)]
        assert any(torch.equal(crop, window) for window in windows)
    assert torch.equal(random_crop(images, 8, torch.Generator()), images)


def test_alternating_flips_see_both_orientations_in_two_epochs():
    images = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    batches = AugmentedBatches(images, torch.arange(40), batch_size=40, translate=0, flip="alternating")
    seen = {}
    for epoch in range(2):
        (inputs, labels), = list(batches.epoch(epoch))
        for image, label in zip(inputs, labels.tolist()):
            original = normalize(images[label:label + 1], batches.mean, batches.std)[0]
            seen.setdefault(label, []).append(torch.equal(image, original.flip(-1)))
    assert all(flips[0] != flips[1] for flips in seen.values())
    assert 5 < sum(flips[0] for flips in seen.values()) < 35


def test_batches_cover_the_set_and_are_normalised():
    images = torch.randint(0, 256, (100, 3, 8, 8), dtype=torch.uint8)
    batches = AugmentedBatches(images, torch.arange(100), batch_size=32, translate=1)
    parts = list(batches.epoch(0))
    assert len(parts) == len(batches) == 4
    assert sorted(torch.cat([labels for _, labels in parts]).tolist()) == list(range(100))
    mean, std = channel_stats(torch.cat([inputs for inputs, _ in parts]))
    assert mean.abs().max() < 0.1 and (std - 1).abs().max() < 0.1
    with pytest.raises(ValueError, match="flip"):
        AugmentedBatches(images, torch.arange(100), 32, flip="sometimes")


# ----------------------------------------------------------------------------------------------- network

def test_whitening_layer_decorrelates_patches():
    torch.manual_seed(0)
    base = torch.randn(64, 1, 32, 32)
    images = torch.cat([base, 0.8 * base + 0.2 * torch.randn(64, 1, 32, 32), torch.randn(64, 1, 32, 32)], 1)
    net = SpeedrunNet(num_classes=3, widths=(8, 8, 8), backend="cnnext")
    net.init_whitening(images, eps=0)
    features = net.whiten(images) - net.whiten.bias.view(1, -1, 1, 1)
    half = features[:, :12].transpose(0, 1).reshape(12, -1)
    covariance = half @ half.T / half.shape[1]
    assert torch.allclose(covariance, torch.eye(12), atol=0.05)
    assert net(images).shape == (64, 3)


def test_speedrun_net_backends_agree():
    torch.manual_seed(0)
    images = torch.randn(4, 3, 32, 32)
    cnnext_net = SpeedrunNet(widths=(8, 16, 16), backend="cnnext")
    torch_net = SpeedrunNet(widths=(8, 16, 16), backend="torch")
    torch_net.load_state_dict(cnnext_net.state_dict())
    cnnext_net.eval(), torch_net.eval()
    assert torch.allclose(cnnext_net(images), torch_net(images), atol=1e-4)


# ----------------------------------------------------------------------------------------------- experiments

@pytest.mark.parametrize("name,backend", [("speedrun", "cnnext"), ("speedrun", "torch"), ("cifar", "cnnext")])
def test_quick_run_on_cifar_layout_uses_the_cache(name, backend, cifar_dir, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    run.main([name, "--quick", "--threads", "1", "--data", str(cifar_dir), "--cache", str(cache), "--out", str(out),
              "--backend", backend])
    metrics = json.loads((out / "metrics.json").read_text())
    assert not metrics["bundled_data"] and metrics["data"]["classes"] == CLASSES
    assert metrics["environment"]["backend"] == backend and (out / "report.md").is_file()
    assert len(list(cache.glob("*.npy"))) == 2
    for record in metrics["runs"]:
        assert len(record["history"]) == 2 and record["load"]["samples"]
    if name == "speedrun":
        (record,) = metrics["runs"]
        assert set(record["timers_s"]) >= {"data", "forward_backward", "optimizer", "evaluation"}
        assert 0 <= record["final_tta"]["test_accuracy"] <= 1 and (out / "accuracy_vs_time.png").is_file()
    else:
        assert [r["name"] for r in metrics["runs"]] == ["hdc-1-2-5", "resnet18"]
        assert "82.92%" in (out / "report.md").read_text()


def test_speedrun_compares_backends_seed_by_seed(cifar_dir, tmp_path):
    out = tmp_path / "out"
    run.main(["speedrun", "--quick", "--threads", "1", "--data", str(cifar_dir), "--cache", str(tmp_path / "cache"),
              "--out", str(out), "--seeds", "2", "--compare-torch"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert [(r["backend"], r["seed"]) for r in metrics["runs"]] == [("cnnext", 0), ("torch", 0), ("cnnext", 1),
                                                                     ("torch", 1)]
    assert metrics["backends"] == ["cnnext", "torch"] and metrics["seeds"] == [0, 1]
    report = (out / "report.md").read_text()
    assert "Training time torch / cnnext" in report and "speedrun-torch-seed1" in report
    assert (out / "speedrun-cnnext-seed1" / "checkpoint.pt").is_file()


def test_speedrun_trains_in_bfloat16_when_asked(cifar_dir, tmp_path):
    out = tmp_path / "out"
    run.main(["speedrun", "--quick", "--threads", "1", "--data", str(cifar_dir), "--cache", str(tmp_path / "cache"),
              "--out", str(out), "--precision", "bfloat16"])
    assert json.loads((out / "metrics.json").read_text())["settings"]["precision"] == "bfloat16"
    assert "bfloat16 mixed precision" in (out / "report.md").read_text()


@pytest.mark.parametrize("option", ["--epochs", "--batch-size"])
def test_speedrun_rejects_zero_epochs_or_batch(option, tmp_path, monkeypatch):
    monkeypatch.delenv("CNNEXT_DATA", raising=False)
    with pytest.raises(SystemExit, match=f"{option} must be at least 1, got 0"):
        run.main(["speedrun", "--quick", option, "0", "--out", str(tmp_path)])
