"""Item 8: batch normalisation and dropout written from scratch, held to torch.nn's, and a small training
run with and without each (scikit-learn's 8x8 handwritten digits, shipped inside the package)."""
import time

import torch
from torch import nn

from ..nn import Conv2d, MaxPool2d
from .figures import plt, save


class BatchNorm(nn.Module):
    """Batch normalisation over dim 1: per feature for [N, C] input, per channel for [N, C, H, W].

    Training: normalise with the batch's mean and biased variance, and move the running averages towards
    the batch's mean and unbiased variance by `momentum` (as torch.nn.BatchNorm does). Inference: use the
    running averages."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.gamma = nn.Parameter(torch.ones(num_features))
        self.beta = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x):
        if x.dim() not in (2, 4):
            raise ValueError(f"BatchNorm: expected [N, C] or [N, C, H, W] input, got shape {list(x.shape)}")
        dims = (0,) if x.dim() == 2 else (0, 2, 3)
        shape = (1, -1) if x.dim() == 2 else (1, -1, 1, 1)
        if self.training:
            mean, var = x.mean(dims), x.var(dims, unbiased=False)
            count = x.numel() // x.shape[1]
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var * count / (count - 1), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        x_hat = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return self.gamma.view(shape) * x_hat + self.beta.view(shape)


class Dropout(nn.Module):
    """Inverted dropout: in training zero each element with probability p and scale the rest by 1 / (1 - p),
    so the expected value is unchanged and inference is the identity."""

    def __init__(self, p=0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        keep = torch.empty_like(x).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


def compare_batchnorm(steps=5, seed=0):
    """Largest differences to torch.nn.BatchNorm2d / BatchNorm1d after `steps` training batches, in eval mode."""
    torch.manual_seed(seed)
    differences = {}
    for name, ours, theirs, shape in (("BatchNorm2d", BatchNorm(4), nn.BatchNorm2d(4), (8, 4, 5, 5)),
                                      ("BatchNorm1d", BatchNorm(6), nn.BatchNorm1d(6), (16, 6))):
        with torch.no_grad():
            ours.gamma.uniform_(0.5, 1.5)
            ours.beta.normal_()
            theirs.weight.copy_(ours.gamma)
            theirs.bias.copy_(ours.beta)
        train_error = 0.0
        for _ in range(steps):
            x = 3 * torch.randn(shape) + 2
            with torch.no_grad():
                train_error = max(train_error, float((ours(x) - theirs(x)).abs().max()))
        ours.eval()
        theirs.eval()
        x = 3 * torch.randn(shape) + 2
        with torch.no_grad():
            differences[name] = {"train_output": train_error,
                                 "running_mean": float((ours.running_mean - theirs.running_mean).abs().max()),
                                 "running_var": float((ours.running_var - theirs.running_var).abs().max()),
                                 "eval_output": float((ours(x) - theirs(x)).abs().max())}
    return differences


def compare_dropout(p=0.3, seed=0, size=100_000):
    """Our dropout against torch.nn.Dropout from the same random state, and its statistics."""
    x = torch.rand(size) + 0.5
    ours, theirs = Dropout(p), nn.Dropout(p)
    torch.manual_seed(seed)
    y_ours = ours(x)
    torch.manual_seed(seed)
    y_theirs = theirs(x)
    kept = y_ours != 0
    ours.eval()
    return {"p": p, "same_mask_as_torch": bool(torch.equal(y_ours == 0, y_theirs == 0)),
            "max_difference_to_torch": float((y_ours - y_theirs).abs().max()),
            "dropped_fraction": float(1 - kept.float().mean()),
            "kept_scale": float((y_ours[kept] / x[kept]).mean()),
            "mean_ratio": float(y_ours.mean() / x.mean()),
            "eval_is_identity": bool(torch.equal(ours(x), x))}


def digits(quick=False):
    """scikit-learn's 1,797 8x8 digits, pixels scaled to [0, 1]; the last 360 are the test set."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32)[:, None] / 16
    labels = torch.tensor(data.target)
    train, test = (images[:-360], labels[:-360]), (images[-360:], labels[-360:])
    if quick:
        train, test = (train[0][:256], train[1][:256]), (test[0][:128], test[1][:128])
    return train, test


def small_cnn(batchnorm, dropout):
    """Two cnnext conv blocks on 8x8 digits: conv 3x3 -> [BN] -> ReLU -> max pool 2, twice; [dropout]; linear."""
    norm = (lambda c: BatchNorm(c)) if batchnorm else (lambda c: nn.Identity())
    return nn.Sequential(Conv2d(1, 16, 3, padding=1), norm(16), nn.ReLU(), MaxPool2d(2),
                         Conv2d(16, 32, 3, padding=1), norm(32), nn.ReLU(), MaxPool2d(2),
                         nn.Flatten(), Dropout(0.5) if dropout else nn.Identity(), nn.Linear(32 * 2 * 2, 10))


