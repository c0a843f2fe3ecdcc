"""Batched augmentation, the test-time methods (flip TTA, BatchNorm re-estimation, TENT) and the metrics and
seed statistics of the experiments."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from cnnext.data.augment import BatchAugment, photometric_jitter, random_resized_crop
from cnnext.testtime import (TENT_VARIANTS, VARIANTS, adapt_batchnorm, classification_metrics, entropy_minimisation,
                              majority_baseline, predict)
from cnnext.testtime import test_time_variants as variants_of   # (not collected as a test)
from experiments.context import aggregate


def test_batch_augment_keeps_shape_range_and_is_seeded():
    x = torch.rand(16, 3, 12, 12) * 2 - 1
    first, again = BatchAugment(seed=1)(x), BatchAugment(seed=1)(x)
    assert first.shape == x.shape and first.min() >= -1 and first.max() <= 1
    assert torch.equal(first, again) and not torch.equal(first, BatchAugment(seed=2)(x))
    assert torch.equal(BatchAugment(geometric=False, photometric="none", flip=False)(x), (x + 1) / 2 * 2 - 1)


def test_translation_moves_each_image_by_at_most_the_padding():
    x = torch.arange(4 * 8 * 8, dtype=torch.float32).view(4, 1, 8, 8) / 256 * 2 - 1
    augment = BatchAugment(geometric=False, photometric="none", flip=False, translate=2, seed=0)
    out = augment(x)
    assert out.shape == x.shape and "translation by up to 2 px" in repr(augment)
    moved = 0
    for image, shifted in zip(x, out):   # each output is the image shifted by (dy, dx), |dy|, |dx| <= 2
        centre = shifted[0, 2:6, 2:6]
        shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                  if torch.allclose(centre, image[0, 2 + dy:6 + dy, 2 + dx:6 + dx], atol=1e-6)]
        assert len(shifts) == 1
        moved += shifts[0] != (0, 0)
    assert moved > 0


@pytest.mark.parametrize("options, message", [({"translate": -1}, "translate"), ({"translate": 2.5}, "translate"),
                                              ({"geometric": True, "translate": 2}, "translate")])
def test_batch_augment_rejects_bad_translation(options, message):
    with pytest.raises(ValueError, match=message):
        BatchAugment(**options)


def test_full_crop_without_flip_is_the_identity_and_flip_mirrors():
    images = torch.rand(4, 3, 8, 8)
    generator = torch.Generator().manual_seed(0)
    same = random_resized_crop(images, generator, scale=(1, 1), ratio=(1, 1), flip=False)
    assert torch.allclose(same, images, atol=1e-5)


def test_photometric_jitter_changes_each_image_differently():
    images = torch.full((8, 3, 4, 4), 0.5)
    out = photometric_jitter(images, torch.Generator().manual_seed(0), "strong")
    assert out.min() >= 0 and out.max() <= 1
    assert len(set(out.mean((1, 2, 3)).tolist())) == 8
    with pytest.raises(ValueError, match="photometric"):
        photometric_jitter(images, torch.Generator(), "extreme")


def test_batchnorm_adaptation_uses_test_statistics_and_keeps_weights():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 4 * 4, 2)).eval()
    shifted = TensorDataset(torch.randn(32, 3, 4, 4) * 3 + 5, torch.zeros(32, dtype=torch.long))
    adapted = adapt_batchnorm(model, shifted, batch_size=8)
    assert torch.equal(model[1].running_mean, torch.zeros(4))   # the original is untouched
    with torch.no_grad():
        features = model[0](shifted.tensors[0])
    assert torch.allclose(adapted[1].running_mean, features.mean((0, 2, 3)), atol=1e-4)
    assert torch.equal(adapted[0].weight, model[0].weight) and not adapted.training


def _entropy(model, dataset):
    _, probabilities = predict(model, dataset)
    return float(-(probabilities * np.log(np.clip(probabilities, 1e-8, None))).sum(1).mean())


def test_tent_trains_only_batchnorm_affine_and_makes_predictions_confident():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 3)).eval()
    unlabelled = TensorDataset(torch.randn(64, 3, 4, 4) * 2 + 1, torch.full((64,), -1))
    adapted = entropy_minimisation(model, unlabelled, lr=0.05, passes=10, batch_size=16)
    assert torch.equal(adapted[0].weight, model[0].weight) and torch.equal(adapted[4].weight, model[4].weight)
    assert not torch.equal(adapted[1].weight, model[1].weight)   # the BN scales moved
    assert torch.equal(model[1].weight, torch.ones(4))           # the original is untouched
    assert not adapted.training and all(p.requires_grad for p in adapted.parameters())
    assert _entropy(adapted, unlabelled) < _entropy(adapt_batchnorm(model, unlabelled), unlabelled) - 0.05


def test_tent_leaves_a_model_without_batchnorm_as_it_is():
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 2))
    data = TensorDataset(torch.randn(4, 1, 1, 2), torch.zeros(4, dtype=torch.long))
    assert torch.equal(entropy_minimisation(model, data)[1].weight, model[1].weight)


def test_test_time_variants_add_tent_only_when_asked():
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2 * 2 * 2, 2)).eval()
    data = TensorDataset(torch.randn(8, 3, 2, 2), torch.tensor([0, 1] * 4))
    assert tuple(variants_of(model, data, 2)) == VARIANTS
    assert tuple(variants_of(model, data, 2, tent=True)) == VARIANTS + TENT_VARIANTS


def test_flip_tta_averages_image_and_mirror():
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    data = TensorDataset(torch.tensor([[[[3.0, 0.0]]]]), torch.tensor([0]))
    _, plain = predict(model, data)
    _, averaged = predict(model, data, tta=True)
    assert plain[0].argmax() == 0 and np.allclose(averaged[0], [0.5, 0.5])


def test_metrics_and_majority_baseline():
    labels = np.array([0, 0, 1, 2])
    metrics = classification_metrics(labels, np.eye(3)[[0, 1, 1, 2]], 3)
    assert metrics["accuracy"] == 0.75 and metrics["confusion"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert metrics["recall"] == [0.5, 1.0, 1.0] and metrics["precision"] == [1.0, 0.5, 1.0]
    assert metrics["predictions"] == [0, 1, 1, 2]
    baseline = majority_baseline([2, 2, 1], labels, 3)
    assert baseline["accuracy"] == 0.25 and baseline["recall"] == [0.0, 0.0, 1.0]


def test_aggregate_over_seeds():
    def record(seed, accuracy):
        history = [{"epoch": 1, "train_loss": 1.0 + seed, "test_accuracy": accuracy, "train_time_s": 1.0}]
        return {"seed": seed, "parameters": 10, "history": history, "final": {**history[0], "note": "x"},
                "wall_time_s": 2.0, "resumed_from": None, "per_class_accuracy": [accuracy, 1.0],
                "precision": [1, 1], "f1": [1, 1], "confusion": [[1, 0], [0, 1]]}
    run = aggregate("m", [record(0, 0.5), record(1, 0.7), record(2, 0.9)])
    assert run["final"]["test_accuracy"] == pytest.approx(0.7)
    assert run["final_std"]["test_accuracy"] == pytest.approx(np.std([0.5, 0.7, 0.9]))
    assert run["per_class_accuracy"] == pytest.approx([0.7, 1.0]) and run["confusion"] == [[3, 0], [0, 3]]
    assert run["history"][0]["train_loss"] == pytest.approx(2.0) and run["wall_time_s"] == 6.0
    assert "note" not in run["final"]
