"""Item 3: learning the edge kernel [1, -1] by gradient descent from the image X and its edge map Y alone."""
import torch

from ..nn import Conv2d
from .cross_correlation import edge_numbers
from .figures import plt, save


def learn_numbers(quick=False, steps=30, lr=0.03, seed=0):
    """A bias-free 1x2 cnnext.Conv2d starting from random weights, trained on the squared error to Y."""
    edges = edge_numbers()
    x, y = edges["x"][None, None], edges["y"][None, None]
    torch.manual_seed(seed)
    layer = Conv2d(1, 1, kernel_size=(1, 2), bias=False)
    start = layer.weight.detach().flatten().tolist()
    losses, kernels = [], [start]
    for _ in range(steps):
        loss = ((layer(x) - y) ** 2).sum()
        layer.zero_grad()
        loss.backward()
        with torch.no_grad():
            layer.weight -= lr * layer.weight.grad
        losses.append(loss.item())
        kernels.append(layer.weight.detach().flatten().tolist())
    return {"seed": seed, "lr": lr, "steps": steps, "start": start, "losses": losses, "kernels": kernels,
            "learnt": kernels[-1], "target": edges["kernel"].flatten().tolist()}


def plot_learning(result, path):
    figure, (loss_axis, kernel_axis) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps = range(1, len(result["losses"]) + 1)
    loss_axis.semilogy(steps, result["losses"], marker=".")
    loss_axis.set(xlabel="gradient step", ylabel="squared error (log scale)", title="loss")
    kernels = torch.tensor(result["kernels"])
    for index, colour in ((0, "C0"), (1, "C1")):
        kernel_axis.plot(range(len(kernels)), kernels[:, index], color=colour, marker=".",
                         label=f"K[0, {index}] (learnt)")
        kernel_axis.axhline(result["target"][index], color=colour, linestyle="--", linewidth=1,
                            label=f"target {result['target'][index]:+g}")
    kernel_axis.set(xlabel="gradient step", ylabel="kernel value", title="the two kernel weights")
    kernel_axis.legend(fontsize="small")
    for axis in (loss_axis, kernel_axis):
        axis.grid(alpha=0.3)
    figure.suptitle(f"Learning a 1x2 kernel from X and Y only (SGD, lr {result['lr']}, start from random "
                    f"seed {result['seed']})", fontsize="medium")
    return save(figure, path)


def learn_handout(result, report, figure):
    report.paragraph("Given only the image X and its edge map Y, a 1x2 `cnnext.Conv2d` without bias starts from "
                     "random weights and follows the gradient of the squared error: the kernel is learnt, not "
                     "designed.")
    report.figure(figure, "Loss per step and the two kernel weights converging to [1, -1]")
    start, learnt = result["start"], result["learnt"]
    report.paragraph(f"Start [{start[0]:.4f}, {start[1]:.4f}], loss {result['losses'][0]:.3f}; after "
                     f"{result['steps']} steps [{learnt[0]:.4f}, {learnt[1]:.4f}], loss {result['losses'][-1]:.2e}.")
