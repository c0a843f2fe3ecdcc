"""The one training and evaluation loop: classification (cross-entropy, accuracy) and dehazing (MSE, PSNR,
SSIM), optional bfloat16 mixed precision (torch.autocast) and batch mixing (mixup, CutMix), a tqdm bar per
epoch, a checkpoint after every epoch (an interrupted run resumes from the last one), and data parallelism under
torchrun (DistributedDataParallel, gloo on CPU / NCCL on GPU, DistributedSampler; only rank 0 writes files and
prints).
"""
import math
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32          # per process
    lr: float = 0.01              # peak learning rate, annealed to 0 along a cosine over the epochs
    optimizer: str = "sgd"        # 'sgd' (momentum 0.9) or 'adam'
    weight_decay: float = 5e-4
    device: str = "cpu"
    seed: int = 0
    max_batches: int = None       # per epoch and per evaluation (quick smoke runs); None = all
    resume: bool = True           # continue from out_dir/checkpoint.pt when it is for the same setup
    progress: bool = None         # tqdm bars: None = only when stderr is a terminal
    loss: object = None           # training loss(outputs, targets) instead of the task's (cross-entropy, MSE);
                                  # test loss stays the task's, so runs compare
    augment: object = None        # callable applied to each training batch of inputs (e.g. data.augment.BatchAugment)
    ema_decay: float = None       # keep an exponential moving average of the weights and BatchNorm buffers,
                                  # updated every step; it is what gets evaluated and what `fit` leaves in the model
    label_smoothing: float = 0.0  # classification only
    mix: object = None            # classification: callable (inputs, targets) -> (mixed inputs, partner targets,
                                  # share of the originals), e.g. data.augment.BatchMix (mixup, CutMix)
    precision: str = "float32"    # 'bfloat16': forward and loss run under torch.autocast (mixed precision: the
                                  # convolutions in bfloat16, weights, gradients and optimiser state in float32)
    memory_format: str = "contiguous"  # 'channels_last': weights and batches in NHWC memory, which both backends'
                                       # CPU kernels read without converting (the values are the same)


PRECISIONS = ("float32", "bfloat16")
MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


# ----------------------------------------------------------------------------------------------- distributed

def init_distributed(device="cpu"):
    """Joins the torchrun process group when WORLD_SIZE > 1 (NCCL for CUDA, gloo otherwise); returns the
    device this process trains on."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    if device.startswith("cuda") and world_size > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    return device


def world():
    """(rank, world size) of this process; (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main():
    return world()[0] == 0


def log(message):
    if is_main():
        print(message, flush=True)


def _all_reduce_sum(values, device):
    totals = torch.tensor(values, dtype=torch.float64, device=device)
    if world()[1] > 1:
        dist.all_reduce(totals)
    return totals.tolist()


def environment(backend, device):
    """What a result depends on besides the code: versions, threads, device, kernels, processes."""
    info = {"torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "processor": _cpu_name(), "threads": torch.get_num_threads(), "backend": backend, "device": device,
            "world_size": world()[1]}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as file:
            return next((line.split(":", 1)[1].strip() for line in file if line.startswith("model name")),
                        platform.processor())
    except OSError:
        return platform.processor()


# ------------------------------------------------------------------------------------------------- metrics

def psnr_per_image(output, target):
    """Peak signal-to-noise ratio in dB of each image of a batch, for values in [0, 1]."""
    mse = (output - target).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return -10 * torch.log10(mse)


def ssim_per_image(output, target, window_size=11, sigma=1.5):
    """Mean structural similarity (Wang et al. 2004: Gaussian 11x11 window, sigma 1.5, K1=0.01, K2=0.03,
    dynamic range 1) of each image of a batch, averaged over channels and valid window positions."""
    channels = output.shape[1]
    coords = torch.arange(window_size, dtype=output.dtype, device=output.device) - (window_size - 1) / 2
    gauss = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    gauss = gauss / gauss.sum()
    window = (gauss[:, None] * gauss[None, :]).expand(channels, 1, window_size, window_size).contiguous()

    def blur(x):
        return F.conv2d(x, window, groups=channels)

    mu_x, mu_y = blur(output), blur(target)
    var_x = blur(output * output) - mu_x ** 2
    var_y = blur(target * target) - mu_y ** 2
    cov = blur(output * target) - mu_x * mu_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(1)


def _batch_sums(task, output, target, loss):
    """Sums over the batch that epoch metrics are built from (so they can be all-reduced across processes)."""
    count = len(target)
    if task == "classification":
        return {"loss": loss.item() * count, "correct": (output.argmax(1) == target).sum().item(), "count": count}
    clamped = output.detach().clamp(0, 1)
    return {"loss": loss.item() * count, "psnr": psnr_per_image(clamped, target).sum().item(), "count": count}


def _epoch_metrics(task, sums, prefix):
    count = max(sums["count"], 1)
    metrics = {f"{prefix}_loss": sums["loss"] / count}
    if task == "classification":
        metrics[f"{prefix}_accuracy"] = sums["correct"] / count
    else:
        metrics[f"{prefix}_psnr"] = sums["psnr"] / count
        if "ssim" in sums:
            metrics[f"{prefix}_ssim"] = sums["ssim"] / count
    return metrics


def _loss(task, output, target, label_smoothing=0.0):
    if task == "classification":
        return F.cross_entropy(output, target, label_smoothing=label_smoothing)
    return F.mse_loss(output, target)


def in_memory_format(images, memory_format):
    """A batch of images [N, C, H, W] in `memory_format` ('contiguous' or 'channels_last'); other tensors as given."""
    return images.contiguous(memory_format=MEMORY_FORMATS[memory_format]) if images.dim() == 4 else images


@torch.no_grad()
def evaluate(model, dataset, task, batch_size=64, device="cpu", max_batches=None, memory_format="contiguous"):
    """Test metrics of `model` on `dataset` (each process takes every world_size-th sample; sums are reduced)."""
    rank, world_size = world()
    shard = Subset(dataset, range(rank, len(dataset), world_size)) if world_size > 1 else dataset
    model.eval()
    sums = {"loss": 0.0, "correct": 0.0, "psnr": 0.0, "ssim": 0.0, "count": 0.0}
    for index, (inputs, targets) in enumerate(DataLoader(shard, batch_size=batch_size)):
        if max_batches is not None and index >= max_batches:
            break
        inputs, targets = in_memory_format(inputs.to(device), memory_format), targets.to(device)
        outputs = model(inputs)
        for key, value in _batch_sums(task, outputs, targets, _loss(task, outputs, targets)).items():
            sums[key] += value
        if task == "dehaze":
            sums["ssim"] += ssim_per_image(outputs.clamp(0, 1), targets).sum().item()
    totals = dict(zip(sums, _all_reduce_sum(list(sums.values()), device)))
    if task == "classification":
        del totals["psnr"], totals["ssim"]
    return _epoch_metrics(task, totals, "test")


# ------------------------------------------------------------------------------------------------ training

def _optimizer(model, config):
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}, expected 'sgd' or 'adam'")


