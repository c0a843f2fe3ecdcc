"""The CIFAR-10 speedrun: airbench's recipe (cnnext.speedrun, cnnext.models.speedrun_net) on cnnext's kernels or,
with --backend torch, on PyTorch's; the headline is test accuracy against wall-clock training time."""
import shlex
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from cnnext.models import count_parameters  # noqa: E402
from cnnext.models.speedrun_net import SpeedrunNet  # noqa: E402
from cnnext.report import Report, plot_curves, write_json  # noqa: E402
from cnnext.speedrun import SpeedrunConfig, train  # noqa: E402
from cnnext.train import environment, is_main, log  # noqa: E402

from experiments.context import Experiment  # noqa: E402
from experiments.machine import LoadSampler  # noqa: E402
from experiments.outputs import percent  # noqa: E402

TARGETS = [(0.8685, 20 * 60, "the lab's ResNet-18 (86.85%) in 20 min"), (0.94, 60 * 60, "94% in 60 min")]


def _widths(width):
    return tuple(max(1, round(channels * width)) for channels in (64, 256, 256))


def time_to(history, accuracy):
    """Cumulative training seconds at the first epoch whose (non-TTA) test accuracy reaches `accuracy`."""
    return next((record["training_time_s"] for record in history if record["test_accuracy"] >= accuracy), None)


