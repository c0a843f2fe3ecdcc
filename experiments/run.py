#!/usr/bin/env python
"""The CNN lab as reproducible experiments: `python experiments/run.py NAME [options]`, NAME one of the
subcommands below (`--help` lists them). Each writes metrics.json, PNG figures and report.md to --out
(default runs/NAME/), saves a checkpoint per model and epoch (rerunning the same command resumes), and runs
data-parallel under `torchrun --nproc_per_node N experiments/run.py NAME ...`.
"""
import argparse
import shlex
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnnext import data as datasets  # noqa: E402
from cnnext.models import build_model, hdc_check  # noqa: E402
from cnnext.report import Report, plot_bars, plot_curves, plot_image_grid, write_json  # noqa: E402
from cnnext.train import ResumeError, TrainConfig, confusion_matrix, environment, evaluate, fit  # noqa: E402
from cnnext.train import init_distributed, is_main, log, psnr_per_image, ssim_per_image  # noqa: E402

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


# ------------------------------------------------------------------------------------------------ context

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
                             seed=self.args.seed)

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


# --------------------------------------------------------------------------------------------- reporting

def _percent(value):
    return f"{100 * value:.1f}%"


def _mean_epoch_time(run):
    times = [record["train_time_s"] for record in run["history"]]
    return sum(times) / max(len(times), 1)


def _mean_pixel_values(data):
    """Train and test mean of the (resized) input images: a first check for a shift between the splits."""
    def mean(dataset):
        images = dataset.images if hasattr(dataset, "images") else dataset.inputs
        return images.float().mean().item()
    return f"train {mean(data.train):.1f}, test {mean(data.test):.1f}"


def results_table(runs):
    if runs and "test_accuracy" in runs[0]["final"]:
        headers = ["run", "model", "backend", "parameters", "train loss", "test loss", "test accuracy",
                   "best test accuracy", "train time / epoch (s)", "wall time (s)"]
        rows = [[r["name"], r["model"], r["backend"], f"{r['parameters']:,}", f"{r['final']['train_loss']:.4f}",
                 f"{r['final']['test_loss']:.4f}", _percent(r["final"]["test_accuracy"]),
                 _percent(max(h["test_accuracy"] for h in r["history"])), f"{_mean_epoch_time(r):.1f}",
                 f"{r['wall_time_s']:.1f}"] for r in runs]
    else:
        headers = ["run", "model", "backend", "parameters", "train loss (MSE)", "test loss (MSE)", "test PSNR (dB)",
                   "test SSIM", "train time / epoch (s)", "wall time (s)"]
        rows = [[r["name"], r["model"], r["backend"], f"{r['parameters']:,}", f"{r['final']['train_loss']:.5f}",
                 f"{r['final']['test_loss']:.5f}", f"{r['final']['test_psnr']:.2f}", f"{r['final']['test_ssim']:.4f}",
                 f"{_mean_epoch_time(r):.1f}", f"{r['wall_time_s']:.1f}"] for r in runs]
    return headers, rows


def standard_figures(ctx):
    """Curves of every run, and bars of test accuracy and time per epoch for the classification ones."""
    runs = [run for run in ctx.runs if run["history"]]
    if not runs:
        return
    ctx.add_figure(plot_curves(runs, ctx.path("curves.png"), ctx.experiment.title),
                   "Loss and " + ("accuracy" if ctx.data.task == "classification" else "PSNR")
                   + " per epoch (train solid, test dashed)")
    if ctx.data.task == "classification":
        names = [run["name"] for run in runs]
        ctx.add_figure(plot_bars(names, [100 * run["final"]["test_accuracy"] for run in runs],
                                 ctx.path("accuracy.png"), "test accuracy (%)", "Test accuracy after the last epoch"),
                       "Test accuracy after the last epoch")
        ctx.add_figure(plot_bars(names, [_mean_epoch_time(run) for run in runs], ctx.path("time.png"),
                                 "seconds", "Training time per epoch", "{:.2f}"),
                       "Training time per epoch (forward + backward + update)")


