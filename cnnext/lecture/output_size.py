"""Item 5: padding, stride and dilation: O = floor((I - k' + 2P) / S) + 1 with k' = (k - 1)·d + 1, checked
against cnnext.conv2d, and how fast unpadded layers shrink an image."""
import itertools

import torch

from ..functional import conv2d
from .figures import plt, save


def effective_kernel(kernel, dilation=1):
    return (kernel - 1) * dilation + 1


def output_size(size, kernel, padding=0, stride=1, dilation=1):
    """The lecture's formula, with the dilated kernel size k' in place of k."""
    return (size - effective_kernel(kernel, dilation) + 2 * padding) // stride + 1


def size_numbers(quick=False):
    """The formula against cnnext.conv2d's output shape for every setting in a grid; the 224 -> 4 example."""
    sizes, kernels = (7, 8, 28) if quick else (*range(3, 17), 28, 32, 33), (1, 3, 5)
    rows = []
    for size, kernel, padding, stride, dilation in itertools.product(sizes, kernels, (0, 1, 2), (1, 2, 3), (1, 2)):
        if effective_kernel(kernel, dilation) > size + 2 * padding:
            continue
        out = conv2d(torch.zeros(1, 1, size, size), torch.zeros(1, 1, kernel, kernel), None, stride, padding,
                     dilation)
        rows.append({"I": size, "k": kernel, "P": padding, "S": stride, "d": dilation,
                     "k_eff": effective_kernel(kernel, dilation),
                     "formula": output_size(size, kernel, padding, stride, dilation), "cnnext": out.shape[-1]})
    sides = [224]  # the lecture's example: unpadded 5x5 layers, computed layer by layer with cnnext
    x, weight = torch.zeros(1, 1, 224, 224), torch.zeros(1, 1, 5, 5)
    while sides[-1] > 4:
        x = conv2d(x, weight)
        sides.append(x.shape[-1])
    return {"rows": rows, "mismatches": sum(r["formula"] != r["cnnext"] for r in rows),
            "shrink_sides": sides, "layers_to_4": len(sides) - 1, "side_after_44_layers": sides[44]}


def plot_sizes(result, path):
    figure, (grid_axis, shrink_axis) = plt.subplots(1, 2, figsize=(12, 4.2))
    rows = result["rows"]
    styles = {(0, 1): "C0", (1, 1): "C1", (2, 1): "C2", (0, 2): "C3", (1, 2): "C4", (2, 2): "C5"}
    for (padding, stride), colour in styles.items():
        chosen = [r for r in rows if r["k"] == 3 and r["d"] == 1 and r["P"] == padding and r["S"] == stride]
        inputs = range(3, max(r["I"] for r in chosen) + 1)
        grid_axis.step(inputs, [output_size(i, 3, padding, stride) for i in inputs], where="mid", color=colour,
                       linewidth=1, label=f"P = {padding}, S = {stride}")
        grid_axis.plot([r["I"] for r in chosen], [r["cnnext"] for r in chosen], "o", color=colour, markersize=4)
    grid_axis.set(xlabel="input size I", ylabel="output size O", title="3x3 kernel: formula (lines) and "
                  "cnnext.conv2d (dots)")
    grid_axis.legend(fontsize="small")
    sides = result["shrink_sides"]
    shrink_axis.plot(range(len(sides)), sides, marker=".", markersize=3)
    for layers, label in ((44, f"44 layers: {sides[44]}x{sides[44]}"),
                          (len(sides) - 1, f"{len(sides) - 1} layers: {sides[-1]}x{sides[-1]}")):
        shrink_axis.annotate(label, (layers, sides[layers]), xytext=(layers - 30, sides[layers] + 50),
                             arrowprops={"arrowstyle": "->"})
        shrink_axis.plot(layers, sides[layers], "o", color="C3")
    shrink_axis.set(xlabel="unpadded 5x5 layers", ylabel="side of the feature map",
                    title="224x224 through unpadded 5x5 layers: 4 pixels lost per layer")
    for axis in (grid_axis, shrink_axis):
        axis.grid(alpha=0.3)
    return save(figure, path)


def sizes_handout(result, report, figure):
    rows = result["rows"]
    report.paragraph("With padding P on each side, stride S and dilation d, a k x k kernel covers k' = (k - 1)·d + 1 "
                     "pixels and the output side is O = ⌊(I - k' + 2P) / S⌋ + 1. 'Same' padding for stride 1 is "
                     "P = (k' - 1) / 2. Without padding every layer loses k' - 1 pixels.")
    report.figure(figure, "Output size against input size for a 3x3 kernel (left); "
                          "the lecture's 224x224 example (right)")
    layers, side_44 = result["layers_to_4"], result["side_after_44_layers"]
    report.paragraph(f"The formula agrees with `cnnext.conv2d`'s output shape in {len(rows) - result['mismatches']} "
                     f"of {len(rows)} settings (I from {rows[0]['I']} to {rows[-1]['I']}, k ∈ {{1, 3, 5}}, "
                     "P ∈ {0, 1, 2}, S ∈ {1, 2, 3}, d ∈ {1, 2}). "
                     f"A 224x224 input needs **{layers}** unpadded 5x5 layers to shrink to 4x4 "
                     f"(224 - 4·{layers} = 4); "
                     f"after 44 layers it is still {side_44}x{side_44}. The lecture's 44 = (224 - 4) / 5 comes from "
                     "subtracting k = 5 instead of k - 1 = 4 pixels per layer. "
                     "Either way, deep networks need padding.")
    sample = [r for r in rows if r["I"] == 7 and r["k"] == 3]
    report.table(["I", "k", "d", "k'", "P", "S", "formula O", "cnnext O"],
                 [[r["I"], r["k"], r["d"], r["k_eff"], r["P"], r["S"], r["formula"], r["cnnext"]] for r in sample])
