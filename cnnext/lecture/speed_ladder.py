"""Item 12: the speed ladder. One convolution layer of the lab's CNN timed on seven rungs, from Python loops
to PyTorch's oneDNN and cnnext's Winograd kernel, with the time per epoch each rung would take to train the lab's
network.

The two loop rungs are too slow for the layer itself: they run on a reduced shape (fewer output pixels, and
one image for the scalar loops) and their rate is applied to the full layer's FLOPs, which is fair because
their cost per multiply-add does not depend on the image size. cnnext picks its im2col + GEMM path, or its
direct kernel for a layer Winograd would take, only when CNNEXT_CPU_KERNEL (gemm, direct) is set at load time,
so those rungs are timed in subprocesses, alternately with oneDNN there (their ratio to oneDNN is measured in
one process, like every other ratio)."""
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import naive
from ..data.images import split_last
from ..functional import conv2d
from ..models.cnn import PlainCNN
from ..timing import time_interleaved
from .figures import duration, plt, save

LAB_CLASS_SIZES = {"car": 779, "bus": 218, "truck": 360}  # the lab's vehicle images, 20 % of each class held out


@dataclass(frozen=True)
class Layer:
    n: int
    c: int
    k: int
    side: int  # input and output side ('same' 3x3 padding)

    def flops(self):
        return 2 * self.n * self.k * self.side * self.side * self.c * 9

    def inputs(self, seed=0):
        generator = torch.Generator().manual_seed(seed)
        return (torch.randn(self.n, self.c, self.side, self.side, generator=generator),
                torch.randn(self.k, self.c, 3, 3, generator=generator))

    def describe(self):
        return f"{self.n}x{self.c}x{self.side}x{self.side} → {self.k}, 3x3 pad 1"


def lab_layer(quick=False):
    """The lab's 3-block CNN at 64 px, second conv (32 → 64 channels at 32x32), batch 32; smaller for --quick."""
    return Layer(4, 8, 16, 16) if quick else Layer(32, 32, 64, 32)


def loop_conv2d(x, weight):
    """3x3 'same' cross-correlation with every multiply-add a Python statement: the lab's for-loop version."""
    n, c, side, _ = x.shape
    k = weight.shape[0]
    padded = F.pad(x, (1, 1, 1, 1)).tolist()
    w = weight.tolist()
    out = [[[[0.0] * side for _ in range(side)] for _ in range(k)] for _ in range(n)]
    for b in range(n):
        for o in range(k):
            for i in range(side):
                for j in range(side):
                    total = 0.0
                    for ch in range(c):
                        for r in range(3):
                            row, w_row = padded[b][ch][i + r], w[o][ch][r]
                            for s in range(3):
                                total += row[j + s] * w_row[s]
                    out[b][o][i][j] = total
    return torch.tensor(out)


def unfold_conv2d(x, weight):
    """Vectorised Python: im2col by F.unfold, then one matrix product."""
    n, _, side, _ = x.shape
    columns = F.unfold(x, 3, padding=1)  # [N, C·9, side·side]
    return (weight.view(weight.shape[0], -1) @ columns).view(n, weight.shape[0], side, side)


RUNGS = {  # name: (what it is, function, reduced shape or None)
    "Python loops": ("six nested for-loops over Python floats", loop_conv2d),
    "cnnext.naive": ("loop over output pixels, window x kernel vectorised",
                     lambda x, w: naive.conv2d(x, w, None, 1, 1)),
    "unfold + matmul": ("vectorised Python: F.unfold then one matmul", unfold_conv2d),
    "cnnext im2col + GEMM": ("cnnext C++, CNNEXT_CPU_KERNEL=gemm", lambda x, w: conv2d(x, w, None, 1, 1)),
    "cnnext direct": ("cnnext C++ direct AVX-512 kernel, CNNEXT_CPU_KERNEL=direct",
                      lambda x, w: conv2d(x, w, None, 1, 1)),
    "PyTorch oneDNN": ("torch.nn.functional.conv2d", lambda x, w: F.conv2d(x, w, None, 1, 1)),
    "cnnext Winograd": ("cnnext C++ Winograd F(2x2, 3x3) on the direct kernel's tiles (its default here)",
                        lambda x, w: conv2d(x, w, None, 1, 1)),
}
# Rungs that need CNNEXT_CPU_KERNEL set when cnnext loads, so they run in a subprocess: rung -> its value.
SUBPROCESS_RUNGS = {"cnnext im2col + GEMM": "gemm", "cnnext direct": "direct"}
AVX512_RUNGS = ("cnnext direct", "cnnext Winograd")  # no direct kernel without AVX-512


def reduced(layer, rung):
    """The shape a loop rung is timed on: same channels; 8x8 output pixels (naive) or one image of 4x4."""
    if rung == "Python loops":
        return replace(layer, n=1, side=2 if layer.side <= 16 else 4)
    if rung == "cnnext.naive":
        return replace(layer, side=4 if layer.side <= 16 else 8)
    return layer


