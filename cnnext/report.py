"""Figures (matplotlib, PNG) and report.md: the tables and plots of an experiment put together like a lab report."""
import json
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _score_key(run):
    """'accuracy' for classification runs, 'psnr' for dehazing runs."""
    return "accuracy" if "test_accuracy" in run["history"][0] else "psnr"


def _band(axis, epochs, history, key, scale, colour):
    """The mean +- one standard deviation over seeds, where the history has `key`_std."""
    if f"{key}_std" in history[0]:
        mean = [scale * r[key] for r in history]
        std = [scale * r[f"{key}_std"] for r in history]
        axis.fill_between(epochs, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                          color=colour, alpha=0.15, linewidth=0)


def plot_curves(runs, path, title, splits=("train", "test"), log_loss=False):
    """Loss (left) and accuracy or PSNR (right) per epoch; train solid, test dashed, one colour per run; a
    shaded band of one standard deviation where the runs are means over seeds."""
    runs = [run for run in runs if run["history"]]
    score = _score_key(runs[0])
    figure, (loss_axis, score_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for index, run in enumerate(runs):
        colour = f"C{index % 10}"
        epochs = [record["epoch"] for record in run["history"]]
        for split, style in (("train", "-"), ("test", "--")):
            if split not in splits:
                continue
            scale = 100 if score == "accuracy" else 1
            loss_axis.plot(epochs, [r[f"{split}_loss"] for r in run["history"]], style, color=colour, marker=".",
                           label=f"{run['name']} {split}")
            _band(loss_axis, epochs, run["history"], f"{split}_loss", 1, colour)
            score_axis.plot(epochs, [scale * r[f"{split}_{score}"] for r in run["history"]], style, color=colour,
                            marker=".", label=f"{run['name']} {split}")
            _band(score_axis, epochs, run["history"], f"{split}_{score}", scale, colour)
    loss_axis.set(xlabel="epoch", ylabel="loss", title="loss")
    if log_loss:
        loss_axis.set_yscale("log")
    score_axis.set(xlabel="epoch", ylabel="accuracy (%)" if score == "accuracy" else "PSNR (dB)",
                   title="accuracy" if score == "accuracy" else "PSNR")
    for axis in (loss_axis, score_axis):
        axis.grid(alpha=0.3)
        axis.xaxis.get_major_locator().set_params(integer=True)
    score_axis.legend(fontsize="small", loc="best")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)


def plot_bars(labels, values, path, ylabel, title, value_format="{:.1f}", errors=None, reference=None):
    """One bar per label, its value written on top; `errors` draws +- error bars (standard deviations),
    `reference` = (value, label) a dashed horizontal line (a baseline)."""
    figure, axis = plt.subplots(figsize=(max(4.5, 1.1 * len(labels) + 2), 3.8))
    bars = axis.bar(range(len(labels)), values, color=[f"C{i % 10}" for i in range(len(labels))], yerr=errors,
                    capsize=4 if errors is not None else 0)
    if reference is not None:
        axis.axhline(reference[0], color="grey", linestyle="--", linewidth=1, label=reference[1])
        axis.legend(fontsize="small", loc="lower right")
    axis.set_xticks(range(len(labels)), labels, rotation=20 if len(labels) > 4 else 0, ha="right"
                    if len(labels) > 4 else "center")
    for bar, value in zip(bars, values):
        axis.annotate(value_format.format(value), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                      ha="center", va="bottom", fontsize="small")
    axis.set(ylabel=ylabel, title=title)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)


def plot_heatmaps(arrays, titles, path, suptitle, colorbar_label=""):
    """One heat map per 2-D array side by side, each on its own colour scale; exact zeros are drawn white."""
    figure, axes = plt.subplots(1, len(arrays), figsize=(3.2 * len(arrays), 3.4), squeeze=False)
    for axis, array, title in zip(axes[0], arrays, titles):
        values = array.detach().cpu().numpy() if hasattr(array, "detach") else array
        masked = np.ma.masked_equal(values, 0)
        image = axis.imshow(masked, cmap=plt.get_cmap("viridis").with_extremes(bad="white"),
                            interpolation="nearest")
        axis.set_xticks([])
        axis.set_yticks([])
        axis.set_title(title, fontsize="small")
        figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label=colorbar_label)
    figure.suptitle(suptitle)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)


def plot_image_grid(rows, column_titles, path, row_titles=None):
    """A grid of images (tensors [3, H, W] in [0, 1]); rows[i][j] goes to row i, column j."""
    figure, axes = plt.subplots(len(rows), len(column_titles), figsize=(3 * len(column_titles), 3 * len(rows)),
                                squeeze=False)
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            axis = axes[i][j]
            axis.imshow(image.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy())
            axis.set_xticks([])
            axis.set_yticks([])
            if i == 0:
                axis.set_title(column_titles[j])
            if j == 0 and row_titles:
                axis.set_ylabel(row_titles[i])
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)


def plot_labelled_images(images, titles, path, suptitle, columns=8):
    """Small images (tensors [3, H, W] in [0, 1]) in rows of `columns`, each under its title."""
    rows = max(1, -(-len(images) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(1.5 * columns, 1.7 * rows + 0.4), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(images):
            axis.imshow(images[index].detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy())
            axis.set_title(titles[index], fontsize=8)
    figure.suptitle(suptitle)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)


class Report:
    """Markdown built up from paragraphs, tables and figures, written next to its figures."""

    def __init__(self, title):
        self.lines = [f"# {title}", ""]

    def heading(self, text, level=2):
        self.lines += [f"{'#' * level} {text}", ""]

    def paragraph(self, text):
        self.lines += [text, ""]

    def table(self, headers, rows):
        self.lines.append("| " + " | ".join(headers) + " |")
        self.lines.append("|" + "|".join(" --- " for _ in headers) + "|")
        self.lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
        self.lines.append("")

    def figure(self, path, caption):
        self.lines += [f"![{caption}]({Path(path).name})", "", f"*{caption}*", ""]

    def write(self, path):
        Path(path).write_text("\n".join(self.lines))
        return Path(path)


def write_json(path, payload):
    Path(path).write_text(json.dumps(payload, indent=2, default=str))
    return Path(path)