def check_precision(config):
    """Raises ValueError, naming the config class, unless config.precision is one of PRECISIONS."""
    if config.precision not in PRECISIONS:
        raise ValueError(f"{type(config).__name__}.precision must be one of {PRECISIONS}, got {config.precision!r}")


def check_memory_format(config):
    """Raises ValueError, naming the config class, unless config.memory_format is one of MEMORY_FORMATS."""
    if config.memory_format not in MEMORY_FORMATS:
        raise ValueError(f"{type(config).__name__}.memory_format must be one of {tuple(MEMORY_FORMATS)}, got "
                         f"{config.memory_format!r}")


def autocast(precision, device="cpu"):
    """torch.autocast to bfloat16 on `device` for precision 'bfloat16'; a no-op for 'float32'."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bfloat16")


def _cosine_lr(config, epoch):
    return config.lr * 0.5 * (1 + math.cos(math.pi * epoch / config.epochs))


def _train_loader(dataset, config, epoch):
    rank, world_size = world()
    if world_size > 1:
        sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=config.seed)
        sampler.set_epoch(epoch)
        per_process = len(sampler)
    else:
        generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        sampler = torch.utils.data.RandomSampler(dataset, generator=generator)
        per_process = len(dataset)
    # BatchNorm cannot train on a last batch of one sample; drop the ragged tail when there is more than one batch
    return DataLoader(dataset, batch_size=config.batch_size, sampler=sampler,
                      drop_last=per_process > config.batch_size)


def _progress_disabled(config):
    """tqdm's `disable`: off on ranks > 0 and when asked; None lets tqdm hide it when stderr is no terminal."""
    if not is_main() or config.progress is False:
        return True
    return None if config.progress is None else False


def _training_loss(task, config, outputs, targets):
    if config.loss is not None:
        return config.loss(outputs, targets)
    return _loss(task, outputs, targets, config.label_smoothing)


def _train_epoch(model, optimizer, dataset, task, config, epoch, name, average=None):
    model.train()
    loader = _train_loader(dataset, config, epoch)
    total = len(loader) if config.max_batches is None else min(len(loader), config.max_batches)
    bar = tqdm(loader, total=total, desc=f"{name} {epoch + 1}/{config.epochs}", leave=False, dynamic_ncols=True,
               disable=_progress_disabled(config))
    sums = {"loss": 0.0, "correct": 0.0, "psnr": 0.0, "count": 0.0}
    for index, (inputs, targets) in enumerate(bar):
        if index >= total:
            break
        inputs, targets = inputs.to(config.device), targets.to(config.device)
        if config.augment is not None:
            inputs = config.augment(inputs)
        if config.mix is not None:
            inputs, partners, share = config.mix(inputs, targets)
        inputs = in_memory_format(inputs, config.memory_format)
        with autocast(config.precision, config.device):
            outputs = model(inputs)
            loss = _training_loss(task, config, outputs, targets)
            if config.mix is not None:
                loss = share * loss + (1 - share) * _training_loss(task, config, outputs, partners)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if average is not None:
            average.update_parameters(model.module if isinstance(model, DistributedDataParallel) else model)
        for key, value in _batch_sums(task, outputs.detach(), targets, loss.detach()).items():
            sums[key] += value
        bar.set_postfix(loss=f"{sums['loss'] / sums['count']:.4f}")
    bar.close()
    totals = dict(zip(sums, _all_reduce_sum(list(sums.values()), config.device)))
    if task == "classification":
        del totals["psnr"]
    return _epoch_metrics(task, totals, "train")


