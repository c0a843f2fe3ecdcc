"""What every experiment shares: its description (Experiment) and its resolved settings, data, output folder
and trained runs (Context)."""
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cnnext import data as datasets
from cnnext.data.cache import resolve_cache_dir
from cnnext.models import build_model
from cnnext.train import TrainConfig, confusion_matrix, fit, is_main, log

QUICK = {"epochs": 2, "batch_size": 8, "max_batches": 2, "limit_per_class": 12}


@dataclass
class Experiment:
    name: str
    title: str
    help: str
    run: object                 # function(Context) -> None
    task: str = "classification"
    defaults: dict = field(default_factory=dict)
    quick_image_size: int = 16


class Context:
    """One experiment's resolved settings, data and output folder; trains its model variants and keeps them."""

    def __init__(self, experiment, args):
        self.experiment, self.args = experiment, args
        settings = {"dataset": "dehaze" if experiment.task == "dehaze" else "vehicles", "epochs": 10,
                    "batch_size": 32, "lr": 0.01, "optimizer": "sgd", "weight_decay": 5e-4, "image_size": 64,
                    "width": 1.0, **experiment.defaults}
        if args.quick:
            settings.update(QUICK, image_size=experiment.quick_image_size, width=settings["width"] / 4)
        for key in ("dataset", "epochs", "batch_size", "lr", "image_size", "width"):
            if getattr(args, key) is not None:
                settings[key] = getattr(args, key)
        self._check_dataset(settings["dataset"])
        self.settings = settings
        self.backend = args.backend
        self.out = Path(args.out or Path("runs") / experiment.name)
        self.config = TrainConfig(epochs=settings["epochs"], batch_size=settings["batch_size"], lr=settings["lr"],
                                  optimizer=settings["optimizer"], weight_decay=settings["weight_decay"],
                                  device=args.device, seed=args.seed, max_batches=settings.get("max_batches"),
                                  resume=not args.no_resume)
        self.data = self.load_data(settings["image_size"])
        self.runs, self.figures = [], []
        label = "SYNTHETIC data (generated in code, not real images)" if self.data.synthetic else "real data"
        log(f"== {experiment.name}: {experiment.title}\n   {self.data.name} from {self.data.source} "
            f"[{label}]: {len(self.data.train)} train / {len(self.data.test)} test, {settings['image_size']} px; "
            f"backend {self.backend}, device {args.device}, out {self.out}")

    def _check_dataset(self, dataset):
        wanted = ("dehaze",) if self.experiment.task == "dehaze" else ("vehicles", "cifar10")
        if dataset not in wanted:
            raise SystemExit(f"run.py {self.experiment.name}: --dataset must be one of {list(wanted)} for this "
                             f"{self.experiment.task} experiment, got {dataset!r}")

    def load_data(self, image_size):
        return datasets.load(self.settings["dataset"], self.args.data, image_size,
                             test_fraction=self.args.test_fraction,
                             limit_per_class=self.settings.get("limit_per_class"), augment=self.args.augment,
                             seed=self.args.seed, cache_dir=resolve_cache_dir(getattr(self.args, "cache", None)))

    def train(self, run_name, model_name, backend=None, data=None, config=None, **options):
        """Builds model `model_name` with `options`, trains it as `run_name`, records and returns (run, model)."""
        backend = backend or self.backend
        data = data or self.data
        config = config or self.config
        if data.task == "classification":
            options = {"num_classes": len(data.classes), "image_size": data.image_size, **options}
        torch.manual_seed(self.args.seed)
        model = build_model(model_name, backend=backend, **options)
        signature = {"model": model_name, "backend": backend, "options": options, "data": data.summary()}
        run = fit(model, data, config, self.out / run_name, run_name, signature)
        run.update(model=model_name, backend=backend, options=options, batch_size=config.batch_size, lr=config.lr,
                   image_size=data.image_size)
        if data.task == "classification" and is_main():
            run["confusion"] = confusion_matrix(model, data.test, len(data.classes), config.batch_size,
                                                config.device)
        self.runs.append(run)
        return run, model

    def path(self, name):
        return self.out / name

    def add_figure(self, path, caption):
        self.figures.append((Path(path), caption))
