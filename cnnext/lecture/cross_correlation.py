"""Items 1 and 2: 2-D cross-correlation by hand, the output-shape rule y = H - k + 1, and edge detection."""
import torch

from .. import naive
from ..functional import conv2d
from .figures import plt, save, show_matrix


def corr2d(x, kernel):
    """The lecture's corr2d on 2-D tensors, computed by the lab's loop convolution (cnnext.naive)."""
    return naive.conv2d(x[None, None], kernel[None, None])[0, 0]


def corr2d_numbers(quick=False):
    """The lecture's 3x3 input and 2x2 kernel, and y = H - k + 1 checked against cnnext.conv2d."""
    x = torch.arange(9.0).reshape(3, 3)
    kernel = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    loops = corr2d(x, kernel)
    shapes = []
    for height, width in ((3, 3), (6, 8), (28, 28), (5, 9)):
        for kh, kw in ((1, 1), (2, 2), (3, 3), (1, 2), (5, 3)):
            if kh <= height and kw <= width:
                out = conv2d(torch.zeros(1, 1, height, width), torch.zeros(1, 1, kh, kw))
                shapes.append({"input": [height, width], "kernel": [kh, kw],
                               "formula": [height - kh + 1, width - kw + 1], "cnnext": list(out.shape[2:])})
    return {"x": x, "kernel": kernel, "y": loops, "y_cnnext": conv2d(x[None, None], kernel[None, None])[0, 0],
            "first_window": (x[:2, :2] * kernel).tolist(), "shapes": shapes}


def plot_corr2d(result, path):
    figure, axes = plt.subplots(1, 4, figsize=(11, 3), gridspec_kw={"width_ratios": [3, 2, 2, 3]})
    show_matrix(axes[0], result["x"], "input X (3x3)", cmap="Blues", highlight=(0, 0, 2, 2))
    show_matrix(axes[1], result["kernel"], "kernel K (2x2)", cmap="Oranges")
    products = torch.tensor(result["first_window"])
    show_matrix(axes[2], products, f"window x K, sum = {products.sum():g}", cmap="Oranges")
    show_matrix(axes[3], result["y"], "output Y (2x2) = 3 - 2 + 1", cmap="Greens", highlight=(0, 0, 1, 1))
    figure.suptitle("2-D cross-correlation: slide K over X, multiply element-wise, sum")
    return save(figure, path)


def corr2d_handout(result, report, figure):
    report.paragraph("A convolution layer computes a **cross-correlation**: the kernel slides over the input and "
                     "each output element is the sum of the element-wise product of the kernel and the window "
                     "under it. On an H x W input a kh x kw kernel fits (H - kh + 1) x (W - kw + 1) times.")
    report.figure(figure, "The first window (orange): 0·0 + 1·1 + 3·2 + 4·3 = 19")
    report.paragraph(f"Y = {result['y'].int().tolist()} (loops, `cnnext.naive`) = "
                     f"{result['y_cnnext'].int().tolist()} (`cnnext.conv2d`).")
    report.table(["input H x W", "kernel", "H - kh + 1, W - kw + 1", "cnnext output"],
                 [[f"{r['input'][0]}x{r['input'][1]}", f"{r['kernel'][0]}x{r['kernel'][1]}",
                   "x".join(map(str, r["formula"])), "x".join(map(str, r["cnnext"]))] for r in result["shapes"]])


def edge_image():
    """The lecture's 6x8 image: white (1) with the middle four columns black (0)."""
    x = torch.ones(6, 8)
    x[:, 2:6] = 0
    return x


def edge_numbers(quick=False):
    """Kernel [1, -1] on the image and on its transpose (cnnext.conv2d)."""
    x, kernel = edge_image(), torch.tensor([[1.0, -1.0]])
    y = conv2d(x[None, None], kernel[None, None])[0, 0]
    y_transposed = conv2d(x.t()[None, None], kernel[None, None])[0, 0]
    return {"x": x, "kernel": kernel, "y": y, "x_transposed": x.t(), "y_transposed": y_transposed,
            "rising_columns": sorted({int(j) for j in (y == -1).nonzero()[:, 1]}),
            "falling_columns": sorted({int(j) for j in (y == 1).nonzero()[:, 1]})}


def plot_edges(result, path):
    figure, axes = plt.subplots(1, 4, figsize=(13, 3.4), gridspec_kw={"width_ratios": [8, 7, 6, 6]})
    show_matrix(axes[0], result["x"], "X: 6x8, black (0) middle", cmap="gray")
    show_matrix(axes[1], result["y"], "Y = X ⋆ [1, -1]: 6x7", limit=1)
    show_matrix(axes[2], result["x_transposed"], "Xᵀ: 8x6", cmap="gray")
    show_matrix(axes[3], result["y_transposed"], "Xᵀ ⋆ [1, -1]: 8x5", limit=1)
    figure.suptitle("Edge detection with K = [1, -1]: +1 where white turns black, -1 where black turns white; "
                    "horizontal edges are invisible to it", fontsize="medium")
    return save(figure, path)


def edges_handout(result, report, figure):
    report.paragraph("K = [1, -1] computes x[i, j] - x[i, j+1]: zero on flat regions, +1 where white (1) turns "
                     "black (0), -1 where black turns white. On the transposed image the edges are horizontal "
                     "and the same kernel sees nothing: a kernel detects one orientation.")
    report.figure(figure, "The 6x8 image, its edge map, and the same on the transposed image")
    report.paragraph(f"Y is +1 in column {result['falling_columns']} and -1 in column {result['rising_columns']} "
                     f"(every row), 0 elsewhere; on Xᵀ the output is all zeros "
                     f"(max |Y| = {result['y_transposed'].abs().max():g}).")
