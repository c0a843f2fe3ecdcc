"""The speedrun training loop (after Jordan's airbench94, Page's ResNet-9 and hlb-CIFAR10): Nesterov SGD on the
summed label-smoothed loss with a triangular learning-rate schedule, BatchNorm shifts on a larger learning rate,
the whitening layer's bias trained for the first epochs only, lookahead (an EMA of the weights copied back into
the model every 5 steps), whole-batch augmentation, and flip/translate test-time augmentation. Every phase is
timed: data, forward+backward, optimiser and evaluation.
"""
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .data.augment import AugmentedBatches, normalize
from .train import autocast, check_precision, log


@dataclass
class SpeedrunConfig:
    epochs: int = 10
    batch_size: int = 1024
    lr: float = 11.5                 # per 1024 samples of summed loss (airbench's units)
    momentum: float = 0.85
    weight_decay: float = 0.0153     # per 1024 samples, decoupled from the learning rate
    bias_scaler: float = 64.0        # BatchNorm shifts learn this much faster (without more weight decay)
    label_smoothing: float = 0.2
    whiten_bias_epochs: int = 3
    warmup: float = 0.23             # fraction of steps rising from 0.2x to the peak; then down to 0.07x
    translate: int = 2
    flip: str = "alternating"
    tta_level: int = 2               # 0 none, 1 mirror, 2 mirror + 1-pixel translations
    lookahead_every: int = 5
    seed: int = 0
    precision: str = "float32"       # 'bfloat16': forward and loss under torch.autocast (cnnext.train.TrainConfig)
    max_batches: int = None          # per epoch (smoke runs)
    progress: bool = None


def _optimizer(model, config):
    kilostep_scale = 1024 * (1 + 1 / (1 - config.momentum))
    lr = config.lr / kilostep_scale
    weight_decay = config.weight_decay * config.batch_size / kilostep_scale
    norm_shifts = [p for name, p in model.named_parameters() if "norm" in name and p.requires_grad]
    others = [p for name, p in model.named_parameters() if "norm" not in name and p.requires_grad]
    lr_shifts = lr * config.bias_scaler
    groups = [dict(params=norm_shifts, lr=lr_shifts, weight_decay=weight_decay / lr_shifts),
              dict(params=others, lr=lr, weight_decay=weight_decay / lr)]
    return torch.optim.SGD(groups, momentum=config.momentum, nesterov=True)


def _triangle(config, total_steps):
    warmup = int(total_steps * config.warmup)

    def factor(step):
        if step < warmup:
            return 0.2 + 0.8 * step / warmup
        return 1.0 - 0.93 * (step - warmup) / max(total_steps - warmup, 1)
    return factor


class Lookahead:
    """An exponential moving average of the float state that is copied back into the model when updated."""

    def __init__(self, model):
        self.average = {key: value.clone() for key, value in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model, decay):
        for average, current in zip(self.average.values(), model.state_dict().values()):
            if current.dtype.is_floating_point:
                average.lerp_(current, 1 - decay)
                current.copy_(average)


@torch.no_grad()
def predict(model, images, mean, std, tta_level=0, batch_size=1000):
    """Logits for uint8 images: plain (0), averaged with the mirror image (1), and with 1-pixel translations up-left
    and down-right and their mirrors (2)."""
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = normalize(images[start:start + batch_size], mean, std)
        logits = _mirror(model, batch) if tta_level >= 1 else model(batch)
        if tta_level >= 2:
            padded = F.pad(batch, (1,) * 4, mode="reflect")
            size = batch.shape[-1]
            shifted = [_mirror(model, padded[:, :, :size, :size]), _mirror(model, padded[:, :, 2:, 2:])]
            logits = 0.5 * logits + 0.25 * (shifted[0] + shifted[1])
        outputs.append(logits)
    return torch.cat(outputs) if outputs else torch.empty(0)


def _mirror(model, batch):
    return 0.5 * (model(batch) + model(batch.flip(-1)))


def evaluate(model, images, labels, mean, std, tta_level=0):
    logits = predict(model, images, mean, std, tta_level)
    return {"test_loss": F.cross_entropy(logits, labels).item(),
            "test_accuracy": (logits.argmax(1) == labels).float().mean().item()}, logits.argmax(1)


class _Optimisation:
    """Nesterov SGD, its triangular schedule and the lookahead, advanced together one step at a time."""

    def __init__(self, model, config, total_steps):
        self.model, self.every, self.total_steps, self.steps = model, config.lookahead_every, total_steps, 0
        self.optimizer = _optimizer(model, config)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _triangle(config, total_steps))
        self.lookahead = Lookahead(model)
        self.decays = 0.95 ** 5 * (torch.arange(total_steps + 1) / total_steps) ** 3

    def step(self):
        self.optimizer.step()
        self.schedule.step()
        self.steps += 1
        if self.steps == self.total_steps:
            self.lookahead.update(self.model, decay=1.0)   # end on the averaged weights
        elif self.steps % self.every == 0:
            self.lookahead.update(self.model, decay=self.decays[self.steps].item())