def train_variant(batchnorm, dropout, data, epochs, lr=0.05, batch_size=32, seed=0):
    (train_x, train_y), (test_x, test_y) = data
    torch.manual_seed(seed)
    model = small_cnn(batchnorm, dropout)
    optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    history = []
    for _ in range(epochs):
        model.train()
        order, total = torch.randperm(len(train_x)), 0.0
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            loss = nn.functional.cross_entropy(model(train_x[batch]), train_y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        model.eval()
        with torch.no_grad():
            test_logits = model(test_x)
            history.append({"train_loss": total / len(train_x),
                            "test_loss": float(nn.functional.cross_entropy(test_logits, test_y)),
                            "test_accuracy": float((test_logits.argmax(1) == test_y).float().mean())})
    return history


VARIANTS = {"plain": (False, False), "batch norm": (True, False), "dropout 0.5": (False, True),
            "batch norm + dropout": (True, True)}


def normalisation_numbers(quick=False, seed=0):
    data = digits(quick)
    epochs = 2 if quick else 15
    runs = {}
    for name, (batchnorm, dropout) in VARIANTS.items():
        started = time.perf_counter()
        runs[name] = {"history": train_variant(batchnorm, dropout, data, epochs, seed=seed),
                      "seconds": time.perf_counter() - started}
    return {"batchnorm": compare_batchnorm(seed=seed), "dropout": compare_dropout(seed=seed), "runs": runs,
            "epochs": epochs, "train_size": len(data[0][0]), "test_size": len(data[1][0]), "seed": seed}


def plot_normalisation(result, path):
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for index, (name, run) in enumerate(result["runs"].items()):
        epochs = range(1, len(run["history"]) + 1)
        colour = f"C{index}"
        loss_axis.plot(epochs, [h["train_loss"] for h in run["history"]], "-", color=colour, label=f"{name} train")
        loss_axis.plot(epochs, [h["test_loss"] for h in run["history"]], "--", color=colour, label=f"{name} test")
        accuracy_axis.plot(epochs, [100 * h["test_accuracy"] for h in run["history"]], "-", color=colour,
                           marker=".", label=name)
    loss_axis.set(xlabel="epoch", ylabel="cross-entropy", title="loss (train solid, test dashed)", yscale="log")
    accuracy_axis.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy")
    loss_axis.legend(fontsize="x-small", ncol=2)
    accuracy_axis.legend(fontsize="small")
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
        axis.xaxis.get_major_locator().set_params(integer=True)
    figure.suptitle(f"Hand-written BatchNorm and Dropout in a small cnnext CNN on scikit-learn's 8x8 digits "
                    f"({result['train_size']} train / {result['test_size']} test, SGD + momentum, seed "
                    f"{result['seed']})", fontsize="medium")
    return save(figure, path)


def normalisation_handout(result, report, figure):
    report.paragraph("**Batch normalisation** standardises each channel with the mean and variance of the current "
                     "batch (over N, H, W for convolutions), then scales and shifts by learnt γ and β; it keeps "
                     "running averages of the statistics for inference. **Dropout** zeroes each activation with "
                     "probability p while training and scales the survivors by 1 / (1 - p), so nothing changes at "
                     "inference. Both are written from scratch in `cnnext.lecture.normalisation` and held to "
                     "torch.nn's.")
    report.table(["layer", "train output", "running mean", "running var", "eval output"],
                 [[name, *(f"{d[key]:.1e}" for key in ("train_output", "running_mean", "running_var", "eval_output"))]
                  for name, d in result["batchnorm"].items()])
    drop = result["dropout"]
    report.paragraph(f"Largest differences to torch.nn (5 training batches, then eval mode). Dropout p = {drop['p']} "
                     f"on 100,000 values: {100 * drop['dropped_fraction']:.2f} % zeroed, survivors scaled by "
                     f"{drop['kept_scale']:.4f} (1 / (1 - p) = {1 / (1 - drop['p']):.4f}), mean kept to a factor "
                     f"{drop['mean_ratio']:.4f}. From the same seed torch.nn.Dropout drops the same elements: "
                     f"{drop['same_mask_as_torch']} (values equal to {drop['max_difference_to_torch']:.1e}, rounding "
                     f"of x / (1 - p)); identity at inference: {drop['eval_is_identity']}.")
    report.figure(figure, "The same small CNN trained with and without BatchNorm and dropout")
    report.table(["variant", "test accuracy after epoch 1", "final train loss", "final test loss",
                  "final test accuracy", "best test accuracy", "time (s)"],
                 [[name, f"{100 * run['history'][0]['test_accuracy']:.1f} %",
                   f"{run['history'][-1]['train_loss']:.4f}", f"{run['history'][-1]['test_loss']:.4f}",
                   f"{100 * run['history'][-1]['test_accuracy']:.1f} %",
                   f"{100 * max(h['test_accuracy'] for h in run['history']):.1f} %", f"{run['seconds']:.1f}"]
                  for name, run in result["runs"].items()])
    report.paragraph(f"{result['epochs']} epochs, batch 32, SGD lr 0.05 with momentum 0.9, one seed: differences of "
                     "a point or so in final accuracy are within seed-to-seed noise. Read the first column (how "
                     "fast each variant learns) and the gap between train and test loss (dropout keeps the "
                     "training loss up: it regularises).")
