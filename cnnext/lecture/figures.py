"""Drawing helpers shared by the lecture's figures: small matrices with their numbers written in the cells."""
from ..report import plt  # the project's matplotlib, on the Agg backend

__all__ = ["plt", "show_matrix", "save", "duration"]


def show_matrix(axis, values, title, cmap="RdBu_r", limit=None, fmt="{:g}", highlight=None):
    """`values` (2-D tensor) as coloured cells with each number written in; zero is white on the default
    diverging colour map. `highlight` = (row, col, height, width) outlines a window."""
    values = values.detach().double().cpu()
    limit = limit if limit is not None else max(float(values.abs().max()), 1e-12)
    axis.imshow(values.numpy(), cmap=cmap, vmin=-limit if cmap == "RdBu_r" else None,
                vmax=limit if cmap == "RdBu_r" else None)
    rows, cols = values.shape
    if rows * cols <= 120:
        for i in range(rows):
            for j in range(cols):
                value = float(values[i, j])
                axis.text(j, i, fmt.format(value + 0.0), ha="center", va="center", fontsize="small",
                          color="white" if abs(value) > 0.6 * limit and cmap == "RdBu_r" else "black")
    if highlight is not None:
        top, left, height, width = highlight
        axis.add_patch(plt.Rectangle((left - 0.5, top - 0.5), width, height, fill=False, edgecolor="orange",
                                     linewidth=2.5))
    axis.set_xticks(range(cols) if cols <= 12 else [])
    axis.set_yticks(range(rows) if rows <= 12 else [])
    axis.tick_params(labelsize="x-small", length=0)
    axis.set_title(title, fontsize="medium")


def save(figure, path):
    """Write the figure as a PNG and close it (tight layout unless it was made with a layout engine)."""
    if figure.get_layout_engine() is None:
        figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def duration(seconds):
    """Seconds as a readable duration: 14.6 ms, 3.25 s, 42 s, 3.5 min, 5.4 h."""
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.0f} s"
