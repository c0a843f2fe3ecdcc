"""What every experiment shares: its description (Experiment) and its resolved settings, data, output folder
and trained runs (Context). Context.train trains one model variant over every seed, evaluates each final
model with the test-time methods (cnnext.testtime) and keeps the per-seed records and their mean and spread."""
import json
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from sklearn.utils.class_weight import compute_class_weight

from cnnext import data as datasets
from cnnext.data.augment import BatchAugment, BatchMix
from cnnext.data.cache import resolve_cache_dir
from cnnext.models import build_model, standardized
from cnnext.testtime import majority_baseline, test_time_variants
from cnnext.train import TrainConfig, fit, is_main, log
from experiments.pretrain import (RECIPE as PRETRAIN_RECIPE, has_cifar10, load_matching, load_pretraining_data,
                                  pretrain)

QUICK = {"epochs": 2, "batch_size": 8, "max_batches": 2, "limit_per_class": 12, "seeds": 1, "pretrain_epochs": 1}

# The classification recipe every experiment starts from (measured on the vehicles: docs/experiments.md);
# an experiment's `defaults` and the command line override it.
CLASSIFICATION = {"dataset": "vehicles", "split": "lab", "seeds": 3, "epochs": 15, "batch_size": 32, "lr": 0.05,
                  "optimizer": "sgd", "weight_decay": 5e-4, "label_smoothing": 0.1, "image_size": 32, "width": 1.0,
                  "augment": True, "photometric": "strong", "geometric": False, "crop_scale": (0.35, 1.0),
                  "translate": 0, "standardize": "image", "ema": True, "ema_decay": 0.99, "tta": True,
                  "bn_adapt": None,  # None: on for the lab split (its test set is shifted), off for a random one
                  "tent": None,  # None: as bn_adapt
                  "class_weights": "none", "mix": "none", "precision": "float32", "memory_format": "contiguous",
                  # None: CIFAR-10 on the vehicles' lab split, whose test cameras only features learnt from a larger
                  # set carry over to (docs/experiments.md, fifth round), when DATA has cifar10/; else none
                  "pretrain": None,
                  "pretrain_epochs": 10}
DEHAZE = {"dataset": "dehaze", "split": "lab", "seeds": 1, "epochs": 10, "batch_size": 32, "lr": 0.01,
          "optimizer": "sgd", "weight_decay": 5e-4, "label_smoothing": 0.0, "image_size": 64, "width": 1.0,
          "augment": False, "ema": False, "ema_decay": 0.99, "precision": "float32", "memory_format": "contiguous"}
OVERRIDES = ("dataset", "split", "seeds", "epochs", "batch_size", "lr", "image_size", "width", "augment",
             "standardize", "ema", "tta", "bn_adapt", "tent", "class_weights", "mix", "precision", "memory_format",
             "pretrain", "pretrain_epochs")


@dataclass
class Experiment:
    name: str
    title: str
    help: str
    run: object                 # function(Context) -> None
    task: str = "classification"
    defaults: dict = field(default_factory=dict)
    quick_image_size: int = 16  # the smallest size its models take: for --quick and the bundled 8x8 digits
    add_options: object = None  # function(argparse parser): the experiment's own command-line options


def resolve_settings(experiment, args):
    """The experiment's settings: the task's recipe, then the experiment's defaults, then --quick, then the
    options given on the command line."""
    settings = {**(DEHAZE if experiment.task == "dehaze" else CLASSIFICATION), **experiment.defaults}
    if args.quick:
        settings.update(QUICK, image_size=experiment.quick_image_size, width=settings["width"] / 4)
    elif experiment.task == "classification" and datasets.resolve_data_dir(args.data) is None:
        # the bundled digits are 8x8 pixels: upsampling them further than the models need adds only compute
        settings["image_size"] = experiment.quick_image_size
    for key in OVERRIDES:
        if getattr(args, key, None) is not None:
            settings[key] = getattr(args, key)
    if settings.get("bn_adapt", False) is None:
        settings["bn_adapt"] = settings["split"] == "lab"
    if settings.get("tent", False) is None:
        settings["tent"] = settings["bn_adapt"]
    if experiment.task == "classification" and settings["pretrain"] is None:
        wanted = (settings["dataset"] == "vehicles" and settings["split"] == "lab"
                  and datasets.resolve_data_dir(args.data) is not None)  # the bundled digits have no shift
        settings["pretrain_unavailable"] = wanted and not has_cifar10(args.data)
        settings["pretrain"] = "cifar10" if wanted and not settings["pretrain_unavailable"] else "none"
    if experiment.task == "dehaze" and settings.get("mix", "none") != "none":
        raise SystemExit(f"run.py {experiment.name}: --mix is for classification experiments (it mixes labels)")
    if settings.get("pretrain", "none") != "none" and settings["dataset"] == "cifar10":
        raise SystemExit(f"run.py {experiment.name}: --pretrain cifar10 is for the vehicles (pretraining on the "
                         f"data set itself is no transfer); use --pretrain none with --dataset cifar10")
    if settings.get("pretrain_epochs", 1) < 1:
        raise SystemExit(f"run.py {experiment.name}: --pretrain-epochs must be at least 1, got "
                         f"{settings['pretrain_epochs']}")
    if settings["seeds"] < 1:
        raise SystemExit(f"run.py {experiment.name}: --seeds must be at least 1, got {settings['seeds']}")
    return settings


