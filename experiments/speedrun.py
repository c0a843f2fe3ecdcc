"""The CIFAR-10 speedrun: airbench's recipe (cnnext.speedrun, cnnext.models.speedrun_net) on cnnext's kernels or,
with --backend torch, on PyTorch's; the headline is test accuracy against wall-clock training time."""
import shlex
import sys
from dataclasses import replace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from cnnext.models import count_parameters  # noqa: E402
from cnnext.models.speedrun_net import SpeedrunNet  # noqa: E402
from cnnext.report import Report, plot_curves, write_json  # noqa: E402
from cnnext.speedrun import SpeedrunConfig, train  # noqa: E402
from cnnext.train import environment, is_main, log  # noqa: E402

from experiments.context import Experiment  # noqa: E402
from experiments.machine import LoadSampler, describe_load  # noqa: E402
from experiments.outputs import percent  # noqa: E402

TARGETS = [(0.8685, 20 * 60, "the lab's ResNet-18 (86.85%) in 20 min"), (0.94, 60 * 60, "94% in 60 min")]


def _widths(width):
    return tuple(max(1, round(channels * width)) for channels in (64, 256, 256))


def time_to(history, accuracy):
    """Cumulative training seconds at the first epoch whose (non-TTA) test accuracy reaches `accuracy`."""
    return next((record["training_time_s"] for record in history if record["test_accuracy"] >= accuracy), None)


def plot_accuracy_vs_time(runs, path, title):
    """Test accuracy at each epoch end against training time, one line per run (colour: backend, style: seed),
    with each run's final accuracy with TTA as a star."""
    figure, axis = plt.subplots(figsize=(7.5, 4.5))
    backends = sorted({run["backend"] for run in runs})
    for run in runs:
        colour = f"C{backends.index(run['backend'])}"
        style = ["-", "--", ":", "-."][run["seed_index"] % 4]
        minutes = [record["training_time_s"] / 60 for record in run["history"]]
        axis.plot(minutes, [100 * r["test_accuracy"] for r in run["history"]], style, color=colour, marker="o",
                  markersize=3, label=f"{run['backend']} seed {run['seed']}")
        axis.plot([run["training_time_s"] / 60], [100 * run["final_tta"]["test_accuracy"]], "*", color=colour,
                  markersize=11)
    for accuracy, seconds, label in TARGETS:
        axis.axhline(100 * accuracy, color="grey", linestyle=":", linewidth=1)
        axis.axvline(seconds / 60, color="grey", linestyle=":", linewidth=1)
        axis.annotate(label, (seconds / 60, 100 * accuracy), fontsize="x-small", ha="right", va="bottom")
    lowest = min(100 * record["test_accuracy"] for run in runs for record in run["history"])
    axis.set_ylim(max(lowest - 2, 0), 100)
    axis.set(xlabel="wall-clock training time (min)", ylabel="test accuracy (%)",
             title=f"{title}; stars: final accuracy with TTA")
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small", loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _confusion(predictions, labels, num_classes):
    counts = torch.bincount(labels * num_classes + predictions, minlength=num_classes ** 2)
    return counts.view(num_classes, num_classes).tolist()


def add_options(group):
    group.add_argument("--compare-torch", action="store_true",
                       help="also train every seed on PyTorch's kernels, alternating the two backends seed by seed, "
                            "and report the accuracy difference and the speed ratio")


def run_speedrun(ctx):
    settings = ctx.settings
    for option in ("epochs", "batch_size"):
        if settings[option] < 1:
            raise SystemExit(f"run.py speedrun: --{option.replace('_', '-')} must be at least 1, got {settings[option]}")
    backends = [ctx.backend]
    if getattr(ctx.args, "compare_torch", False) and ctx.backend != "torch":
        backends.append("torch")
    config = SpeedrunConfig(epochs=settings["epochs"], batch_size=settings["batch_size"], lr=settings["lr"],
                            weight_decay=settings["weight_decay"], max_batches=settings.get("max_batches"),
                            precision=settings["precision"])
    for index, seed in enumerate(ctx.seeds):
        for backend in backends:
            ctx.runs.append(_train_one(ctx, backend, replace(config, seed=seed), index))
    if is_main():
        write_speedrun_report(ctx, config, backends)


