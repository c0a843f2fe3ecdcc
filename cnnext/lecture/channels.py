"""Item 6: multiple input channels (summed), multiple output channels (stacked 3-D kernels), and 1x1
convolution as a fully connected layer applied at every pixel."""
import torch

from ..functional import conv2d
from .figures import plt, save, show_matrix


def lecture_tensors():
    """The lecture's two-channel 3x3 input and 2-channel 2x2 kernel."""
    x = torch.stack([torch.arange(9.0).reshape(3, 3), torch.arange(1.0, 10.0).reshape(3, 3)])
    kernel = torch.stack([torch.tensor([[0.0, 1.0], [2.0, 3.0]]), torch.tensor([[1.0, 2.0], [3.0, 4.0]])])
    return x, kernel


def channel_numbers(quick=False, seed=0):
    x, kernel = lecture_tensors()
    per_channel = [conv2d(x[c][None, None], kernel[c][None, None])[0, 0] for c in range(2)]
    summed = conv2d(x[None], kernel[None])[0, 0]
    stacked = torch.stack([kernel, kernel + 1, kernel + 2])  # [3 outputs, 2 inputs, 2, 2]
    multi_out = conv2d(x[None], stacked)[0]
    one_by_one_each = torch.stack([conv2d(x[None], k[None])[0, 0] for k in stacked])
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(-3, 4, (1, 3, 2, 2), generator=generator).float()  # small integers: readable
    pointwise = torch.randint(-2, 3, (2, 3, 1, 1), generator=generator).float()
    conv = conv2d(pixels, pointwise)[0]
    matmul = (pointwise.view(2, 3) @ pixels.view(3, 4)).view(2, 2, 2)
    return {"x": x, "kernel": kernel, "per_channel": per_channel, "summed": summed,
            "stacked_shape": list(stacked.shape), "multi_out": multi_out,
            "multi_out_vs_separate": float((multi_out - one_by_one_each).abs().max()),
            "pointwise_input": pixels[0], "pointwise_weight": pointwise.view(2, 3), "pointwise_conv": conv,
            "pointwise_matmul": matmul, "pointwise_max_error": float((conv - matmul).abs().max())}


def plot_channels(result, path):
    figure = plt.figure(figsize=(13, 6.4), layout="constrained")
    top = figure.subfigures(2, 1, height_ratios=[1, 0.9])
    axes = top[0].subplots(1, 5)
    show_matrix(axes[0], result["x"][0], "X, channel 0", cmap="Blues")
    show_matrix(axes[1], result["kernel"][0], "K, channel 0", cmap="Oranges")
    show_matrix(axes[2], result["x"][1], "X, channel 1", cmap="Blues")
    show_matrix(axes[3], result["kernel"][1], "K, channel 1", cmap="Oranges")
    show_matrix(axes[4], result["summed"], f"{result['per_channel'][0].int().tolist()}\n+ "
                f"{result['per_channel'][1].int().tolist()} =", cmap="Greens")
    top[0].suptitle("Two input channels: cross-correlate each with its own kernel slice, then add", fontsize="medium")
    axes = top[1].subplots(1, 4, width_ratios=[4, 3, 4, 4])
    show_matrix(axes[0], result["pointwise_input"].reshape(3, 4), "X: 3 channels x 4 pixels (2x2)")
    show_matrix(axes[1], result["pointwise_weight"], "1x1 kernel [2, 3, 1, 1]\nas a 2x3 matrix W")
    show_matrix(axes[2], result["pointwise_conv"].reshape(2, 4), "1x1 conv (cnnext): 2 x 4")
    show_matrix(axes[3], result["pointwise_matmul"].reshape(2, 4), "W @ X: 2 x 4")
    for axis in axes:
        axis.set_xlabel("pixel" if axis is not axes[1] else "input channel", fontsize="small")
        axis.set_ylabel("channel" if axis is not axes[1] else "output channel", fontsize="small")
    top[1].suptitle("1x1 convolution = the same fully connected layer at every pixel (rows: channels, columns: "
                    "pixels)", fontsize="medium")
    return save(figure, path)


def channels_handout(result, report, figure):
    report.paragraph("With c_i input channels the kernel is c_i x kh x kw: each channel is cross-correlated with its "
                     "own slice and the results are **added**, giving one output channel. For c_o output channels "
                     "c_o such 3-D kernels are stacked into a c_o x c_i x kh x kw tensor. A 1x1 kernel mixes only "
                     "channels: at every pixel it is the same c_o x c_i fully connected layer.")
    report.figure(figure, "Channel sum (top); 1x1 convolution against a matrix product (bottom)")
    first, second = (result["per_channel"][c].int().tolist() for c in range(2))
    report.paragraph(f"Per channel {first} + {second} "
                     f"= {result['summed'].int().tolist()}. Stacking K, K + 1, K + 2 gives a kernel of shape "
                     f"{result['stacked_shape']} and an output of shape {list(result['multi_out'].shape)}, equal to "
                     f"three separate single-output convolutions (max difference {result['multi_out_vs_separate']:g}). "
                     f"1x1 convolution against W @ X: max difference {result['pointwise_max_error']:.1e}.")
