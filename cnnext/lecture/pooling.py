"""Item 7: max and average pooling, and max pooling's tolerance of a 1-pixel shift of the edge."""
import torch

from ..functional import avg_pool2d, conv2d, max_pool2d
from .cross_correlation import edge_image
from .figures import plt, save, show_matrix


def edge_map(image):
    return conv2d(image[None, None], torch.tensor([[[[1.0, -1.0]]]]))[0, 0]


def pooling_numbers(quick=False):
    """The lecture's 3x3 example, then 2x2 max pooling (stride 1) of the edge map before and after the black
    band moves one pixel to the right."""
    x = torch.arange(9.0).reshape(3, 3)
    image = edge_image()
    shifted = torch.roll(image, 1, dims=1)  # the black band moves from columns 2-5 to 3-6
    edges, edges_shifted = edge_map(image), edge_map(shifted)
    pooled = max_pool2d(edges[None, None], 2, stride=1)[0, 0]
    pooled_shifted = max_pool2d(edges_shifted[None, None], 2, stride=1)[0, 0]
    fired = lambda m: sorted({int(j) for j in (m[0] == 1).nonzero()[:, 0]})  # noqa: E731  (columns of row 0)
    return {"x": x, "max": max_pool2d(x[None, None], 2, stride=1)[0, 0],
            "avg": avg_pool2d(x[None, None], 2, stride=1)[0, 0],
            "image": image, "shifted": shifted, "edges": edges, "edges_shifted": edges_shifted,
            "pooled": pooled, "pooled_shifted": pooled_shifted,
            "edge_columns": fired(edges), "edge_columns_shifted": fired(edges_shifted),
            "pooled_columns": fired(pooled), "pooled_columns_shifted": fired(pooled_shifted),
            "edge_agreement": float((edges == edges_shifted).float().mean()),
            "pooled_agreement_at_edge": [c for c in fired(pooled) if c in fired(pooled_shifted)]}


def plot_pooling(result, path):
    figure = plt.figure(figsize=(13, 6.4), layout="constrained")
    top, bottom = figure.subfigures(2, 1, height_ratios=[0.8, 1])
    axes = top.subplots(1, 3)
    show_matrix(axes[0], result["x"], "X", cmap="Blues", highlight=(0, 0, 2, 2))
    show_matrix(axes[1], result["max"], "2x2 max pooling, stride 1", cmap="Greens", highlight=(0, 0, 1, 1))
    show_matrix(axes[2], result["avg"], "2x2 average pooling, stride 1", cmap="Greens", highlight=(0, 0, 1, 1))
    top.suptitle("The lecture's 3x3 example: max 4 and mean 2 of the orange window", fontsize="medium")
    axes = bottom.subplots(1, 4)
    show_matrix(axes[0], result["edges"], "edge map Y: +1 at column 1", limit=1)
    show_matrix(axes[1], result["edges_shifted"], "band 1 px right: +1 at column 2", limit=1)
    show_matrix(axes[2], result["pooled"], "max pool of Y: columns 0-1", limit=1, highlight=(0, 1, 5, 1))
    show_matrix(axes[3], result["pooled_shifted"], "max pool after shift: columns 1-2", limit=1,
                highlight=(0, 1, 5, 1))
    bottom.suptitle("A 1-pixel shift moves the edge map; after 2x2 max pooling column 1 fires in both (orange)",
                    fontsize="medium")
    return save(figure, path)


def pooling_handout(result, report, figure):
    report.paragraph("Pooling has no weights: it takes the maximum or the mean of each window, per channel. Max "
                     "pooling keeps a detection when the feature moves by less than the window, so the layer above "
                     "sees nearly the same map: tolerance to small shifts.")
    report.figure(figure, "Max and average pooling; the edge map before and after a 1-pixel shift, with and "
                          "without 2x2 max pooling")
    report.paragraph(f"Max pooling of X: {result['max'].int().tolist()}; average pooling: "
                     f"{result['avg'].tolist()}. The +1 edge sits in column {result['edge_columns']} and after the "
                     f"shift in column {result['edge_columns_shifted']}: the unpooled maps share no detection. After "
                     f"2x2 max pooling (stride 1) they fire in columns {result['pooled_columns']} and "
                     f"{result['pooled_columns_shifted']}: column {result['pooled_agreement_at_edge']} fires in both. "
                     "(Max pooling also drops the -1 edge: it keeps the largest value, here 0.)")