def plot_accuracy_vs_time(run, path, title):
    figure, axis = plt.subplots(figsize=(7, 4.2))
    minutes = [record["training_time_s"] / 60 for record in run["history"]]
    axis.plot(minutes, [100 * r["test_accuracy"] for r in run["history"]], marker="o", label="test (no TTA)")
    axis.plot([run["training_time_s"] / 60], [100 * run["final_tta"]["test_accuracy"]], "r*", markersize=12,
              label=f"final, TTA level {run['tta_level']}")
    for accuracy, seconds, label in TARGETS:
        axis.axhline(100 * accuracy, color="grey", linestyle=":", linewidth=1)
        axis.axvline(seconds / 60, color="grey", linestyle=":", linewidth=1)
        axis.annotate(label, (seconds / 60, 100 * accuracy), fontsize="x-small", ha="right", va="bottom")
    axis.set(xlabel="wall-clock training time (min)", ylabel="test accuracy (%)", title=title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small", loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _confusion(predictions, labels, num_classes):
    counts = torch.bincount(labels * num_classes + predictions, minlength=num_classes ** 2)
    return counts.view(num_classes, num_classes).tolist()


def run_speedrun(ctx):
    data, settings = ctx.data, ctx.settings
    for option in ("epochs", "batch_size"):
        if settings[option] < 1:
            raise SystemExit(f"run.py speedrun: --{option.replace('_', '-')} must be at least 1, got {settings[option]}")
    config = SpeedrunConfig(epochs=settings["epochs"], batch_size=settings["batch_size"], lr=settings["lr"],
                            weight_decay=settings["weight_decay"], seed=ctx.args.seed,
                            max_batches=settings.get("max_batches"))
    torch.manual_seed(ctx.args.seed)
    model = SpeedrunNet(num_classes=len(data.classes), widths=_widths(settings["width"]), backend=ctx.backend)
    name = f"speedrun-{ctx.backend}"
    with LoadSampler() as load:
        run = train(model, (data.train.images, data.train.labels), (data.test.images, data.test.labels), config,
                    name)
    test_labels = torch.as_tensor(data.test.labels)
    run.update(model="speedrun", backend=ctx.backend, parameters=count_parameters(model), widths=model_widths(model),
               confusion=_confusion(run.pop("predictions"), test_labels, len(data.classes)),
               final={**run["history"][-1], **run["final_tta"]}, load=load.summary(),
               time_to={f"{accuracy:.4f}": time_to(run["history"], accuracy) for accuracy, _, _ in TARGETS})
    log(f"  final with TTA level {config.tta_level}: {100 * run['final_tta']['test_accuracy']:.2f}%; {load.describe()}")
    ctx.runs.append(run)
    if is_main():
        # the trained weights; a timed run is never resumed, rerunning the command trains afresh
        ctx.path(name).mkdir(parents=True, exist_ok=True)
        torch.save({"model": model.state_dict(), "epoch": config.epochs, "history": run["history"]},
                   ctx.path(name) / "checkpoint.pt")
        write_speedrun_report(ctx, run, config, load)


def model_widths(model):
    return [group.conv2.out_channels for group in model.groups]


def _time_split_rows(run):
    timers, total = run["timers_s"], run["wall_time_s"]
    rows = [[phase.replace("_", " "), f"{seconds:.1f}", f"{100 * seconds / total:.1f}%"]
            for phase, seconds in timers.items()]
    other = total - sum(timers.values())
    return rows + [["other (setup, per-step metrics, progress bar)", f"{other:.1f}", f"{100 * other / total:.1f}%"],
                   ["total wall clock", f"{total:.1f}", "100%"]]


def write_speedrun_report(ctx, run, config, load):
    ctx.out.mkdir(parents=True, exist_ok=True)
    env = environment(ctx.backend, ctx.args.device)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    figures = [(plot_accuracy_vs_time(run, ctx.path("accuracy_vs_time.png"), f"CIFAR-10 speedrun ({ctx.backend})"),
                "Test accuracy against wall-clock training time (evaluation excluded); the star is the final "
                "accuracy with test-time augmentation"),
               (plot_curves([run], ctx.path("curves.png"), "CIFAR-10 speedrun"), "Loss and accuracy per epoch")]
    write_json(ctx.path("metrics.json"), {
        "experiment": ctx.experiment.name, "title": ctx.experiment.title, "command": command,
        "bundled_data": ctx.data.bundled, "data": ctx.data.summary(), "settings": ctx.settings,
        "config": vars(config), "quick": ctx.args.quick, "environment": env, "runs": ctx.runs})
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
        ["network", f"SpeedrunNet widths {run['widths']}, {run['parameters']:,} trainable parameters, "
                    f"conv/pool kernels `{ctx.backend}`"],
        ["recipe", f"{config.epochs} epochs, batch {config.batch_size}, Nesterov SGD lr {config.lr:g} / momentum "
                   f"{config.momentum} / weight decay {config.weight_decay:g} (airbench units, per 1024 samples), "
                   f"triangular schedule, label smoothing {config.label_smoothing}, lookahead every "
                   f"{config.lookahead_every} steps, {config.flip} flips + translate {config.translate}, TTA level "
                   f"{config.tta_level}, seed {config.seed}"],
        ["machine", f"{env['processor']}, {load.summary()['cpus']} CPUs, torch {env['torch']} with "
                    f"{env['threads']} threads, device {env['device']}"],
        ["machine load", load.describe() + " (the machine is shared; see metrics.json for samples and processes)"],
    ])
    report.heading("Results")
    final = run["final_tta"]["test_accuracy"]
    report.table(["target", "reached", "training time to it (epoch ends, no TTA)"],
                 [[label, "yes" if reached(run, accuracy, seconds) else "no",
                   _format_time(run["time_to"][f"{accuracy:.4f}"])] for accuracy, seconds, label in TARGETS])
    report.paragraph(f"Final test accuracy: **{100 * final:.2f}%** with TTA level {config.tta_level} "
                     f"({100 * run['history'][-1]['test_accuracy']:.2f}% without) after "
                     f"{run['training_time_s'] / 60:.1f} min of training ({run['wall_time_s'] / 60:.1f} min wall "
                     f"clock with evaluation).")
    report.table(["epoch", "training time (s)", "this epoch (s)", "process CPU time (s)", "train loss",
                  "train accuracy", "test accuracy"],
                 [[r["epoch"], f"{r['training_time_s']:.0f}", f"{r['train_time_s']:.0f}",
                   f"{r['process_cpu_time_s']:.0f}", f"{r['train_loss']:.4f}", percent(r["train_accuracy"]),
                   f"{100 * r['test_accuracy']:.2f}%"] for r in run["history"]])
    last = run["history"][-1]
    share = last["process_cpu_time_s"] / (last["wall_time_s"] * load.summary()["cpus"])
    report.paragraph(f"This process used {last['process_cpu_time_s']:.0f} CPU-seconds (all threads, evaluation "
                     f"included) in {last['wall_time_s']:.0f} s of wall clock: {100 * share:.0f}% of the machine's "
                     f"{load.summary()['cpus']} CPUs. Alone on the machine with {env['threads']} threads it would "
                     f"need roughly CPU time / threads = {last['process_cpu_time_s'] / env['threads'] / 60:.1f} min, "
                     f"if the threads scaled perfectly.")
    report.heading("Where the time went")
    report.table(["phase", "seconds", "share"], _time_split_rows(run))
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
               "airbench's 8-layer network (widths 64/256/256, patch-whitening first layer, Dirac init, BatchNorm "
               "with frozen scale) trained with its recipe: Nesterov SGD with a triangular schedule, label "
               "smoothing, lookahead, alternating flips and 2-pixel translations on whole batches, flip and "
               "translate test-time augmentation. Accuracy is plotted against wall-clock training time. A timed run "
               "always trains afresh (the final weights are saved, not resumed from).",
               run_speedrun, defaults={"dataset": "cifar10", "image_size": 32, "epochs": 10, "batch_size": 1024,
                                       "lr": 11.5, "weight_decay": 0.0153}, quick_image_size=32),
]}
