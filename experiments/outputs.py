"""An experiment's outputs: metrics.json, the standard figures and report.md."""
import shlex
import sys

from cnnext.report import Report, plot_bars, plot_curves, plot_labelled_images, write_json
from cnnext.testtime import TENT_VARIANTS, VARIANTS
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


def mean_std(run, key, scale=100, digits=1, unit="%"):
    """'mean ± std' of run['final'][key] over its seeds (the std only with more than one seed)."""
    mean = scale * run["final"][key]
    if len(run.get("seeds", [])) > 1:
        return f"{mean:.{digits}f} ± {scale * run['final_std'][key]:.{digits}f}{unit}"
    return f"{mean:.{digits}f}{unit}"


def _per_class(run, key, index):
    value = 100 * run[key][index]
    if len(run.get("seeds", [])) > 1:
        return f"{value:.1f} ± {100 * run[key + '_std'][index]:.1f}%"
    return f"{value:.1f}%"


def results_table(runs, baseline=None):
    if runs and "test_accuracy" in runs[0]["final"]:
        headers = ["run", "model", "backend", "parameters", "seeds", "train loss", "test loss (last epoch)",
                   "test accuracy", "train time / epoch (s)", "wall time, all seeds (s)"]
        rows = [[r["name"], r["model"], r["backend"], f"{r['parameters']:,}", len(r["seeds"]),
                 mean_std(r, "train_loss", 1, 4, ""), mean_std(r, "test_loss", 1, 4, ""),
                 "**" + mean_std(r, "test_accuracy") + "**", f"{mean_epoch_time(r):.1f}",
                 f"{r['wall_time_s']:.1f}"] for r in runs]
        if baseline is not None:
            rows.append(["majority class (baseline)", "-", "-", "0", "-", "-", "-", percent(baseline["accuracy"]),
                         "-", "-"])
    else:
        headers = ["run", "model", "backend", "parameters", "seeds", "train loss", "test loss (MSE)",
                   "test PSNR (dB)", "test SSIM", "train time / epoch (s)", "wall time (s)"]
        rows = [[r["name"], r["model"], r["backend"], f"{r['parameters']:,}", len(r["seeds"]),
                 mean_std(r, "train_loss", 1, 5, ""), mean_std(r, "test_loss", 1, 5, ""),
                 mean_std(r, "test_psnr", 1, 2, ""), mean_std(r, "test_ssim", 1, 4, ""),
                 f"{mean_epoch_time(r):.1f}", f"{r['wall_time_s']:.1f}"] for r in runs]
    return headers, rows


def per_class_tables(ctx):
    """Per-class accuracy (recall) with the baseline row, and per-class precision / F1, as report tables."""
    classes, runs = ctx.data.classes, ctx.runs
    accuracy = (["run"] + classes, [[r["name"]] + [_per_class(r, "per_class_accuracy", i)
                                                   for i in range(len(classes))] for r in runs]
                + [["majority class (baseline)"] + [percent(v) for v in ctx.baseline["recall"]]])
    quality = (["run"] + [f"{c} precision / F1" for c in classes],
               [[r["name"]] + [f"{100 * r['precision'][i]:.1f}% / {100 * r['f1'][i]:.1f}%"
                               for i in range(len(classes))] for r in runs])
    return accuracy, quality


def test_time_table(ctx):
    """Test accuracy of each run's final model under every test-time method (cnnext.testtime), mean ± std."""
    names = {"plain": "final model", "tta": "+ flip TTA", "bn-adapt": "BN re-estimated on test images",
             "bn-adapt+tta": "BN re-estimated + flip TTA", "tent": "TENT on test images", "tent+tta": "TENT + flip TTA"}
    variants = VARIANTS + (TENT_VARIANTS if ctx.settings["tent"] else ())
    headers = ["run"] + [names[v] + (" (reported)" if v == ctx.test_variant() else "") for v in variants]
    return headers, [[r["name"]] + [mean_std(r, f"test_accuracy_{v}") for v in variants] for r in ctx.runs]


def pretraining_table(runs):
    rows = [[run["name"], f"{p['train_samples']:,} images, {p['epochs']} epochs, batch {p['batch_size']}, lr {p['lr']}",
             percent(p["test_accuracy"]), f"{p['wall_time_s']:.0f} s", "yes" if p["reused"] else "no"]
            for run in runs for p in [run["pretraining"]]]
    return ["run", "CIFAR-10 training", "CIFAR-10 test accuracy", "pretraining time", "taken from the cache"], rows