def _train_one(ctx, backend, config, seed_index):
    """One timed run of the recipe on `backend`; saves its final weights (a timed run is never resumed)."""
    data = ctx.data
    torch.manual_seed(config.seed)
    model = SpeedrunNet(num_classes=len(data.classes), widths=_widths(ctx.settings["width"]), backend=backend)
    name = f"speedrun-{backend}-seed{config.seed}"
    with LoadSampler() as load:
        run = train(model, (data.train.images, data.train.labels), (data.test.images, data.test.labels), config,
                    name)
    test_labels = torch.as_tensor(data.test.labels)
    run.update(model="speedrun", backend=backend, seed=config.seed, seed_index=seed_index,
               parameters=count_parameters(model), widths=model_widths(model),
               confusion=_confusion(run.pop("predictions"), test_labels, len(data.classes)),
               final={**run["history"][-1], **run["final_tta"]}, load=load.summary(),
               time_to={f"{accuracy:.4f}": time_to(run["history"], accuracy) for accuracy, _, _ in TARGETS})
    log(f"  {name}: final with TTA level {config.tta_level}: {100 * run['final_tta']['test_accuracy']:.2f}% after "
        f"{run['training_time_s'] / 60:.1f} min of training; {load.describe()}")
    if is_main():
        ctx.path(name).mkdir(parents=True, exist_ok=True)
        torch.save({"model": model.state_dict(), "epoch": config.epochs, "history": run["history"]},
                   ctx.path(name) / "checkpoint.pt")
    return run


def model_widths(model):
    return [group.conv2.out_channels for group in model.groups]


def _time_split_rows(runs):
    """Seconds per phase, summed over `runs` (all of one backend)."""
    phases = runs[0]["timers_s"]
    total = sum(run["wall_time_s"] for run in runs)
    seconds = {phase: sum(run["timers_s"][phase] for run in runs) for phase in phases}
    rows = [[phase.replace("_", " "), f"{value:.1f}", f"{100 * value / total:.1f}%"] for phase, value in seconds.items()]
    other = total - sum(seconds.values())
    return rows + [["other (setup, per-step metrics, progress bar)", f"{other:.1f}", f"{100 * other / total:.1f}%"],
                   ["total wall clock", f"{total:.1f}", "100%"]]


def _mean_std(values, scale=1.0, digits=2):
    values = np.asarray(values, dtype=float) * scale
    return f"{values.mean():.{digits}f}" + (f" ± {values.std():.{digits}f}" if len(values) > 1 else "")


def _of(runs, backend):
    return [run for run in runs if run["backend"] == backend]


def _backend_rows(runs, backends):
    rows = []
    for backend in backends:
        own = _of(runs, backend)
        rows.append([backend, len(own), _mean_std([r["final_tta"]["test_accuracy"] for r in own], 100) + "%",
                     _mean_std([r["history"][-1]["test_accuracy"] for r in own], 100) + "%",
                     _mean_std([r["training_time_s"] for r in own], 1 / 60, 1)])
    return rows


def _comparison(runs, backends):
    """The accuracy difference and the training-time ratio of the two backends, from their seed means."""
    first, second = [_of(runs, backend) for backend in backends]
    difference = 100 * (np.mean([r["final_tta"]["test_accuracy"] for r in first]) -
                        np.mean([r["final_tta"]["test_accuracy"] for r in second]))
    ratio = np.mean([r["training_time_s"] for r in second]) / np.mean([r["training_time_s"] for r in first])
    name, other = backends
    return (f"Mean final accuracy (with TTA) {name} minus {other}: **{difference:+.2f} points**. Training time "
            f"{other} / {name}: **{ratio:.2f}x** (above 1: {name} is faster). The two backends were trained "
            f"alternately, seed by seed, in one process, so both saw the same machine load.")