def write_outputs(ctx, notes=(), extra=None):
    """metrics.json, the standard figures and report.md for the experiment in `ctx` (rank 0 only)."""
    if not is_main():
        return
    ctx.out.mkdir(parents=True, exist_ok=True)
    standard_figures(ctx)
    env = environment(ctx.backend, ctx.args.device)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    write_json(ctx.path("metrics.json"), {
        "experiment": ctx.experiment.name, "title": ctx.experiment.title, "command": command,
        "synthetic_data": ctx.data.synthetic, "data": ctx.data.summary(), "settings": ctx.settings,
        "quick": ctx.args.quick, "environment": env, "runs": ctx.runs, "extra": extra or {}})
    report = Report(f"{ctx.experiment.title}")
    if ctx.data.synthetic:
        report.paragraph("> **Synthetic data.** No data directory was given (`--data` or `CNNEXT_DATA`), so these "
                         "numbers come from a synthetic stand-in generated in code. They show that the code runs, "
                         "nothing about real images.")
    if ctx.args.quick:
        report.paragraph("> **Quick smoke run** (`--quick`): a few batches per epoch; the numbers mean nothing.")
    report.paragraph(ctx.experiment.help)
    report.heading("Setup")
    summary = ctx.data.summary()
    report.table(["", ""], [
        ["command", f"`{command}`"],
        ["data", f"{summary['dataset']} ({summary['source']})"],
        ["samples", f"{summary['train_samples']} train / {summary['test_samples']} test"
                    + (f", test = last {ctx.args.test_fraction:.0%} of each class by file name"
                       if summary["dataset"] == "vehicles" else "")],
        ["classes", ", ".join(summary["classes"]) if summary["classes"] else "-"],
        ["image size", f"{summary['image_size']} x {summary['image_size']}"],
        ["mean pixel value (0-255)", _mean_pixel_values(ctx.data)],
        ["training", f"{ctx.settings['epochs']} epochs, batch {ctx.settings['batch_size']}, "
                     f"{ctx.settings['optimizer']} lr {ctx.settings['lr']} (cosine), weight decay "
                     f"{ctx.settings['weight_decay']}, augmentation {'on' if ctx.args.augment else 'off'}, "
                     f"seed {ctx.args.seed}"],
        ["conv kernels", f"backend `{ctx.backend}` (comparison runs name theirs)"],
        ["environment", f"torch {env['torch']}, {env['threads']} threads, {env['processor']}, device {env['device']}, "
                        f"{env['world_size']} process(es)"],
    ])
    report.heading("Results")
    report.table(*results_table(ctx.runs))
    if ctx.data.task == "classification" and ctx.runs:
        report.paragraph("Test accuracy per class (rows of the confusion matrix in metrics.json):")
        report.table(["run"] + ctx.data.classes,
                     [[run["name"]] + [_percent(row[i] / max(sum(row), 1)) for i, row in enumerate(run["confusion"])]
                      for run in ctx.runs])
    for note in notes:
        if isinstance(note, tuple):
            report.table(*note)
        else:
            report.paragraph(note)
    report.heading("Figures")
    for path, caption in ctx.figures:
        report.figure(path, caption)
    report.write(ctx.path("report.md"))
    log(f"   wrote {ctx.path('report.md')}, metrics.json and {len(ctx.figures)} figure(s)")


# ------------------------------------------------------------------------------------------- experiments

def run_conv(ctx):
    other = "torch" if ctx.backend != "torch" else "cnnext"
    for blocks in (1, 3):
        for backend in (ctx.backend, other):
            ctx.train(f"cnn{blocks}-{backend}", "cnn", backend=backend, num_blocks=blocks)
    write_outputs(ctx, [f"The lab's hand-written convolution is `{ctx.backend}` here (cnnext's C++ kernels by "
                        f"default; `--backend naive` runs the Python loops) and its torch.nn counterpart is "
                        f"`{other}`; both build the same plain CNN with 1 and with 3 Conv-BN-ReLU-MaxPool blocks "
                        f"from the same seed, so accuracy and loss should agree closely and the time column "
                        f"compares the kernels."])


