"""What happens to a trained classifier at test time: predictions (optionally averaged over the image and its
mirror: test-time augmentation), BatchNorm statistics re-estimated on the unlabelled test images (a simple
unsupervised domain adaptation, AdaBN: Li et al. 2016), and scikit-learn's metrics of the predictions.

    variants = test_time_variants(model, test_set, num_classes)   # {'plain', 'tta', 'bn-adapt', 'bn-adapt+tta'}
"""
import copy

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from torch import nn
from torch.utils.data import DataLoader

VARIANTS = ("plain", "tta", "bn-adapt", "bn-adapt+tta")


@torch.no_grad()
def predict(model, dataset, batch_size=64, device="cpu", tta=False):
    """(labels, class probabilities) of `model` on all of `dataset`; with `tta` the softmax of each image is
    averaged with that of its horizontal mirror."""
    model.eval()
    labels, probabilities = [], []
    for inputs, targets in DataLoader(dataset, batch_size=batch_size):
        inputs = inputs.to(device)
        probs = model(inputs).softmax(1)
        if tta:
            probs = (probs + model(inputs.flip(-1)).softmax(1)) / 2
        labels.append(targets)
        probabilities.append(probs.cpu())
    return torch.cat(labels).numpy(), torch.cat(probabilities).numpy()


@torch.no_grad()
def adapt_batchnorm(model, dataset, batch_size=64, device="cpu"):
    """A copy of `model` whose BatchNorm running mean and variance are recomputed (a cumulative average, not a
    moving one) from the inputs of `dataset`; labels are not used. Weights are unchanged."""
    adapted = copy.deepcopy(model)
    norms = [m for m in adapted.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return adapted
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    adapted.train()
    for inputs, _ in DataLoader(dataset, batch_size=batch_size):
        adapted(inputs.to(device))
    return adapted.eval()


def classification_metrics(labels, probabilities, num_classes):
    """Accuracy, the confusion matrix (rows: true class) and per-class precision, recall (= per-class accuracy)
    and F1, all from scikit-learn."""
    predictions = probabilities.argmax(1)
    classes = list(range(num_classes))
    precision, recall, f1, support = precision_recall_fscore_support(labels, predictions, labels=classes,
                                                                     zero_division=0)
    return {"accuracy": float(np.mean(predictions == labels)),
            "confusion": confusion_matrix(labels, predictions, labels=classes).tolist(),
            "precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist(),
            "support": support.tolist()}


def test_time_variants(model, dataset, num_classes, batch_size=64, device="cpu"):
    """classification_metrics of `model` on `dataset` for each of VARIANTS."""
    adapted = adapt_batchnorm(model, dataset, batch_size, device)
    results = {}
    for name in VARIANTS:
        net = adapted if name.startswith("bn-adapt") else model
        labels, probabilities = predict(net, dataset, batch_size, device, tta=name.endswith("tta"))
        results[name] = classification_metrics(labels, probabilities, num_classes)
    return results


def majority_baseline(train_labels, test_labels, num_classes):
    """classification_metrics of always answering the most frequent training class."""
    counts = np.bincount(np.asarray(train_labels), minlength=num_classes)
    probabilities = np.zeros((len(test_labels), num_classes))
    probabilities[:, counts.argmax()] = 1
    return classification_metrics(np.asarray(test_labels), probabilities, num_classes)
