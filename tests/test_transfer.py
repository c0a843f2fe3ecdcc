"""Pretraining on CIFAR-10 before the vehicles (experiments/pretrain.py, `--pretrain`, the `transfer`
experiment): the weights carry over except the classifier, are cached and reused, and missing data is a clear
error."""
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from experiments.pretrain import load_matching
from tests.test_cli import run


def write_jpegs(folder, count, rng, size=24):
    folder.mkdir(parents=True)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{index:04d}.jpg")


@pytest.fixture
def data_with_cifar(tmp_path):
    """tmp/data/vehicles/{bus,car,truck}/ and tmp/data/cifar10/{train,test}/{cat,dog}/."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for name in ("bus", "car", "truck"):
        write_jpegs(root / "vehicles" / name, 10, rng)
    for split, count in (("train", 14), ("test", 4)):
        for name in ("cat", "dog"):
            write_jpegs(root / "cifar10" / split / name, count, rng)
    return root


def quick_transfer(out, data, cache, *extra):
    run.main(["transfer", "--quick", "--threads", "1", "--out", str(out), "--data", str(data), "--cache", str(cache),
              *extra])
    return json.loads((out / "metrics.json").read_text())


def test_load_matching_copies_all_but_the_classifier():
    source = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 10))
    target = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 3))
    nn.init.constant_(source[1].weight, 2.0)
    classifier = target[3].weight.clone()
    assert load_matching(target, source.state_dict()) == ["3.weight", "3.bias"]
    assert torch.equal(target[0].weight, source[0].weight) and torch.equal(target[1].weight, source[1].weight)
    assert torch.equal(target[3].weight, classifier)


def test_transfer_pretrains_once_caches_and_reports(data_with_cifar, tmp_path, capsys):
    metrics = quick_transfer(tmp_path / "first", data_with_cifar, tmp_path / "cache")
    names = [r["name"] for r in metrics["runs"]]
    assert names == ["cnn1-scratch", "cnn1-cifar10", "cnn3-scratch", "cnn3-cifar10", "hdc-1-2-5-scratch",
                     "hdc-1-2-5-cifar10"]
    pretraining = {r["name"]: r["pretraining"] for r in metrics["runs"]}
    assert all(pretraining[name] is None for name in names if name.endswith("scratch"))
    for name in ("cnn1-cifar10", "cnn3-cifar10", "hdc-1-2-5-cifar10"):
        assert pretraining[name]["train_samples"] == 24 and not pretraining[name]["reused"]
        assert 0 <= pretraining[name]["test_accuracy"] <= 1
    out = capsys.readouterr().out
    assert "cnn3-cifar10 seed 0 starts from the CIFAR-10 weights; new: 1.7.weight, 1.7.bias\n" in out
    assert "hdc-1-2-5-cifar10 seed 0 starts from the CIFAR-10 weights; new: 1.classifier.weight, 1.classifier.bias" in out
    report = (tmp_path / "first" / "report.md").read_text()
    assert "Pretraining on CIFAR-10" in report and "reported: pretrained" in report
    assert metrics["methods"]["pretraining"].startswith("CIFAR-10's training set")
    cached = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "cache" / "pretrained").iterdir())
    assert cached == ["cnn", "cnn", "hdc"]

    again = quick_transfer(tmp_path / "second", data_with_cifar, tmp_path / "cache")
    reused = {r["name"]: r["pretraining"] for r in again["runs"] if r["pretraining"]}
    assert all(p["reused"] for p in reused.values())
    assert {n: p["test_accuracy"] for n, p in reused.items()} == {
        n: pretraining[n]["test_accuracy"] for n in reused}
    assert "| yes |" in (tmp_path / "second" / "report.md").read_text()


def test_pretraining_without_cifar10_is_a_clear_error(data_with_cifar, tmp_path):
    shutil.rmtree(data_with_cifar / "cifar10")
    with pytest.raises(SystemExit, match="pretraining on CIFAR-10 needs DATA/cifar10.*has no cifar10/ folder"):
        quick_transfer(tmp_path / "out", data_with_cifar, tmp_path / "cache")


def test_pretrain_epochs_must_be_positive(tmp_path):
    with pytest.raises(SystemExit, match="--pretrain-epochs must be at least 1, got 0"):
        run.main(["mlp", "--quick", "--pretrain", "cifar10", "--pretrain-epochs", "0", "--out", str(tmp_path)])


def test_pretraining_on_cifar10_itself_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="--pretrain cifar10 is for the vehicles"):
        run.main(["mlp", "--quick", "--dataset", "cifar10", "--pretrain", "cifar10", "--out", str(tmp_path)])


def test_all_skips_transfer_without_cifar10(monkeypatch):
    monkeypatch.delenv("CNNEXT_DATA", raising=False)
    assert not run.has_cifar10(None)


def quick_mlp(out, data, cache, *extra):
    run.main(["mlp", "--quick", "--threads", "1", "--out", str(out), "--data", str(data), "--cache", str(cache),
              *extra])
    return json.loads((out / "metrics.json").read_text())


def test_the_lab_split_pretrains_by_default_when_cifar10_is_there(data_with_cifar, tmp_path):
    metrics = quick_mlp(tmp_path / "lab", data_with_cifar, tmp_path / "cache")
    assert all(r["pretraining"]["dataset"] == "cifar10" for r in metrics["runs"])
    assert metrics["methods"]["pretraining"].startswith("CIFAR-10's training set")
    for extra in (["--split", "random"], ["--pretrain", "none"]):
        metrics = quick_mlp(tmp_path / extra[1], data_with_cifar, tmp_path / "cache", *extra)
        assert all(r["pretraining"] is None for r in metrics["runs"]), extra
        assert metrics["methods"]["pretraining"] == "none (random initial weights)"


def test_the_lab_split_without_cifar10_trains_from_scratch_and_says_so(data_with_cifar, tmp_path, capsys):
    shutil.rmtree(data_with_cifar / "cifar10")
    metrics = quick_mlp(tmp_path / "out", data_with_cifar, tmp_path / "cache")
    assert all(r["pretraining"] is None for r in metrics["runs"])
    assert "no cifar10/" in metrics["methods"]["pretraining"]
    assert "no cifar10/ in the data directory: the models start from random weights" in capsys.readouterr().out