class ResumeError(ValueError):
    """A checkpoint that the requested run cannot continue from."""


def _save_checkpoint(path, state):
    temporary = path.with_suffix(".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)  # a crash while saving never leaves a half-written checkpoint


def _load_checkpoint(path, signature):
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("signature") != signature:
        log(f"  {path} belongs to a different setup; starting afresh")
        return None
    return state


def _format(metrics):
    parts = []
    for key, value in metrics.items():
        if key.endswith("accuracy"):
            parts.append(f"{key.replace('_', ' ')} {100 * value:.1f}%")
        elif key.endswith(("loss", "psnr", "ssim")):
            parts.append(f"{key.replace('_', ' ')} {value:.4f}")
    return "  ".join(parts)


def fit(model, data, config, out_dir, name="model", signature=None):
    """Trains `model` on data.train, evaluates on data.test after every epoch; returns the run's record:
    {'name', 'parameters', 'history': [per-epoch metrics], 'wall_time_s', 'resumed_from', 'final'}.

    out_dir/checkpoint.pt is written after every epoch (by rank 0) and picked up again by a later call with
    the same `signature` (model, data and hyper-parameters, not the epoch count, device or memory format), so a run
    that was stopped resumes, and a finished one is extended when called with more epochs. With config.ema_decay the test
    metrics are those of the weight average, and `model` holds the average when fit returns. Evaluation runs in
    float32 whatever config.precision the training steps ran in."""
    check_precision(config)
    check_memory_format(config)
    torch.manual_seed(config.seed)
    out_dir = Path(out_dir)
    if is_main():
        out_dir.mkdir(parents=True, exist_ok=True)
    signature = {"config": {k: repr(v) if callable(v) else v for k, v in asdict(config).items()
                            if k not in ("epochs", "resume", "progress", "device", "memory_format")},
                 **(signature or {})}
    model = model.to(config.device, memory_format=MEMORY_FORMATS[config.memory_format])
    parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = _optimizer(model, config)
    average = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)
               if config.ema_decay else None)
    evaluated = average.module if average is not None else model
    history, start_epoch = [], 0
    checkpoint_path = out_dir / CHECKPOINT
    state = _load_checkpoint(checkpoint_path, signature) if config.resume else None
    if state is not None:
        if state["epoch"] > config.epochs:
            raise ResumeError(f"{checkpoint_path} holds {state['epoch']} trained epochs, more than --epochs "
                             f"{config.epochs}: ask for at least {state['epoch']} epochs, or pass --no-resume "
                             f"(or another --out) to train afresh")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if average is not None:
            average.load_state_dict(state["average"])
        history, start_epoch = state["history"], state["epoch"]
        log(f"  resuming {name} from {checkpoint_path} after epoch {start_epoch}")
    trained = model
    if world()[1] > 1:
        device_ids = [torch.device(config.device).index] if config.device.startswith("cuda") else None
        trained = DistributedDataParallel(model, device_ids=device_ids)
    for epoch in range(start_epoch, config.epochs):
        for group in optimizer.param_groups:
            group["lr"] = _cosine_lr(config, epoch)
        started = time.perf_counter()
        train_metrics = _train_epoch(trained, optimizer, data.train, data.task, config, epoch, name, average)
        train_time = time.perf_counter() - started
        test_metrics = evaluate(evaluated, data.test, data.task, config.batch_size, config.device, config.max_batches,
                                config.memory_format)
        record = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], **train_metrics, **test_metrics,
                  "train_time_s": train_time, "epoch_time_s": time.perf_counter() - started}
        history.append(record)
        log(f"  {name} epoch {epoch + 1}/{config.epochs}  {_format(record)}  ({record['epoch_time_s']:.1f} s)")
        if is_main():
            _save_checkpoint(checkpoint_path, {"epoch": epoch + 1, "model": model.state_dict(),
                                               "optimizer": optimizer.state_dict(), "history": history,
                                               "signature": signature,
                                               "average": average.state_dict() if average is not None else None})
    if average is not None:
        model.load_state_dict(average.module.state_dict())
    return {"name": name, "parameters": parameters, "history": history,
            "wall_time_s": sum(r["epoch_time_s"] for r in history),
            "resumed_from": start_epoch if state is not None else None,
            "final": history[-1] if history else {}}
