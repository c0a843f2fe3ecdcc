"""Conv2d speed: the naive loops, cnnext's kernels and PyTorch's native conv, side by side.

    python benchmarks/conv_speed.py                     # every shape, on the CPU
    python benchmarks/conv_speed.py --device cuda       # cuDNN with TF32 off, plus a TF32 row
    python benchmarks/conv_speed.py --quick --json r.json --plot r.png

Per layer shape and pass (forward, forward+backward) it prints the median time of the repeats after
warm-up, GFLOP/s, and ratio = native time / this time (above 1: faster than PyTorch). The
implementations are timed alternately within each repeat, so that load from other processes falls on
all of them alike. The naive loop convolution is far too slow for the real shapes: it runs on a
reduced shape (shown in its row) against native on that same reduced shape, and nothing is extrapolated.
"""
import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import cnnext  # noqa: E402


@dataclass(frozen=True)
class Shape:
    name: str
    family: str
    n: int
    c: int
    h: int
    w: int
    k: int
    r: int
    s: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1

    @property
    def out_hw(self):
        span_r, span_s = self.dilation * (self.r - 1) + 1, self.dilation * (self.s - 1) + 1
        return ((self.h + 2 * self.padding - span_r) // self.stride + 1,
                (self.w + 2 * self.padding - span_s) // self.stride + 1)

    def forward_flops(self):
        ho, wo = self.out_hw
        return 2 * self.n * self.k * ho * wo * (self.c // self.groups) * self.r * self.s

    def describe(self):
        extra = "".join(f" {key}{value}" for key, value in
                        (("s", self.stride), ("p", self.padding), ("d", self.dilation), ("g", self.groups))
                        if value != (0 if key == "p" else 1))
        return f"{self.n}x{self.c}x{self.h}x{self.w} -> {self.k} {self.r}x{self.s}{extra}"

    def reduced(self):
        """A shape small enough for the naive loops: one image, at most 8x8 output pixels."""
        span = self.dilation * (self.r - 1) + 1
        side = min(self.h, self.stride * 7 + span - 2 * self.padding)
        return replace(self, n=1, h=side, w=side)


def resnet18_cifar_layers(batch):
    """Every distinct conv of ResNet-18 on 32x32 input (kuangliu/pytorch-cifar)."""
    def conv(name, c, k, size, kernel=3, stride=1):
        return Shape(name, "resnet18", batch, c, size, size, k, kernel, kernel, stride, kernel // 2)
    return [
        conv("conv1", 3, 64, 32),
        conv("layer1", 64, 64, 32),
        conv("layer2.0.conv1", 64, 128, 32, stride=2),
        conv("layer2", 128, 128, 16),
        conv("layer2.shortcut", 64, 128, 32, kernel=1, stride=2),
        conv("layer3.0.conv1", 128, 256, 16, stride=2),
        conv("layer3", 256, 256, 8),
        conv("layer3.shortcut", 128, 256, 16, kernel=1, stride=2),
        conv("layer4.0.conv1", 256, 512, 8, stride=2),
        conv("layer4", 512, 512, 4),
        conv("layer4.shortcut", 256, 512, 8, kernel=1, stride=2),
    ]


def other_layers(batch):
    return [
        Shape("alexnet.conv1", "alexnet", batch, 3, 224, 224, 64, 11, 11, 4, 2),
        Shape("alexnet.conv2", "alexnet", batch, 64, 27, 27, 192, 5, 5, 1, 2),
        Shape("alexnet.conv3", "alexnet", batch, 192, 13, 13, 384, 3, 3, 1, 1),
        Shape("hdc.d1", "hdc", batch, 64, 32, 32, 64, 3, 3, 1, 1, 1),
        Shape("hdc.d2", "hdc", batch, 64, 32, 32, 64, 3, 3, 1, 2, 2),
        Shape("hdc.d5", "hdc", batch, 64, 32, 32, 64, 3, 3, 1, 5, 5),
        Shape("pointwise", "misc", batch, 256, 16, 16, 64, 1, 1),
        Shape("depthwise", "misc", batch, 128, 16, 16, 128, 3, 3, 1, 1, 1, 128),
        Shape("grouped", "misc", batch, 128, 16, 16, 128, 3, 3, 1, 1, 1, 4),
    ]


def all_shapes(device, quick):
    if quick:
        return [replace(s, n=4) for s in resnet18_cifar_layers(4)[1:3]] + \
               [replace(s, n=4) for s in other_layers(4) if s.name in ("hdc.d5", "depthwise")]
    big_batch = 128 if device == "cuda" else 64
    return resnet18_cifar_layers(big_batch) + other_layers(big_batch // 4)


def make_tensors(shape, device, dtype, generator_seed=0):
    torch.manual_seed(generator_seed)
    ho, wo = shape.out_hw
    x = torch.randn(shape.n, shape.c, shape.h, shape.w, device=device, dtype=dtype, requires_grad=True)
    w = torch.randn(shape.k, shape.c // shape.groups, shape.r, shape.s, device=device, dtype=dtype,
                    requires_grad=True)
    b = torch.randn(shape.k, device=device, dtype=dtype, requires_grad=True)
    grad_out = torch.randn(shape.n, shape.k, ho, wo, device=device, dtype=dtype)
    return x, w, b, grad_out


def conv_call(conv, shape, x, w, b, grad_out, backward):
    def run():
        y = conv(x, w, b, shape.stride, shape.padding, shape.dilation, shape.groups)
        if backward:
            torch.autograd.grad(y, (x, w, b), grad_out)
    return run


class Timer:
    """Milliseconds of one call: CUDA events on the GPU, perf_counter on the CPU."""

    def __init__(self, device):
        self.cuda = device == "cuda"

    def __call__(self, fn):
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end)
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3


class Tf32:
    """Context: cuDNN's TF32 switch set to `enabled` (and restored)."""

    def __init__(self, enabled):
        self.enabled = enabled

    def __enter__(self):
        self.saved = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = self.enabled

    def __exit__(self, *exc):
        torch.backends.cudnn.allow_tf32 = self.saved


def time_interleaved(calls, timer, warmup, repeats):
    """Median ms per call; each repeat runs every call once, in turn, so noise hits all of them alike."""
    for run, tf32 in calls.values():
        with Tf32(tf32):
            for _ in range(warmup):
                run()
    samples = {label: [] for label in calls}
    for _ in range(repeats):
        for label, (run, tf32) in calls.items():
            with Tf32(tf32):
                samples[label].append(timer(run))
    return {label: statistics.median(values) for label, values in samples.items()}


def cnnext_supports(device):
    try:
        x = torch.zeros(1, 1, 3, 3, device=device)
        cnnext.conv2d(x, torch.zeros(1, 1, 1, 1, device=device))
        return True
    except (NotImplementedError, RuntimeError):
        return False


def bench_shape(shape, args, timer, with_cnnext):
    """Rows of results for one shape: native (+ TF32 on cuda), cnnext, and naive on the reduced shape."""
    rows = []
    dtype = getattr(torch, args.dtype)
    for backward in (False, True):
        pass_name = "fwd+bwd" if backward else "fwd"
        flops = shape.forward_flops() * (3 if backward else 1)
        x, w, b, grad_out = make_tensors(shape, args.device, dtype)
        calls = {"native": (conv_call(F.conv2d, shape, x, w, b, grad_out, backward), False)}
        if args.device == "cuda":
            calls["native-tf32"] = (calls["native"][0], True)
        if with_cnnext:
            calls["cnnext"] = (conv_call(cnnext.conv2d, shape, x, w, b, grad_out, backward), False)
        times = time_interleaved(calls, timer, args.warmup, args.repeats)
        for label, ms in times.items():
            rows.append(result_row(shape, shape, label, pass_name, ms, times["native"], flops))
        if args.naive:
            small = shape.reduced()
            xs, ws, bs, gs = make_tensors(small, args.device, dtype)
            # Native takes microseconds on the reduced shape: it gets the full repeats, the loops only a few.
            native_ms = time_interleaved({"native": (conv_call(F.conv2d, small, xs, ws, bs, gs, backward), False)},
                                         timer, args.warmup, args.repeats)["native"]
            naive_ms = time_interleaved({"naive": (conv_call(cnnext.naive.conv2d, small, xs, ws, bs, gs, backward),
                                                   False)}, timer, 1, args.naive_repeats)["naive"]
            rows.append(result_row(shape, small, "naive", pass_name, naive_ms, native_ms,
                                   small.forward_flops() * (3 if backward else 1)))
    return rows


def result_row(shape, timed_shape, impl, pass_name, ms, native_ms, flops):
    return {"layer": shape.name, "family": shape.family, "impl": impl, "pass": pass_name,
            "shape": timed_shape.describe(), "reduced_shape": timed_shape != shape,
            "ms": ms, "gflops": flops / ms / 1e6, "ratio": native_ms / ms}


def geometric_mean(values):
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def summary(rows):
    out = {}
    for pass_name in ("fwd", "fwd+bwd"):
        ratios = [r["ratio"] for r in rows if r["impl"] == "cnnext" and r["pass"] == pass_name
                  and r["family"] == "resnet18"]
        if ratios:
            out[f"resnet18_geomean_ratio_{pass_name}"] = geometric_mean(ratios)
            out[f"resnet18_min_ratio_{pass_name}"] = min(ratios)
    return out


def print_table(rows, file=sys.stdout):
    header = f"{'layer':<18} {'pass':<8} {'impl':<12} {'shape':<34} {'ms':>10} {'GFLOP/s':>9} {'ratio':>7}"
    print(header, file=file)
    print("-" * len(header), file=file)
    previous = None
    for r in rows:
        if previous is not None and (r["layer"], r["pass"]) != previous:
            print(file=file)
        previous = (r["layer"], r["pass"])
        shape = r["shape"] + (" (reduced)" if r["reduced_shape"] else "")
        print(f"{r['layer']:<18} {r['pass']:<8} {r['impl']:<12} {shape:<34} {r['ms']:>10.3f} "
              f"{r['gflops']:>9.2f} {r['ratio']:>7.3f}", file=file)


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device):
    info = {"hostname": platform.node(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "device": device, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    return info


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = list(dict.fromkeys(r["layer"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(layers)), 4))
    width = 0.4
    for i, pass_name in enumerate(("fwd", "fwd+bwd")):
        ratio = {r["layer"]: r["ratio"] for r in rows if r["impl"] == "cnnext" and r["pass"] == pass_name}
        xs = [j + (i - 0.5) * width for j in range(len(layers))]
        ax.bar(xs, [ratio.get(layer, 0) for layer in layers], width, label=pass_name)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(layers)), layers, rotation=60, ha="right")
    ax.set_ylabel("native time / cnnext time")
    ax.set_title("cnnext vs PyTorch native conv2d (higher is faster)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="a few small shapes (CI smoke test)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's default)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per call (default 15, quick 3)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls first (default 3, quick 1)")
    parser.add_argument("--only", default=None, help="only layers whose name contains this text")
    parser.add_argument("--family", default=None, choices=("resnet18", "alexnet", "hdc", "misc"),
                        help="only this family of layers")
    parser.add_argument("--no-naive", dest="naive", action="store_false", help="skip the naive loops")
    parser.add_argument("--json", type=Path, default=None, help="write results (with machine info) here")
    parser.add_argument("--plot", type=Path, default=None, help="write a bar chart of the ratios here")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 15)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    args.naive_repeats = 1 if args.quick else 3
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("conv_speed: --device cuda asked for, but torch.cuda.is_available() is False")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    shapes = [s for s in all_shapes(args.device, args.quick)
              if (args.only is None or args.only in s.name) and (args.family in (None, s.family))]
    with_cnnext = cnnext_supports(args.device)
    if not with_cnnext:
        print(f"conv_speed: cnnext has no {args.device} kernel in this build; timing native only", file=sys.stderr)
    timer = Timer(args.device)
    info = machine_info(args.device)
    print(f"# {info['cpu']}, torch {info['torch']}, {info['threads']} threads, {args.dtype}, device {args.device}"
          + (f" ({info['gpu']})" if args.device == "cuda" else "") + f", {info['date']}")
    rows = []
    for shape in tqdm(shapes, desc="conv_speed", unit="shape", file=sys.stderr):
        rows.extend(bench_shape(shape, args, timer, with_cnnext))
    print_table(rows)
    totals = summary(rows)
    for key, value in totals.items():
        print(f"{key}: {value:.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": info, "args": {k: str(v) for k, v in vars(args).items()},
                                         "summary": totals, "rows": rows}, indent=1))
    if args.plot:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