def standard_figures(ctx):
    """Curves of every run, and bars of test accuracy and time per epoch for the classification ones."""
    runs = [run for run in ctx.runs if run["history"]]
    if not runs:
        return
    seeds = len(ctx.seeds)
    ctx.add_figure(plot_curves(runs, ctx.path("curves.png"), ctx.experiment.title),
                   "Loss and " + ("accuracy" if ctx.data.task == "classification" else "PSNR")
                   + " per epoch (train solid, test dashed)" + (f"; mean over {seeds} seeds, band ± 1 std"
                                                                 if seeds > 1 else ""))
    if ctx.data.task == "classification":
        names = [run["name"] for run in runs]
        errors = [100 * run["final_std"]["test_accuracy"] for run in runs] if seeds > 1 else None
        caption = "Test accuracy of the final model" + (f" (mean ± std over {seeds} seeds)" if seeds > 1 else "")
        ctx.add_figure(plot_bars(names, [100 * run["final"]["test_accuracy"] for run in runs],
                                 ctx.path("accuracy.png"), "test accuracy (%)", caption, errors=errors,
                                 reference=(100 * ctx.baseline["accuracy"], "majority class")), caption)
        ctx.add_figure(plot_bars(names, [mean_epoch_time(run) for run in runs], ctx.path("time.png"),
                                 "seconds", "Training time per epoch", "{:.2f}"),
                       "Training time per epoch (forward + backward + update)")
        errors_figure(ctx)


def errors_figure(ctx, limit=32):
    """The test images the best run's last model gets wrong (as the network sees them), titled true -> predicted."""
    test = ctx.data.test
    runs = [run for run in ctx.runs if len(run["per_seed"][-1].get("predictions", ())) == len(test)]
    if not runs:
        return
    best = max(runs, key=lambda run: run["final"]["test_accuracy"])
    predictions = best["per_seed"][-1]["predictions"]
    wrong = [i for i, predicted in enumerate(predictions) if predicted != int(test.labels[i])]
    classes = ctx.data.classes
    shown = wrong[:limit]
    caption = (f"The {len(wrong)} test images that {best['name']} (seed {best['seeds'][-1]}, "
               f"{ctx.test_variant()}) gets wrong, true class -> predicted" + (f"; the first {limit}" if
                                                                                 len(wrong) > limit else ""))
    ctx.add_figure(plot_labelled_images([test.images[i].float() / 255 for i in shown],
                                        [f"{classes[int(test.labels[i])]} -> {classes[predictions[i]]}"
                                         for i in shown], ctx.path("errors.png"),
                                        f"{best['name']}: test errors at {ctx.data.image_size} px"), caption)


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
        "bundled_data": ctx.data.bundled, "data": ctx.data.summary(), "split": ctx.data.split,
        "test_fraction": ctx.args.test_fraction, "seeds": ctx.seeds, "settings": ctx.settings,
        "methods": ctx.methods(), "reported_test_variant": ctx.test_variant() if ctx.baseline else None,
        "majority_baseline": ctx.baseline, "quick": ctx.args.quick, "environment": env, "runs": ctx.runs,
        "extra": extra or {}})
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
        ["samples", f"{summary['train_samples']} train / {summary['test_samples']} test"],
        ["split", ctx.data.split or "-"],
        ["classes", ", ".join(summary["classes"]) if summary["classes"] else "-"],
        ["image size", f"{summary['image_size']} x {summary['image_size']}"],
        ["mean pixel value (0-255)", _mean_pixel_values(ctx.data)],
        ["training", f"{ctx.settings['epochs']} epochs, batch {ctx.settings['batch_size']}, "
                     f"{ctx.settings['optimizer']} lr {ctx.settings['lr']} (cosine to 0), weight decay "
                     f"{ctx.settings['weight_decay']}"
                     + (f", label smoothing {ctx.settings['label_smoothing']}"
                        if ctx.settings["label_smoothing"] else "")
                     + (", bfloat16 mixed precision (autocast)" if ctx.settings["precision"] == "bfloat16" else "")
                     + (", channels-last memory" if ctx.settings["memory_format"] == "channels_last" else "")],
        ["seeds", f"{', '.join(map(str, ctx.seeds))} (model initialisation and batch order; the split is fixed "
                  f"by --seed {ctx.args.seed})" if len(ctx.seeds) > 1 else str(ctx.seeds[0])],
    ] + [[name, value] for name, value in ctx.methods().items()] + [
        ["conv kernels", f"backend `{ctx.backend}` (comparison runs name theirs)"],
        ["environment", f"torch {env['torch']}, {env['threads']} threads, {env['processor']}, device {env['device']}, "
                        f"{env['world_size']} process(es)"],
    ])
    report.heading("Results")
    report.table(*results_table(ctx.runs, ctx.baseline))
    if ctx.data.task == "classification" and ctx.runs:
        accuracy, quality = per_class_tables(ctx)
        report.paragraph("Test accuracy per class (recall; the rows of the confusion matrices in metrics.json):")
        report.table(*accuracy)
        report.paragraph("Per-class precision and F1 (scikit-learn), mean over the seeds:")
        report.table(*quality)
        report.paragraph("The same final models under each test-time method (weights never see a test label; "
                         "re-estimating BatchNorm statistics on the test images, and TENT's training of their "
                         "scales and shifts, are transductive, unsupervised domain adaptation):")
        report.table(*test_time_table(ctx))
    pretrained = [run for run in ctx.runs if run.get("pretraining")]
    if pretrained:
        report.paragraph("Pretraining on CIFAR-10 (experiments/pretrain.py; the fine-tuning time is in the tables "
                         "above, this is spent once per model and cached):")
        report.table(*pretraining_table(pretrained))
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