def write_speedrun_report(ctx, config, backends):
    runs = ctx.runs
    ctx.out.mkdir(parents=True, exist_ok=True)
    env = environment(ctx.backend, ctx.args.device)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    figures = [(plot_accuracy_vs_time(runs, ctx.path("accuracy_vs_time.png"), "CIFAR-10 speedrun"),
                "Test accuracy at each epoch end against wall-clock training time (evaluation excluded); the stars "
                "are the final accuracies with test-time augmentation"),
               (plot_curves(runs, ctx.path("curves.png"), "CIFAR-10 speedrun"), "Loss and accuracy per epoch")]
    write_json(ctx.path("metrics.json"), {
        "experiment": ctx.experiment.name, "title": ctx.experiment.title, "command": command,
        "bundled_data": ctx.data.bundled, "data": ctx.data.summary(), "settings": ctx.settings,
        "config": vars(config), "seeds": ctx.seeds, "backends": backends, "quick": ctx.args.quick,
        "environment": env, "runs": runs})
    report = Report(ctx.experiment.title)
    if ctx.data.bundled:
        report.paragraph("> **Bundled sample data, not CIFAR-10.** No data directory was given (`--data` or "
                         "`CNNEXT_DATA`), so this ran on scikit-learn's handwritten digits.")
    if ctx.args.quick:
        report.paragraph("> **Quick smoke run** (`--quick`): a few batches per epoch; the numbers mean nothing.")
    report.paragraph(ctx.experiment.help)
    summary = ctx.data.summary()
    report.heading("Setup")
    report.table(["", ""], [
        ["command", f"`{command}`"],
        ["data", f"{summary['dataset']} ({summary['source']}): {summary['train_samples']} train / "
                 f"{summary['test_samples']} test, {summary['image_size']} px"],
        ["network", f"SpeedrunNet widths {runs[0]['widths']}, {runs[0]['parameters']:,} trainable parameters"],
        ["kernels", " and ".join(f"`{backend}`" for backend in backends) +
         (" (alternating, seed by seed)" if len(backends) > 1 else "")],
        ["recipe", f"{config.epochs} epochs, batch {config.batch_size}, Nesterov SGD lr {config.lr:g} / momentum "
                   f"{config.momentum} / weight decay {config.weight_decay:g} (airbench units, per 1024 samples), "
                   f"triangular schedule, label smoothing {config.label_smoothing}, lookahead every "
                   f"{config.lookahead_every} steps, {config.flip} flips + translate {config.translate}, TTA level "
                   f"{config.tta_level}"
                   + (", bfloat16 mixed precision (autocast)" if config.precision == "bfloat16" else ", float32")],
        ["seeds", ", ".join(str(seed) for seed in ctx.seeds)],
        ["machine", f"{env['processor']}, {runs[0]['load']['cpus']} CPUs, torch {env['torch']} with "
                    f"{env['threads']} threads, device {env['device']}"],
    ])
    report.heading("Results")
    report.table(["kernels", "runs", "final test accuracy with TTA", "without TTA", "training time (min)"],
                 _backend_rows(runs, backends))
    if len(backends) > 1:
        report.paragraph(_comparison(runs, backends))
    report.table(["run", "final with TTA", "training (min)"] +
                 [f"{label}: reached (first epoch end at it)" for _, _, label in TARGETS],
                 [[run["name"], f"{100 * run['final_tta']['test_accuracy']:.2f}%", f"{run['training_time_s'] / 60:.1f}"]
                  + [f"{'yes' if reached(run, accuracy, seconds) else 'no'} "
                     f"({_format_time(run['time_to'][f'{accuracy:.4f}'])})" for accuracy, seconds, _ in TARGETS]
                  for run in runs])
    report.heading("Per epoch")
    for run in runs:
        report.paragraph(f"**{run['name']}**: {100 * run['final_tta']['test_accuracy']:.2f}% with TTA level "
                         f"{run['tta_level']} ({100 * run['history'][-1]['test_accuracy']:.2f}% without) after "
                         f"{run['training_time_s'] / 60:.1f} min of training ({run['wall_time_s'] / 60:.1f} min "
                         f"wall clock with evaluation); {describe_load(run['load'])}.")
        report.table(["epoch", "training time (s)", "this epoch (s)", "process CPU time (s)", "train loss",
                      "train accuracy", "test accuracy"],
                     [[r["epoch"], f"{r['training_time_s']:.0f}", f"{r['train_time_s']:.0f}",
                       f"{r['process_cpu_time_s']:.0f}", f"{r['train_loss']:.4f}", percent(r["train_accuracy"]),
                       f"{100 * r['test_accuracy']:.2f}%"] for r in run["history"]])
    report.heading("Where the time went")
    for backend in backends:
        report.paragraph(f"`{backend}` kernels, summed over their runs:")
        report.table(["phase", "seconds", "share"], _time_split_rows(_of(runs, backend)))
    last = runs[-1]["history"][-1]
    report.paragraph(f"The last run used {last['process_cpu_time_s']:.0f} CPU-seconds (all threads, evaluation "
                     f"included) in {last['wall_time_s']:.0f} s of wall clock on {runs[-1]['load']['cpus']} CPUs; "
                     "metrics.json has the load samples and the busiest processes at the start and end of each run.")
    report.heading("Figures")
    for path, caption in figures:
        report.figure(path, caption)
    report.write(ctx.path("report.md"))
    log(f"   wrote {ctx.path('report.md')}, metrics.json and {len(figures)} figures")


def reached(run, accuracy, seconds):
    """Whether an epoch's test accuracy, or the final one with TTA, reached `accuracy` within `seconds` of training."""
    at_epoch = run["time_to"][f"{accuracy:.4f}"]
    with_tta = run["final_tta"]["test_accuracy"] >= accuracy and run["training_time_s"] <= seconds
    return (at_epoch is not None and at_epoch <= seconds) or with_tta


def _format_time(seconds):
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


EXPERIMENTS = {e.name: e for e in [
    Experiment("speedrun", "CIFAR-10 speedrun on two CPU cores",
               "airbench's 8-layer network (widths 64/256/256 times --width, patch-whitening first layer, Dirac init, BatchNorm "
               "with frozen scale) trained with its recipe: Nesterov SGD with a triangular schedule, label "
               "smoothing, lookahead, alternating flips and 2-pixel translations on whole batches, flip and "
               "translate test-time augmentation. Accuracy is plotted against wall-clock training time. A timed run "
               "always trains afresh (the final weights are saved, not resumed from).",
               run_speedrun, defaults={"dataset": "cifar10", "image_size": 32, "epochs": 10, "batch_size": 1024,
                                       "lr": 11.5, "weight_decay": 0.0153, "seeds": 1}, quick_image_size=32,
               add_options=add_options),
]}