def run_hparams(ctx):
    base = {"num_blocks": 3, "kernel_size": 3}
    sweeps = {"num_blocks": [1, 2, 3, 4], "kernel_size": [3, 5, 7],
              "batch_size": [16, 32, 64], "lr": [0.1, 0.01, 0.001]}
    if ctx.args.quick:
        sweeps = {key: values[:2] for key, values in sweeps.items()}
    rows, seen = [], set()
    for key, values in sweeps.items():
        for value in values:
            options, config = dict(base), ctx.config
            if key in options:
                options[key] = value
            else:
                config = replace(ctx.config, **{key: value})
            setting = (options["num_blocks"], options["kernel_size"], config.batch_size, config.lr)
            name = f"L{setting[0]}-k{setting[1]}-b{setting[2]}-lr{setting[3]:g}"
            if setting in seen:
                run = next(r for r in ctx.runs if r["name"] == name)
            else:
                seen.add(setting)
                run, _ = ctx.train(name, "cnn", config=config, **options)
            rows.append([key, value, name, _percent(run["final"]["test_accuracy"]),
                         f"{run['final']['test_loss']:.4f}", f"{_mean_epoch_time(run):.1f}"])
    write_outputs(ctx, ["One hyper-parameter at a time is changed from the baseline (3 blocks, 3x3 kernels, "
                        f"batch {ctx.config.batch_size}, lr {ctx.config.lr:g}):",
                        (["varied", "value", "run", "test accuracy", "test loss", "train time / epoch (s)"], rows)])


def run_alexnet(ctx):
    _, model = ctx.train("alexnet", "alexnet", width=ctx.settings["width"])
    first_conv = "11x11 stride-4" if model.variant == "classic" else "3x3 stride-1 (for small images)"
    ctx.train("cnn3", "cnn", num_blocks=3)
    write_outputs(ctx, [f"AlexNet ({model.variant} variant: {first_conv} first conv, width "
                        f"x{ctx.settings['width']:g}) against the 3-block plain CNN."])


def run_mlp(ctx):
    ctx.train("mlp", "mlp")
    ctx.train("cnn3", "cnn", num_blocks=3)
    write_outputs(ctx, ["The previous lab's feed-forward network (flattened pixels, hidden layers 512 and 256) "
                        "against the 3-block CNN: compare the parameter counts with the accuracies."])


def _hdc_rows(rate_lists):
    rows = []
    for rates in rate_lists:
        check = hdc_check(rates)
        rows.append([str(list(rates)), "yes" if check else "no", str(list(check.max_distances)),
                     "; ".join(check.reasons) or "-"])
    return ["rates", "satisfies HDC", "M_i", "why not"], rows


def _sizes(image_size, rates):
    sizes = [image_size]
    for rate in rates:
        sizes.append(sizes[-1] - 2 * rate)
    return " -> ".join(map(str, sizes))


def run_dilated(ctx):
    rates = (1, 2, 5)
    ctx.train("hdc-1-2-5", "hdc", rates=rates)
    ctx.train("cnn3", "cnn", num_blocks=3)
    write_outputs(ctx, [f"The HDC network stacks three unpadded 3x3 Conv-BN-ReLU layers with dilation rates "
                        f"{list(rates)}, so the feature maps go {_sizes(ctx.data.image_size, rates)}, then global "
                        f"average pooling and one linear layer; it is compared with the 3-block plain CNN.",
                        _hdc_rows([rates])])


DILATION_RATES = [(1, 2, 5), (1, 2, 3), (1, 1, 1), (2, 4, 8), (1, 2, 9)]


def run_dilation(ctx):
    for rates in DILATION_RATES:
        ctx.train("hdc-" + "-".join(map(str, rates)), "hdc", rates=rates)
    rows = []
    for rates, run in zip(DILATION_RATES, ctx.runs):
        check = hdc_check(rates)
        rows.append([str(list(rates)), "yes" if check else "no", _sizes(ctx.data.image_size, rates),
                     _percent(run["final"]["test_accuracy"]), "; ".join(check.reasons) or "-"])
    write_outputs(ctx, ["The same unpadded 3-layer dilated network with other rate lists, including ones that "
                        "break the Hybrid Dilated Convolution rule (`cnnext.hdc_check`):",
                        (["rates", "HDC", "feature map sizes", "test accuracy", "why not HDC"], rows)])


def run_resnet(ctx):
    ctx.train("resnet18", "resnet18", width=ctx.settings["width"])
    ctx.train("plain18", "plain18", width=ctx.settings["width"])
    write_outputs(ctx, [f"ResNet-18 as the lab gives it (3x3 stem; stages 64, 128/2, 256/2, 512/2 of two basic "
                        f"blocks; 1x1 projection shortcuts where the shape changes; add before the ReLU) against "
                        f"the same 18 layers without shortcuts (width x{ctx.settings['width']:g})."])


