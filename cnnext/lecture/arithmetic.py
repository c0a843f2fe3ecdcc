"""Item 11: why images need convolutions: the parameters of a dense layer on a 36-megapixel image against a
convolution layer's, and the FLOPs of a convolution layer (the lecture's 1 GFLOP example)."""
import torch
from torch import nn

from ..functional import conv2d
from ..nn import Conv2d
from ..timing import time_interleaved
from .figures import duration, plt, save

# The lecture's rates, in its unit: one multiply-add counts as one operation.
LECTURE_RATES = {"lecture's CPU\n0.15 T multiply-adds/s": 0.15e12, "lecture's GPU\n12 T multiply-adds/s": 12e12}


def parameter_count(module):
    return sum(p.numel() for p in module.parameters())


def conv_multiply_adds(c_in, c_out, kernel, out_h, out_w):
    """Multiply-adds of one conv layer on one image: c_i·c_o·k_h·k_w·m_h·m_w (a FLOP is half of one)."""
    return c_in * c_out * kernel * kernel * out_h * out_w


def arithmetic_numbers(quick=False):
    pixels, hidden = 36_000_000, 100
    dense = nn.Linear(pixels, hidden, device="meta")  # counted, never allocated
    conv = Conv2d(1, hidden, 3)  # 100 feature maps from a grey image, 3x3 kernels
    c, k, side = 100, 5, 64
    macs = conv_multiply_adds(c, c, k, side, side)
    # Time the lecture's layer once with cnnext (quick: a 16x16 output instead of 64x64) for this machine's rate.
    timed_side = 16 if quick else side
    x = torch.randn(1, c, timed_side + k - 1, timed_side + k - 1)
    weight = torch.randn(c, c, k, k)
    output = conv2d(x, weight)
    ms = time_interleaved({"cnnext": lambda: conv2d(x, weight)}, warmup=1, repeats=3 if quick else 10)["cnnext"]
    timed_macs = conv_multiply_adds(c, c, k, timed_side, timed_side)
    measured_rate = timed_macs / (ms / 1e3)
    total_macs = macs * 10 * 1_000_000  # 10 layers, 1M examples, forward only
    threads = torch.get_num_threads()
    machine = (f"this machine, cnnext, {threads} thread{'s' if threads > 1 else ''}\n"
               f"{measured_rate / 1e9:.3g} G multiply-adds/s (measured)")
    rates = {**LECTURE_RATES, machine: measured_rate}
    return {
        "pixels": pixels, "hidden": hidden, "dense_parameters": parameter_count(dense),
        "dense_weights": pixels * hidden, "dense_gigabytes": parameter_count(dense) * 4 / 1e9,
        "conv_parameters": parameter_count(conv), "conv_shape": [hidden, 1, 3, 3],
        "layer": {"c_in": c, "c_out": c, "kernel": k, "out_side": side}, "multiply_adds": macs,
        "timed_side": timed_side, "timed_multiply_adds": timed_macs,
        "timed_multiply_adds_from_output": output.numel() * c * k * k,  # every output element: c·k·k of them
        "timed_ms": ms, "measured_multiply_adds_per_s": measured_rate,
        "total_multiply_adds": total_macs,
        "hours": {name: total_macs / rate / 3600 for name, rate in rates.items()},
    }


def plot_arithmetic(result, path):
    figure, (parameter_axis, time_axis) = plt.subplots(1, 2, figsize=(12, 4.2))
    labels = [f"dense 36M → {result['hidden']}\n({result['dense_gigabytes']:.1f} GB in float32)",
              f"conv 3x3, 1 → {result['hidden']} channels"]
    values = [result["dense_parameters"], result["conv_parameters"]]
    bars = parameter_axis.bar(labels, values, color=["C3", "C0"])
    parameter_axis.set_yscale("log")
    parameter_axis.bar_label(bars, [f"{v:,}" for v in values])
    parameter_axis.set(ylabel="parameters (log scale)", title="Parameters of one layer on a 36-megapixel image",
                       ylim=(1, values[0] * 20))
    hours = result["hours"]
    bars = time_axis.barh(list(hours), list(hours.values()), color=["C1", "C2", "C4"])
    time_axis.set_xscale("log")
    time_axis.bar_label(bars, [duration(3600 * h) for h in hours.values()], padding=3)
    time_axis.set(xlabel="hours (log scale)", xlim=(min(hours.values()) / 3, max(hours.values()) * 30),
                  title="10 layers x 1M images, forward (10¹⁶ multiply-adds)")
    for axis in (parameter_axis, time_axis):
        axis.grid(alpha=0.3, which="both")
    return save(figure, path)


def arithmetic_handout(result, report, figure):
    layer = result["layer"]
    report.paragraph("A fully connected layer connects every input to every neuron; a convolution layer shares one "
                     "small kernel across all positions, so its size does not depend on the image at all. The price "
                     "of a convolution is compute, not parameters: c_i·c_o·k_h·k_w·m_h·m_w multiply-adds per "
                     "image.")
    report.figure(figure, "Parameters of a dense against a convolution layer (left); time for the lecture's "
                          "10¹⁶ multiply-adds (right)")
    report.table(["quantity", "value"], [
        ["dense layer 36,000,000 → 100: weights", f"{result['dense_weights']:,}"],
        ["... with biases (torch.nn.Linear on the meta device)", f"{result['dense_parameters']:,}"],
        ["... float32 size", f"{result['dense_gigabytes']:.1f} GB"],
        [f"conv layer 3x3, 1 → 100 channels (cnnext.Conv2d, weight {result['conv_shape']} + 100 biases)",
         f"{result['conv_parameters']:,}"],
        [f"conv c_i = c_o = {layer['c_in']}, {layer['kernel']}x{layer['kernel']}, output "
         f"{layer['out_side']}x{layer['out_side']}: multiply-adds per image", f"{result['multiply_adds']:,} (≈ 1 G)"],
        ["10 layers x 1,000,000 images, forward", f"{result['total_multiply_adds']:.3g} multiply-adds (≈ 10 P)"],
        *[[f"time at {name}".replace("\n", " "), duration(3600 * hours)] for name, hours in result["hours"].items()],
    ])
    report.paragraph(f"The lecture counts a multiply-add as one operation; in FLOPs (multiply and add counted "
                     f"separately) the layer is {2 * result['multiply_adds'] / 1e9:.2f} GFLOP. This machine's rate: "
                     f"the layer with a {result['timed_side']}x{result['timed_side']} output timed with "
                     f"`cnnext.conv2d`, {result['timed_ms']:.1f} ms, i.e. "
                     f"{result['measured_multiply_adds_per_s'] / 1e9:.1f} G multiply-adds/s = "
                     f"{2 * result['measured_multiply_adds_per_s'] / 1e9:.1f} GFLOP/s.")
