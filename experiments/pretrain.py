"""Transfer learning for the lab's classifiers: a model is first trained on CIFAR-10's 50,000 training images
(cars and trucks among them, from many cameras and in every light), then fine-tuned on the lab's data with a
fresh classifier. The lab split's test cameras are unlike its training ones; features learnt from a larger,
more varied set are what carries over (docs/experiments.md, "Transfer").

The pretrained weights live in the cache directory (--cache), in a folder named by a digest of everything that
made them (model, options, input pipeline, recipe, data), through `fit`'s own checkpoint: every seed of a run,
every experiment and every later run with the same setup reuses them instead of training again."""
import hashlib
import json
from dataclasses import asdict, replace

from cnnext import data as datasets
from cnnext.data.cache import resolve_cache_dir
from cnnext.train import fit, log

PRETRAIN_SETS = ("none", "cifar10")
RECIPE = {"batch_size": 128, "lr": 0.1}   # CIFAR-10 is 46x the vehicles: larger batches, the usual SGD peak


def has_cifar10(data_dir):
    """Whether the data directory (`data_dir`, else $CNNEXT_DATA) holds a cifar10/ folder to pretrain on."""
    root = datasets.resolve_data_dir(data_dir)
    return root is not None and (root / "cifar10").is_dir()


def load_pretraining_data(ctx):
    """CIFAR-10 from the data directory, at the experiment's image size (a clear error when it is not there)."""
    root = datasets.resolve_data_dir(ctx.args.data)
    if not has_cifar10(root):
        where = f"{root} has no cifar10/ folder" if root else "no data directory was given (--data, CNNEXT_DATA)"
        raise SystemExit(f"run.py {ctx.experiment.name}: pretraining on CIFAR-10 needs DATA/cifar10/<train|test>/"
                         f"<class>/*.jpg, but {where}")
    return datasets.load("cifar10", root, ctx.settings["image_size"],
                         limit_per_class=ctx.settings.get("limit_per_class"),
                         cache_dir=resolve_cache_dir(getattr(ctx.args, "cache", None)))


def pretrain(ctx, model, model_name, backend, options, data):
    """Trains `model` (built for data's classes) on CIFAR-10 `data` with the experiment's input pipeline and
    RECIPE, or takes the cached result; returns a summary record (CIFAR-10 test accuracy, epochs, time)."""
    config = replace(ctx.config, epochs=ctx.settings["pretrain_epochs"], seed=ctx.args.seed, resume=True,
                     augment=ctx.augmentation(ctx.args.seed), mix=None, loss=None, **RECIPE)
    signature = {"model": model_name, "backend": backend, "options": options, "data": data.summary(),
                 "standardize": ctx.settings["standardize"], "pretraining": "cifar10"}
    described = {"signature": signature, "config": {k: repr(v) for k, v in asdict(config).items()
                                                    if k not in ("resume", "progress", "device")}}
    digest = hashlib.sha256(json.dumps(described, sort_keys=True, default=repr).encode()).hexdigest()[:12]
    folder = resolve_cache_dir(getattr(ctx.args, "cache", None)) / "pretrained" / f"{model_name}-{digest}"
    log(f"  pretraining {model_name} on CIFAR-10 ({len(data.train):,} images, {config.epochs} epoch(s); kept in "
        f"{folder})")
    record = fit(model, data, config, folder, f"{model_name} on CIFAR-10", signature)
    return {"dataset": "cifar10", "train_samples": len(data.train), "epochs": config.epochs,
            "batch_size": config.batch_size, "lr": config.lr, "test_accuracy": record["final"]["test_accuracy"],
            "wall_time_s": record["wall_time_s"], "reused": record["resumed_from"] == config.epochs,
            "folder": str(folder)}


def load_matching(model, state):
    """Copies into `model` every tensor of `state` with the same name and shape; returns the names left as they
    were (the classifier, whose number of classes differs)."""
    own = model.state_dict()
    matching = {name: value for name, value in state.items() if name in own and own[name].shape == value.shape}
    model.load_state_dict(matching, strict=False)
    return [name for name in own if name not in matching]