def time_rungs(layer, names, repeats):
    """{name: {ms, timed shape, max error to F.conv2d}} for rungs timed together on their shapes."""
    results = {}
    groups = {}
    for name in names:
        groups.setdefault(reduced(layer, name), []).append(name)
    for shape, group in groups.items():
        x, w = shape.inputs()
        reference = F.conv2d(x, w, None, 1, 1)
        slow = shape != layer
        calls = {name: (lambda fn=RUNGS[name][1]: fn(x, w)) for name in group}
        times = time_interleaved(calls, warmup=0 if slow else 1, repeats=min(repeats, 3) if slow else repeats)
        for name in group:
            results[name] = {"ms": times[name], "shape": shape.describe(), "reduced": slow,
                             "timed_flops": shape.flops(), "gflops": shape.flops() / times[name] / 1e6,
                             "max_error": float((RUNGS[name][1](x, w) - reference).abs().max())}
    return results


def time_subprocess_rung(layer, repeats, name):
    """Rung `name` and oneDNN, timed alternately in a subprocess that loads cnnext with its CNNEXT_CPU_KERNEL."""
    env = {**os.environ, "CNNEXT_CPU_KERNEL": SUBPROCESS_RUNGS[name]}
    command = [sys.executable, "-m", "cnnext.lecture.speed_ladder", json.dumps(asdict(layer)), str(repeats),
               str(torch.get_num_threads()), name]
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=Path(__file__).parents[2])
    if result.returncode != 0:
        raise RuntimeError(f"speed ladder: the subprocess for '{name}' failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout)


def lab_network_flops():
    """Training FLOPs of the lab's 3-block CNN (64 px, 3 classes) per epoch of its training images: the convs'
    forward FLOPs, x 3 for forward + backward (input and weight gradients)."""
    model = PlainCNN(num_classes=3, image_size=64, num_blocks=3)
    forward = []

    def count(module, inputs, output):
        forward.append(2 * output.numel() * module.weight[0].numel())

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    images = sum(len(split_last(range(size), 0.2)[0]) for size in LAB_CLASS_SIZES.values())
    return {"forward_flops_per_image": sum(forward), "train_images": images,
            "epoch_flops": 3 * sum(forward) * images, "layers": len(forward)}


def ladder_numbers(quick=False):
    layer = lab_layer(quick)
    repeats = 3 if quick else 15
    direct = torch.backends.cpu.get_cpu_capability() == "AVX512"
    names = [name for name in RUNGS if direct or name not in AVX512_RUNGS]
    rungs = time_rungs(layer, [name for name in names if name not in SUBPROCESS_RUNGS], repeats)
    relative = {}
    for name in [name for name in names if name in SUBPROCESS_RUNGS]:
        timed = time_subprocess_rung(layer, repeats, name)
        # Ratios are timed in one process: the rung is oneDNN's rate here times its speed relative to oneDNN in
        # the subprocess, so that load changing between the two processes does not skew it.
        relative[name] = timed["PyTorch oneDNN"]["ms"] / timed[name]["ms"]
        rungs[name] = {**timed[name], "ms": rungs["PyTorch oneDNN"]["ms"] / relative[name],
                       "gflops": rungs["PyTorch oneDNN"]["gflops"] * relative[name],
                       "subprocess_gflops": timed[name]["gflops"]}
    ordered = {name: rungs[name] for name in RUNGS if name in rungs}
    network = lab_network_flops()
    previous = None
    for name, rung in ordered.items():
        rung["what"] = RUNGS[name][0]
        rung["layer_ms"] = layer.flops() / rung["gflops"] / 1e6
        rung["epoch_s"] = network["epoch_flops"] / (rung["gflops"] * 1e9)
        rung["factor"] = None if previous is None else rung["gflops"] / previous["gflops"]
        previous = rung
    return {"layer": layer.describe(), "layer_flops": layer.flops(), "threads": torch.get_num_threads(),
            "direct_available": direct, "rungs": ordered, "network": network,
            "vs_onednn_in_subprocess": relative,
            "total_factor": ordered["PyTorch oneDNN"]["gflops"] / ordered["Python loops"]["gflops"]}


def plot_ladder(result, path):
    rungs = result["rungs"]
    names = list(rungs)
    rates = [rungs[name]["gflops"] for name in names]
    figure, axis = plt.subplots(figsize=(12, 5.2))
    bars = axis.bar(range(len(names)), rates, width=0.55, color=[f"C{i}" for i in range(len(names))],
                    edgecolor="black", linewidth=0.5)
    for bar, name in zip(bars, names):
        if rungs[name]["reduced"]:
            bar.set_hatch("//")
    axis.set_yscale("log")
    axis.bar_label(bars, [f"{rungs[n]['gflops']:.3g} GFLOP/s\nepoch: {duration(rungs[n]['epoch_s'])}" for n in names],
                   fontsize="small", padding=2)
    for i in range(1, len(names)):  # the factor between two rungs, written between their bars near the axis
        axis.annotate(f"×{rungs[names[i]]['factor']:.3g}", xy=(i - 0.5, min(rates) / 2), ha="center",
                      va="center", fontsize="small", color="darkred", fontweight="bold")
    labels = [name + ("\n(reduced shape,\nscaled by FLOPs)" if rungs[name]["reduced"] else "") for name in names]
    axis.set_xticks(range(len(names)), labels, fontsize="small")
    axis.set_ylim(min(rates) / 4, max(rates) * 6)
    axis.set_ylabel("GFLOP/s (log scale)")
    axis.grid(axis="y", alpha=0.3, which="both")
    network = result["network"]
    threads = f"{result['threads']} thread{'s' if result['threads'] > 1 else ''}"
    axis.set_title(f"One conv layer ({result['layer']}, {result['layer_flops'] / 1e6:,.0f} MFLOP), {threads}. "
                   "Red: speed-up over the rung before.\n'epoch': projected time "
                   f"to train the lab's 3-block CNN one epoch ({network['train_images']} images at 64 px, "
                   f"{3 * network['forward_flops_per_image'] / 1e6:.0f} MFLOP each)", fontsize="medium")
    return save(figure, path)


def ladder_handout(result, report, figure):
    network = result["network"]
    report.paragraph("The lab found that a for-loop convolution needs hours per epoch. Here is the same layer, the "
                     "same arithmetic, on seven rungs. Python loops pay the interpreter for every multiply-add; "
                     "`cnnext.naive` pays it once per output pixel; unfold + matmul once per layer, but builds "
                     "the whole column matrix (9x the input) in memory; cnnext's im2col + GEMM does the same in "
                     "C++ in cache-sized chunks; cnnext's direct kernel needs no column matrix at all (AVX-512 "
                     "registers hold a tile of outputs while it walks the input); oneDNN is PyTorch's vendor "
                     "library; cnnext's Winograd F(2x2, 3x3) does less arithmetic instead: each 2x2 block of "
                     "outputs takes 16 multiply-adds per channel pair instead of 36 (its GFLOP/s count the direct "
                     "convolution's FLOPs, so it can pass the machine's peak). Once Python's overhead is paid only "
                     "once per layer, unfold + matmul and im2col + GEMM are the same algorithm and both spend their "
                     "time in a matrix product, so they land close together: the big steps are leaving the "
                     "interpreter, dropping the column matrix and, last, changing the algorithm.")
    report.figure(figure, "GFLOP/s of one convolution layer on each rung (log scale), with the factor between "
                          "rungs and the projected time per epoch of the lab's network")
    rows = []
    for name, rung in result["rungs"].items():
        rows.append([name, rung["what"], rung["shape"] + (" (reduced)" if rung["reduced"] else ""),
                     f"{rung['ms']:.3g}", f"{rung['gflops']:.3g}", "-" if rung["factor"] is None else
                     f"×{rung['factor']:.3g}", duration(rung["layer_ms"] / 1e3), duration(rung["epoch_s"]),
                     f"{rung['max_error']:.1e}"])
    report.table(["rung", "what", "timed shape", "timed ms", "GFLOP/s", "vs previous", "full layer",
                  "lab epoch", "max error vs F.conv2d"], rows)
    report.paragraph(
        f"From the loops to oneDNN: ×{result['total_factor']:,.0f}. Projection: the lab's 3-block CNN "
        f"(`cnnext.models.PlainCNN`, 64 px, {network['layers']} conv layers) does "
        f"{network['forward_flops_per_image'] / 1e6:.1f} MFLOP of convolution per image forward, x 3 for training, "
        f"on {network['train_images']} training images (the lab's vehicles, 80 % of each class): "
        f"{network['epoch_flops'] / 1e9:.0f} GFLOP per epoch, divided by each rung's rate (backward assumed as fast "
        f"as forward; pooling, BatchNorm and the rest ignored). cnnext reads CNNEXT_CPU_KERNEL once, when it "
        f"loads, so " + "; ".join(
            f"the '{name}' rung ran in a subprocess with CNNEXT_CPU_KERNEL={SUBPROCESS_RUNGS[name]}, alternately "
            f"with oneDNN: oneDNN time / its time = {ratio:.2f} there, applied to oneDNN's rate here (measured "
            f"directly in the subprocess: {result['rungs'][name]['subprocess_gflops']:.3g} GFLOP/s)"
            for name, ratio in result["vs_onednn_in_subprocess"].items()) + ".")
    if not result["direct_available"]:
        report.paragraph("This CPU has no AVX-512: cnnext has no direct or Winograd kernel here, and those rungs "
                         "are left out.")


def _subprocess_worker(layer_json, repeats, threads, name):
    torch.set_num_threads(int(threads))
    layer = Layer(**json.loads(layer_json))
    print(json.dumps(time_rungs(layer, [name, "PyTorch oneDNN"], int(repeats))))


if __name__ == "__main__":
    _subprocess_worker(*sys.argv[1:])
