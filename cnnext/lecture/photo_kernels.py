"""Item 4: classic kernels on a real photograph, and cross-correlation against convolution (a flipped kernel).

The photograph is scikit-learn's sample image china.jpg (a temple in China, shipped inside the package)."""
import torch

from ..functional import avg_pool2d, conv2d
from .figures import plt, save


def photograph(quick=False):
    """china.jpg as a grey [1, 1, H, W] tensor in [0, 1], halved by 2x2 average pooling (quarter size in quick)."""
    from sklearn.datasets import load_sample_image

    rgb = torch.tensor(load_sample_image("china.jpg")).permute(2, 0, 1).float() / 255
    grey = (torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1) * rgb).sum(0)[None, None]
    return avg_pool2d(grey, 4 if quick else 2)


def gaussian(size=5, sigma=1.0):
    coords = torch.arange(size, dtype=torch.float32) - size // 2
    bump = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    kernel = bump[:, None] * bump[None, :]
    return kernel / kernel.sum()


KERNELS = {
    "edges (Laplacian)": torch.tensor([[-1.0, -1, -1], [-1, 8, -1], [-1, -1, -1]]),
    "sharpen": torch.tensor([[0.0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
    "Gaussian blur (5x5, σ = 1)": gaussian(),
    "Sobel x": torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
}


def filter_image(image, kernel):
    """Cross-correlation with 'same' padding: what a convolution layer computes."""
    return conv2d(image, kernel[None, None], padding="same")


def kernel_numbers(quick=False):
    image = photograph(quick)
    outputs = {name: filter_image(image, kernel) for name, kernel in KERNELS.items()}
    sobel = KERNELS["Sobel x"]
    convolution = filter_image(image, sobel.flip(0, 1))  # true convolution = cross-correlation, kernel flipped
    inner = (slice(None), slice(None), slice(2, -2), slice(2, -2))  # away from the zero padding
    return {
        "image": image, "outputs": outputs, "convolution": convolution,
        "size": list(image.shape[2:]),
        "kernel_sums": {name: float(kernel.sum()) for name, kernel in KERNELS.items()},
        "mean": {"photo": float(image[inner].mean()),
                 **{name: float(out[inner].mean()) for name, out in outputs.items()}},
        "std": {"photo": float(image[inner].std()),
                **{name: float(out[inner].std()) for name, out in outputs.items()}},
        "convolution_equals_minus_correlation": float((convolution + outputs["Sobel x"]).abs().max()),
        "reference_max_error": max(float((out - torch.nn.functional.conv2d(image, KERNELS[name][None, None],
                                                                           padding="same")).abs().max())
                                   for name, out in outputs.items()),
    }


def plot_kernels(result, path):
    panels = [("photograph (grey)", result["image"], "gray", None)]
    for name, out in result["outputs"].items():
        if name == "Sobel x":
            continue
        limit = float(out.abs().quantile(0.99)) if name == "edges (Laplacian)" else None
        panels.append((name, out, "gray", limit))
    sobel = result["outputs"]["Sobel x"]
    limit = float(sobel.abs().quantile(0.98))
    panels += [("Sobel x, cross-correlation\n(red: dark → bright going right)", sobel, "RdBu_r", limit),
               ("Sobel x, convolution (kernel flipped)\nevery sign reversed", result["convolution"], "RdBu_r", limit)]
    figure, axes = plt.subplots(2, 3, figsize=(10.5, 8.2))
    height, width = result["size"]
    side, left = min(height, 160), width // 8  # a square around the pagoda, large enough to see each kernel's work
    for axis, (title, image, cmap, limit) in zip(axes.flat, panels):
        image = image[0, 0, :side, left:left + side].numpy()
        pixels = {"interpolation": "nearest"}  # pixel blocks: faithful, and a small PNG
        if cmap == "RdBu_r":
            axis.imshow(image, cmap=cmap, vmin=-limit, vmax=limit, **pixels)
        elif limit is not None:  # edge map: show magnitude, clipped
            axis.imshow(abs(image), cmap="gray_r", vmin=0, vmax=limit, **pixels)
            title += "\n|output|, dark = strong edge"
        else:
            axis.imshow(image, cmap=cmap, vmin=0, vmax=1, **pixels)
        axis.set_title(title, fontsize="medium")
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(f"Classic 3x3 / 5x5 kernels on a real photograph (scikit-learn's china.jpg, grey, "
                    f"{height}x{width}; a {side}x{side} crop shown)", fontsize="medium")
    return save(figure, path)


def kernels_handout(result, report, figure):
    report.paragraph("Hand-designed kernels, applied by `cnnext.conv2d` with 'same' padding to scikit-learn's "
                     "sample photograph. A kernel whose weights sum to 1 (sharpen, blur) keeps the mean "
                     "brightness; one summing to 0 (Laplacian, Sobel) gives 0 on flat regions and responds only "
                     "to change. Deep-learning 'convolution' is cross-correlation; the true convolution flips the "
                     "kernel first. For the antisymmetric Sobel kernel, flipping negates it, so convolution "
                     "gives exactly the negative map. A learnt kernel absorbs the flip, which is why layers skip it.")
    report.figure(figure, "Edges, sharpening, blur and cross-correlation vs convolution on a real photograph")
    report.paragraph("Kernels: " + "; ".join(f"{name} {kernel.int().tolist()}" for name, kernel in KERNELS.items()
                                             if name != "Gaussian blur (5x5, σ = 1)")
                     + "; the blur is the normalised outer product of exp(-x²/2) for x = -2..2.")
    rows = [[name, f"{result['kernel_sums'][name]:g}" if name in result["kernel_sums"] else "-",
             f"{result['mean'][name]:.4f}", f"{result['std'][name]:.4f}"] for name in result["mean"]]
    report.table(["image", "kernel sum", "mean (inner pixels)", "std (inner pixels)"], rows)
    report.paragraph(f"max |convolution + cross-correlation| for Sobel x = "
                     f"{result['convolution_equals_minus_correlation']:.1e}; largest difference to "
                     f"torch.nn.functional.conv2d over the four kernels = {result['reference_max_error']:.1e}. "
                     "Blur lowers the standard deviation (detail removed); sharpening raises it.")


