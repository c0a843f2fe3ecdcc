"""What happens to a trained classifier at test time: predictions (optionally averaged over the image and its
mirror: test-time augmentation), two unsupervised domain adaptations on the unlabelled test images (BatchNorm
statistics re-estimated, AdaBN: Li et al. 2016; BatchNorm scales and shifts trained to make the predictions
confident, TENT: Wang et al. 2021), and scikit-learn's metrics of the predictions.

    variants = test_time_variants(model, test_set, num_classes)   # {'plain', 'tta', 'bn-adapt', 'bn-adapt+tta'}
    variants = test_time_variants(model, test_set, num_classes, tent=True)   # also 'tent', 'tent+tta'
"""
import copy

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from torch import nn
from torch.utils.data import DataLoader

VARIANTS = ("plain", "tta", "bn-adapt", "bn-adapt+tta")
TENT_VARIANTS = ("tent", "tent+tta")


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


def _batchnorms(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine]


def entropy_minimisation(model, dataset, lr=1e-3, passes=5, batch_size=64, device="cpu", seed=0):
    """TENT (Wang et al. 2021): a copy of `model` whose BatchNorm scales and shifts are trained with Adam to
    minimise the entropy of its predictions on the unlabelled inputs of `dataset` (`passes` shuffled passes,
    normalising with each batch's own statistics), then whose BatchNorm statistics are re-estimated on them
    (adapt_batchnorm). Every other weight is frozen; labels are not used. A model without BatchNorm is copied
    unchanged."""
    adapted = copy.deepcopy(model)
    norms = _batchnorms(adapted)
    if not norms:
        return adapted.eval()
    adapted.requires_grad_(False)
    parameters = [p for norm in norms for p in (norm.weight, norm.bias)]
    for parameter in parameters:
        parameter.requires_grad_(True)
    optimizer = torch.optim.Adam(parameters, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    adapted.train()
    with torch.enable_grad():
        for _ in range(passes):
            for inputs, _ in DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator):
                probabilities = adapted(inputs.to(device)).softmax(1)
                entropy = -(probabilities * probabilities.clamp_min(1e-8).log()).sum(1).mean()
                optimizer.zero_grad()
                entropy.backward()
                optimizer.step()
    adapted.requires_grad_(True)
    return adapt_batchnorm(adapted, dataset, batch_size, device)


def classification_metrics(labels, probabilities, num_classes):
    """Accuracy, the confusion matrix (rows: true class), per-class precision, recall (= per-class accuracy)
    and F1, all from scikit-learn, and the predicted class of each sample."""
    predictions = probabilities.argmax(1)
    classes = list(range(num_classes))
    precision, recall, f1, support = precision_recall_fscore_support(labels, predictions, labels=classes,
                                                                     zero_division=0)
    return {"accuracy": float(np.mean(predictions == labels)),
            "confusion": confusion_matrix(labels, predictions, labels=classes).tolist(),
            "precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist(),
            "support": support.tolist(), "predictions": predictions.tolist()}


def test_time_variants(model, dataset, num_classes, batch_size=64, device="cpu", tent=False):
    """classification_metrics of `model` on `dataset` for each of VARIANTS, and of TENT_VARIANTS with `tent`."""
    nets = {"plain": model, "bn-adapt": adapt_batchnorm(model, dataset, batch_size, device)}
    if tent:
        nets["tent"] = entropy_minimisation(model, dataset, device=device)
    results = {}
    for name in VARIANTS + (TENT_VARIANTS if tent else ()):
        net = nets["plain" if name == "tta" else name.split("+")[0]]
        labels, probabilities = predict(net, dataset, batch_size, device, tta=name.endswith("tta"))
        results[name] = classification_metrics(labels, probabilities, num_classes)
    return results


def majority_baseline(train_labels, test_labels, num_classes):
    """classification_metrics of always answering the most frequent training class."""
    counts = np.bincount(np.asarray(train_labels), minlength=num_classes)
    probabilities = np.zeros((len(test_labels), num_classes))
    probabilities[:, counts.argmax()] = 1
    return classification_metrics(np.asarray(test_labels), probabilities, num_classes)