def run_resnet_dilated(ctx):
    ctx.train("resnet18", "resnet18", width=ctx.settings["width"])
    ctx.train("resnet18-dilated", "resnet18-dilated", width=ctx.settings["width"])
    write_outputs(ctx, ["ResNet-18 against its dilated twin (Yu et al., Dilated Residual Networks): the last stage "
                        "has dilation 2 instead of stride 2, so it sees a 2x larger feature map with the same "
                        f"weights (width x{ctx.settings['width']:g})."])


def run_dehaze(ctx):
    run, model = ctx.train("aodnet", "aodnet")
    hazy_baseline = evaluate(_Identity(), ctx.data.test, "dehaze", ctx.config.batch_size, ctx.config.device,
                             ctx.config.max_batches)
    if not is_main():
        return
    model.eval()
    count = min(4, len(ctx.data.test))
    hazy, clear = (torch.stack(t) for t in zip(*(ctx.data.test[i] for i in range(count))))
    with torch.no_grad():
        output = model(hazy.to(ctx.config.device)).cpu().clamp(0, 1)
    row_titles = [f"test {i}: {p:.1f} dB / {s:.3f}" for i, (p, s)
                  in enumerate(zip(psnr_per_image(output, clear).tolist(), ssim_per_image(output, clear).tolist()))]
    ctx.add_figure(plot_image_grid(list(zip(hazy, output, clear)), ["hazy input", "AOD-Net output", "clear target"],
                                   ctx.path("dehaze_examples.png"), row_titles),
                   "Test images: hazy input, network output, clear target (row label: output PSNR / SSIM)")
    final = run["final"]
    ctx.add_figure(plot_bars(["hazy input", "AOD-Net"], [hazy_baseline["test_psnr"], final["test_psnr"]],
                             ctx.path("psnr.png"), "PSNR (dB)", "Test PSNR against the clear images", "{:.2f}"),
                   "Test PSNR: the hazy input itself against the network's output")
    table = (["compared with the clear image", "PSNR (dB)", "SSIM"],
             [["hazy input (no network)", f"{hazy_baseline['test_psnr']:.2f}", f"{hazy_baseline['test_ssim']:.4f}"],
              ["AOD-Net output", f"{final['test_psnr']:.2f}", f"{final['test_ssim']:.4f}"]])
    write_outputs(ctx, ["AOD-Net (Li et al. 2017) learns J = K(I) I - K(I) + 1 from the hazy image I with five "
                        "small convolutions, trained with MSE. PSNR and SSIM (Gaussian 11x11 window) are "
                        "averaged over the test images; the hazy input itself is the baseline.", table],
                  extra={"hazy_input_baseline": hazy_baseline})


class _Identity(torch.nn.Module):
    def forward(self, x):
        return x


EXPERIMENTS = {e.name: e for e in [
    Experiment("conv", "Hand-written vs torch.nn convolution", "The lab's first experiment: the same plain CNN "
               "built on the chosen backend's convolution and on torch.nn's: time, accuracy, loss.", run_conv),
    Experiment("hparams", "Hyper-parameters of the plain CNN", "Number of conv blocks, kernel size, batch size "
               "and learning rate, one at a time.", run_hparams),
    Experiment("alexnet", "AlexNet", "AlexNet (Krizhevsky et al. 2012) against the plain CNN.", run_alexnet,
               defaults={"width": 0.5}, quick_image_size=32),
    Experiment("mlp", "MLP vs CNN", "The feed-forward network of the previous lab against the CNN.", run_mlp),
    Experiment("dilated", "Dilated (HDC) convolution network", "A Hybrid Dilated Convolution network against "
               "the plain CNN.", run_dilated, defaults={"image_size": 32}, quick_image_size=32),
    Experiment("dilation", "Dilation rates and the HDC rule", "Dilation rate lists that satisfy and that break "
               "the HDC rule.", run_dilation, defaults={"image_size": 32}, quick_image_size=32),
    Experiment("resnet", "ResNet-18 vs a plain 18-layer network", "Residual connections against the same depth "
               "without them.", run_resnet, defaults={"image_size": 32, "epochs": 3, "batch_size": 64, "lr": 0.05}),
    Experiment("resnet-dilated", "ResNet-18 with dilated convolutions", "ResNet-18 against its dilated variant.",
               run_resnet_dilated, defaults={"image_size": 32, "epochs": 3, "batch_size": 64, "lr": 0.05}),
    Experiment("dehaze", "Image dehazing (regression)", "The regression task of the lab: hazy image in, clear "
               "image out.", run_dehaze, task="dehaze",
               defaults={"image_size": 128, "epochs": 10, "batch_size": 16, "lr": 1e-3, "optimizer": "adam",
                         "weight_decay": 0.0}, quick_image_size=32),
]}


