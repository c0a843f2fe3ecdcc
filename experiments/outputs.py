"""An experiment's outputs: metrics.json, the standard figures and report.md."""
import shlex
import sys

from cnnext.report import Report, plot_bars, plot_curves, write_json
from cnnext.train import environment, is_main, log


def percent(value):
    return f"{100 * value:.1f}%"


def mean_epoch_time(run):
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
                 f"{r['final']['test_loss']:.4f}", percent(r["final"]["test_accuracy"]),
                 percent(max(h["test_accuracy"] for h in r["history"])), f"{mean_epoch_time(r):.1f}",
                 f"{r['wall_time_s']:.1f}"] for r in runs]
    else:
        headers = ["run", "model", "backend", "parameters", "train loss", "test loss (MSE)", "test PSNR (dB)",
                   "test SSIM", "train time / epoch (s)", "wall time (s)"]
        rows = [[r["name"], r["model"], r["backend"], f"{r['parameters']:,}", f"{r['final']['train_loss']:.5f}",
                 f"{r['final']['test_loss']:.5f}", f"{r['final']['test_psnr']:.2f}", f"{r['final']['test_ssim']:.4f}",
                 f"{mean_epoch_time(r):.1f}", f"{r['wall_time_s']:.1f}"] for r in runs]
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
        ctx.add_figure(plot_bars(names, [mean_epoch_time(run) for run in runs], ctx.path("time.png"),
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
        "bundled_data": ctx.data.bundled, "data": ctx.data.summary(), "settings": ctx.settings,
        "quick": ctx.args.quick, "environment": env, "runs": ctx.runs, "extra": extra or {}})
    report = Report(f"{ctx.experiment.title}")
    if ctx.data.bundled:
        report.paragraph("> **Bundled sample data, not the lab's images.** No data directory was given (`--data` or "
                         "`CNNEXT_DATA`), so this ran on real data that scikit-learn ships (see *data* below).")
    if ctx.data.skipped:
        report.paragraph(f"> **{len(ctx.data.skipped)} unreadable image file(s) skipped** (corrupt, truncated or "
                         f"empty): " + ", ".join(f"`{path}`" for path in ctx.data.skipped))
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
                     f"{ctx.settings['weight_decay']}, augmentation "
                     f"{'on' if ctx.args.augment or ctx.settings.get('augment') else 'off'}, "
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
                     [[run["name"]] + [percent(row[i] / max(sum(row), 1)) for i, row in enumerate(run["confusion"])]
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