class Context:
    """One experiment's resolved settings, data and output folder; trains its model variants and keeps them."""

    def __init__(self, experiment, args):
        self.experiment, self.args = experiment, args
        settings = resolve_settings(experiment, args)
        self._check_dataset(settings["dataset"])
        self.settings = settings
        self.backend = args.backend
        self.seeds = [args.seed + offset for offset in range(settings["seeds"])]
        self.out = Path(args.out or Path("runs") / experiment.name)
        self.config = TrainConfig(epochs=settings["epochs"], batch_size=settings["batch_size"], lr=settings["lr"],
                                  optimizer=settings["optimizer"], weight_decay=settings["weight_decay"],
                                  device=args.device, seed=args.seed, max_batches=settings.get("max_batches"),
                                  resume=not args.no_resume, label_smoothing=settings["label_smoothing"],
                                  ema_decay=settings["ema_decay"] if settings["ema"] else None,
                                  precision=settings["precision"], memory_format=settings["memory_format"])
        self.data = self.load_data(settings["image_size"])
        self.runs, self.figures = [], []
        self._pretrained, self._pretraining_data = {}, None
        self.baseline = None
        if self.data.task == "classification":
            self.baseline = majority_baseline(self.data.train.labels, self.data.test.labels, len(self.data.classes))
        label = "BUNDLED sample data, not the lab's images" if self.data.bundled else "real data"
        log(f"== {experiment.name}: {experiment.title}\n   {self.data.name} from {self.data.source} "
            f"[{label}]: {len(self.data.train)} train / {len(self.data.test)} test"
            f"{', split ' + self.data.split if self.data.split else ''}, {settings['image_size']} px, "
            f"seeds {self.seeds}; backend {self.backend}, device {args.device}, out {self.out}")
        if settings.get("pretrain_unavailable"):
            log("   no cifar10/ in the data directory: the models start from random weights (on the lab split they "
                "pretrain on CIFAR-10 when it is there; see docs/experiments.md)")
        if self.data.skipped:
            log(f"   skipped {len(self.data.skipped)} unreadable image file(s), e.g. {self.data.skipped[0]} "
                f"(all listed in metrics.json and the report)")

    def _check_dataset(self, dataset):
        wanted = ("dehaze",) if self.experiment.task == "dehaze" else ("vehicles", "cifar10")
        if dataset not in wanted:
            raise SystemExit(f"run.py {self.experiment.name}: --dataset must be one of {list(wanted)} for this "
                             f"{self.experiment.task} experiment, got {dataset!r}")

    def load_data(self, image_size):
        """The data set. Classification inputs are augmented batch-wise in the training loop (config.augment), so
        the loaders' own per-sample augmentation is only used for dehazing. Each unreadable image file the
        loaders skip is logged as one line naming it."""
        dataset_augment = self.settings["augment"] and self.experiment.task == "dehaze"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", datasets.UnreadableImageWarning)
            data = datasets.load(self.settings["dataset"], self.args.data, image_size,
                                 test_fraction=self.args.test_fraction,
                                 limit_per_class=self.settings.get("limit_per_class"), augment=dataset_augment,
                                 seed=self.args.seed, split=self.settings["split"],
                                 cache_dir=resolve_cache_dir(getattr(self.args, "cache", None)))
        for warning in caught:
            if issubclass(warning.category, datasets.UnreadableImageWarning):
                log(f"   warning: {warning.message}")
            else:
                warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
        return data

    def augmentation(self, seed):
        if self.data.task != "classification" or not self.settings["augment"]:
            return None
        return BatchAugment(self.settings["geometric"], self.settings["photometric"],
                            crop_scale=self.settings["crop_scale"], translate=self.settings["translate"], seed=seed)

    def mixing(self, seed):
        if self.data.task != "classification" or self.settings["mix"] == "none":
            return None
        return BatchMix(self.settings["mix"], seed=seed)

    def training_loss(self, data):
        """Cross-entropy with each class weighted by N / (classes x its count) for class_weights 'balanced'
        (scikit-learn's rule), so a rare class counts as much as a common one; None (the task's loss) otherwise."""
        if data.task != "classification" or self.settings["class_weights"] == "none":
            return None
        labels = np.asarray(data.train.labels)
        weights = compute_class_weight("balanced", classes=np.arange(len(data.classes)), y=labels)
        return torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32),
                                         label_smoothing=self.settings["label_smoothing"])

    def methods(self):
        """The methods in use, in words (for reports)."""
        s = self.settings
        if self.data.task != "classification":
            return {"augmentation": "flips" if s["augment"] else "none",
                    "weight averaging": f"EMA decay {s['ema_decay']}" if s["ema"] else "none"}
        return {"input": {"image": "per-image standardisation", "channel": "per-image, per-channel standardisation",
                          "none": "images scaled to [-1, 1]"}[s["standardize"]],
                "augmentation": repr(self.augmentation(0)) if s["augment"] else "none",
                "weight averaging": f"EMA of weights and BN buffers, decay {s['ema_decay']}" if s["ema"] else
                                    "none (last weights)",
                "loss": "cross-entropy" + (", classes weighted by N / (classes x count)"
                                           if s["class_weights"] == "balanced" else ""),
                "batch mixing": repr(self.mixing(0)) if s["mix"] != "none" else "none",
                "test-time augmentation": "mean of image and mirror" if s["tta"] else "none",
                "unsupervised domain adaptation": self._adaptation_in_words(),
                "pretraining": self._pretraining_in_words()}

    def _pretraining_in_words(self):
        if self.settings["pretrain"] == "none":
            return "none (random initial weights" + ("; the data directory has no cifar10/ to pretrain on)"
                                                     if self.settings.get("pretrain_unavailable") else ")")
        cifar, epochs = self._pretraining_data, self.settings["pretrain_epochs"]
        images = f"{len(cifar.train):,} images" if cifar else "its images"
        return (f"CIFAR-10's training set ({images} at {self.settings['image_size']} px, this input pipeline and "
                f"augmentation), {epochs} epoch{'s' * (epochs != 1)}, batch {PRETRAIN_RECIPE['batch_size']}, SGD lr "
                f"{PRETRAIN_RECIPE['lr']} (cosine); then every "
                f"layer fine-tuned here with a fresh classifier; one pretraining shared by the seeds")

    def _adaptation_in_words(self):
        if self.settings["tent"]:
            return ("TENT: BatchNorm scales and shifts trained to minimise the entropy of the predictions on the "
                    "unlabelled test images (Adam, lr 1e-3, 5 passes in shuffled batches of 64), then BatchNorm "
                    "statistics re-estimated on them")
        if self.settings["bn_adapt"]:
            return "BatchNorm statistics re-estimated on the unlabelled test images"
        return "none"

    def test_variant(self):
        """The cnnext.testtime variant whose accuracy is reported: 'plain', 'tta', 'bn-adapt', 'bn-adapt+tta',
        'tent' or 'tent+tta'."""
        adaptation = "tent" if self.settings["tent"] else "bn-adapt" if self.settings["bn_adapt"] else None
        parts = ([adaptation] if adaptation else []) + (["tta"] if self.settings["tta"] else [])
        return "+".join(parts) or "plain"

    def train(self, run_name, model_name, backend=None, data=None, config=None, seeds=None, pretrain=None,
              **options):
        """Builds model `model_name` with `options` and trains it once per seed as `run_name` (from weights
        pretrained on CIFAR-10 with pretrain 'cifar10'; default: the setting); records and returns (run, model
        of the last seed). run['final'] holds the means over the seeds, run['final_std'] their standard
        deviations, run['per_seed'] the single runs."""
        backend = backend or self.backend
        pretrain = pretrain or self.settings.get("pretrain", "none")
        data = data or self.data
        config = config or self.config
        if data.task == "classification":
            options = {"num_classes": len(data.classes), "image_size": data.image_size, **options}
        per_seed = []
        for seed in seeds or self.seeds:
            record, model = self._train_seed(run_name, model_name, backend, data, config, seed, options, pretrain)
            per_seed.append(record)
        run = aggregate(run_name, per_seed)
        run.update(model=model_name, backend=backend, options=options, batch_size=config.batch_size, lr=config.lr,
                   image_size=data.image_size)
        self.runs.append(run)
        return run, model

    def _standardize(self, data):
        """The input standardisation of models trained on `data`: the setting for classification, else 'none'."""
        return self.settings.get("standardize", "none") if data.task == "classification" else "none"

    def _build(self, model_name, backend, options, data):
        model = build_model(model_name, backend=backend, **options)
        if self._standardize(data) != "none":
            model = standardized(model, per_channel=self._standardize(data) == "channel")
        return model

    def pretrained(self, model_name, backend, options):
        """(state dict, summary) of `model_name` with `options` pretrained on CIFAR-10 (experiments.pretrain);
        trained, or taken from the cache, once per Context."""
        key = json.dumps([model_name, backend, options], sort_keys=True, default=repr)
        if key not in self._pretrained:
            if self._pretraining_data is None:
                self._pretraining_data = load_pretraining_data(self)
            cifar = self._pretraining_data
            options = {**options, "num_classes": len(cifar.classes)}
            torch.manual_seed(self.args.seed)
            model = self._build(model_name, backend, options, cifar)
            summary = pretrain(self, model, model_name, backend, options, cifar)
            self._pretrained[key] = (model.state_dict(), summary)
        return self._pretrained[key]

    def _train_seed(self, run_name, model_name, backend, data, config, seed, options, pretrain="none"):
        pretraining = self.pretrained(model_name, backend, options) if pretrain != "none" else None
        torch.manual_seed(seed)
        model = self._build(model_name, backend, options, data)
        if pretraining:
            fresh = load_matching(model, pretraining[0])
            log(f"  {run_name} seed {seed} starts from the CIFAR-10 weights; new: {', '.join(fresh)}")
        weighted = self.training_loss(data)
        config = replace(config, seed=seed, augment=self.augmentation(seed), mix=self.mixing(seed),
                         loss=config.loss if weighted is None else weighted)
        signature = {"model": model_name, "backend": backend, "options": options, "data": data.summary(),
                     "standardize": self._standardize(data),
                     **({"pretrained": pretraining[1]["folder"]} if pretraining else {})}
        record = fit(model, data, config, self.out / run_name / f"seed{seed}", f"{run_name} seed {seed}", signature)
        record.update(seed=seed, pretraining=pretraining[1] if pretraining else None)
        if data.task == "classification" and is_main():
            variants = test_time_variants(model, data.test, len(data.classes), config.batch_size, config.device,
                                          tent=self.settings["tent"])
            chosen = variants[self.test_variant()]
            record["test_time"] = {name: {key: value for key, value in metrics.items() if key != "predictions"}
                                   for name, metrics in variants.items()}
            record["predictions"] = chosen["predictions"]
            record["final"] = {**record["final"], "test_accuracy": chosen["accuracy"],
                               **{f"test_accuracy_{name}": v["accuracy"] for name, v in variants.items()}}
            record.update(confusion=chosen["confusion"], per_class_accuracy=chosen["recall"],
                          precision=chosen["precision"], f1=chosen["f1"])
        return record, model

    def path(self, name):
        return self.out / name

    def add_figure(self, path, caption):
        self.figures.append((Path(path), caption))