def _train_epoch(model, batches, epoch, optimisation, config, timers, steps, name):
    """One epoch of at most `steps` steps; adds to `timers`; returns the train loss and accuracy."""
    model.whiten.bias.requires_grad_(epoch < config.whiten_bias_epochs)
    model.train()
    loss_sum, correct, count = 0.0, 0, 0
    bar = tqdm(total=steps, desc=f"{name} {epoch + 1}/{config.epochs}", leave=False, dynamic_ncols=True,
               disable=config.progress is False or None)
    tick = time.perf_counter()
    for index, (inputs, targets) in enumerate(batches.epoch(epoch)):
        if index >= steps:
            break
        timers["data"] += time.perf_counter() - tick
        tick = time.perf_counter()
        with autocast(config.precision):
            outputs = model(inputs)
            loss = F.cross_entropy(outputs, targets, label_smoothing=config.label_smoothing, reduction="sum")
        optimisation.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        timers["forward_backward"] += time.perf_counter() - tick
        tick = time.perf_counter()
        optimisation.step()
        timers["optimizer"] += time.perf_counter() - tick
        loss_sum += loss.item()
        correct += (outputs.detach().argmax(1) == targets).sum().item()
        count += len(targets)
        bar.update()
        bar.set_postfix(loss=f"{loss_sum / count:.3f}")
        tick = time.perf_counter()
    bar.close()
    return {"train_loss": loss_sum / max(count, 1), "train_accuracy": correct / max(count, 1)}


def train(model, train_set, test_set, config, name="speedrun"):
    """Trains `model` (a SpeedrunNet) on train_set = (uint8 images, labels) and evaluates on test_set after every
    epoch (without TTA) and at the end (with config.tta_level). Returns the run record: history per epoch with
    cumulative training time and process CPU time, the time split, and the final predictions."""
    check_precision(config)
    torch.manual_seed(config.seed)
    train_images, train_labels = train_set
    test_images, test_labels = test_set[0], torch.as_tensor(test_set[1])
    timers = dict.fromkeys(("data", "forward_backward", "optimizer", "whitening_init", "evaluation"), 0.0)
    started, cpu_started = time.perf_counter(), time.process_time()
    batches = AugmentedBatches(train_images, train_labels, config.batch_size, config.translate, config.flip,
                               config.seed)
    model.init_whitening(normalize(train_images[:5000], batches.mean, batches.std))
    timers["whitening_init"] = time.perf_counter() - started
    steps = len(batches) if config.max_batches is None else min(len(batches), config.max_batches)
    optimisation = _Optimisation(model, config, steps * config.epochs)
    history = []
    for epoch in range(config.epochs):
        train_metrics = _train_epoch(model, batches, epoch, optimisation, config, timers, steps, name)
        training_s = sum(seconds for phase, seconds in timers.items() if phase != "evaluation")
        tick = time.perf_counter()
        test_metrics, _ = evaluate(model, test_images, test_labels, batches.mean, batches.std)
        timers["evaluation"] += time.perf_counter() - tick
        history.append({"epoch": epoch + 1, "lr": optimisation.optimizer.param_groups[1]["lr"], **train_metrics,
                        **test_metrics, "train_time_s": training_s - sum(h["train_time_s"] for h in history),
                        "training_time_s": training_s, "wall_time_s": time.perf_counter() - started,
                        "epoch_time_s": time.perf_counter() - started - (history[-1]["wall_time_s"] if history else 0),
                        "process_cpu_time_s": time.process_time() - cpu_started})
        log(f"  {name} epoch {epoch + 1}/{config.epochs}: train loss {train_metrics['train_loss']:.4f}, test "
            f"accuracy {100 * test_metrics['test_accuracy']:.2f}% after {training_s:.0f} s of training")
    tick = time.perf_counter()
    final, predictions = evaluate(model, test_images, test_labels, batches.mean, batches.std, config.tta_level)
    timers["evaluation"] += time.perf_counter() - tick
    return {"name": name, "history": history, "final_tta": final, "tta_level": config.tta_level,
            "predictions": predictions, "timers_s": timers, "steps": optimisation.steps,
            "training_time_s": sum(seconds for phase, seconds in timers.items() if phase != "evaluation"),
            "wall_time_s": time.perf_counter() - started}