# -------------------------------------------------------------------------------------------------- CLI

def common_options():
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("common options (defaults depend on the experiment; see docs)")
    group.add_argument("--dataset", choices=datasets.DATASETS, help="vehicles or cifar10 for classification "
                       "experiments (default vehicles); dehaze for `dehaze`")
    group.add_argument("--data", metavar="DIR", help="data directory with vehicles/, dehaze/, cifar10/ (default: "
                       "$CNNEXT_DATA; with neither, synthetic data generated in code, labelled as such)")
    group.add_argument("--epochs", type=int)
    group.add_argument("--batch-size", type=int, help="per process")
    group.add_argument("--lr", type=float, help="peak learning rate (cosine schedule)")
    group.add_argument("--image-size", type=int, help="images are resized to this square size")
    group.add_argument("--test-fraction", type=float, default=0.2,
                       help="vehicles/dehaze: the last fraction of each class (of the pairs) is the test set")
    group.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    group.add_argument("--backend", default="cnnext", choices=["cnnext", "torch", "naive"],
                       help="convolution kernels: cnnext's C++/CUDA, PyTorch's, or the naive Python loops "
                            "(tiny runs only)")
    group.add_argument("--width", type=float, help="channel width multiplier for alexnet (default 0.5), resnet and "
                       "resnet-dilated (default 1)")
    group.add_argument("--augment", action="store_true",
                       help="random flips and crops while training (and brightness/contrast for classification)")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--threads", type=int, help="torch.set_num_threads")
    group.add_argument("--out", metavar="DIR", help="output folder (default runs/NAME/)")
    group.add_argument("--quick", action="store_true", help="smoke test: tiny images, a few batches, 2 epochs")
    group.add_argument("--no-resume", action="store_true", help="ignore checkpoints and train from scratch")
    return parser


def build_parser():
    parser = argparse.ArgumentParser(prog="run.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="experiment", required=True, metavar="NAME")
    common = common_options()
    for experiment in EXPERIMENTS.values():
        commands.add_parser(experiment.name, parents=[common], help=experiment.title, description=experiment.help)
    commands.add_parser("all", parents=[common], help="every experiment above, one after another (into OUT/NAME/)")
    return parser


def run_all(args):
    base = Path(args.out or "runs")
    rows = []
    for name, experiment in EXPERIMENTS.items():
        args_for = argparse.Namespace(**{**vars(args), "out": str(base / name),
                                         "dataset": None if experiment.task == "dehaze" else args.dataset})
        started = time.perf_counter()
        ctx = Context(experiment, args_for)
        experiment.run(ctx)
        rows.append([f"[{name}]({name}/report.md)", experiment.title, len(ctx.runs),
                     f"{time.perf_counter() - started:.1f}"])
    if is_main():
        report = Report("The CNN lab: all experiments")
        report.table(["experiment", "title", "models trained", "wall time (s)"], rows)
        report.write(base / "report.md")
        write_json(base / "metrics.json", {"experiments": [row[0].split("]")[0][1:] for row in rows],
                                           "wall_time_s": {row[0].split("]")[0][1:]: float(row[3]) for row in rows}})


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.device = init_distributed(args.device)
    try:
        if args.experiment == "all":
            run_all(args)
        else:
            experiment = EXPERIMENTS[args.experiment]
            experiment.run(Context(experiment, args))
    except (datasets.DataLayoutError, ResumeError) as error:
        raise SystemExit(f"run.py: {error}") from None
    except KeyboardInterrupt:
        raise SystemExit("interrupted: the last finished epoch is checkpointed; rerun the same command to resume")
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