def aggregate(name, per_seed):
    """One record for the runs of a model over several seeds: means and standard deviations (ddof 0) of every
    number in 'final' and of the per-class lists, the epoch-wise mean history, the summed wall time."""
    first = per_seed[0]
    final, final_std = {}, {}
    for key, value in first["final"].items():
        if isinstance(value, (int, float)):
            values = np.array([record["final"][key] for record in per_seed], dtype=float)
            final[key], final_std[key] = float(values.mean()), float(values.std())
    run = {"name": name, "parameters": first["parameters"], "seeds": [r["seed"] for r in per_seed],
           "per_seed": per_seed, "final": final, "final_std": final_std,
           "history": _mean_history([r["history"] for r in per_seed]),
           "wall_time_s": sum(r["wall_time_s"] for r in per_seed), "pretraining": first.get("pretraining"),
           "resumed_from": [r["resumed_from"] for r in per_seed]}
    for key in ("per_class_accuracy", "precision", "f1"):
        if key in first:
            values = np.array([r[key] for r in per_seed], dtype=float)
            run[key], run[key + "_std"] = values.mean(0).tolist(), values.std(0).tolist()
    if "confusion" in first:
        run["confusion"] = np.sum([r["confusion"] for r in per_seed], axis=0).tolist()
    return run


def _mean_history(histories):
    length = min(len(h) for h in histories)
    mean = []
    for epoch in range(length):
        records = [h[epoch] for h in histories]
        mean.append({key: float(np.mean([r[key] for r in records])) for key in records[0]
                     if isinstance(records[0][key], (int, float))})
        mean[-1].update({f"{key}_std": float(np.std([r[key] for r in records])) for key in records[0]
                         if key.endswith(("_loss", "_accuracy", "_psnr"))})
    return mean
