"""Speed of cnnext's kernels against PyTorch's native ops (and, for conv2d, the naive loops), side by side.

    python benchmarks/conv_speed.py                     # every shape, on the CPU
    python benchmarks/conv_speed.py --device cuda       # cuDNN with TF32 off, plus a TF32 row for the convs
    python benchmarks/conv_speed.py --quick --json r.json --plot r.png
    python benchmarks/conv_speed.py --family conv1d --family conv3d --family pool

Per layer shape and pass (forward, forward+backward) it prints the median time of the repeats after
warm-up, GFLOP/s, and ratio = native time / this time (above 1: faster than PyTorch). The
implementations are timed alternately within each repeat, so that load from other processes falls on
all of them alike. The naive loop convolution is far too slow for the real shapes: it runs on a
reduced shape (shown in its row) against native on that same reduced shape, and nothing is extrapolated.

After the Conv2d shapes come the rest of the family, cnnext against F.conv1d, F.conv3d, F.max_pool2d and
F.avg_pool2d: families conv1d, conv3d and pool. They have no naive rows (the loops exist only for
conv2d), and pooling rows show '-' for GFLOP/s (null in the JSON): pooling does no multiply-adds.
"""
import argparse
import datetime
import json
import math
import os
import platform
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import cnnext  # noqa: E402
from cnnext.timing import Timer, time_interleaved  # noqa: E402


@dataclass(frozen=True)
class Shape:
    """A Conv2d layer. Like ConvNdCase and PoolCase it has a name and family, describe(), forward_flops(),
    make_inputs(device, dtype) and forward(fn, *inputs); op names its pair in IMPLEMENTATIONS."""
    op = "conv2d"
    tf32_applies = True
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

    def make_inputs(self, device, dtype):
        """(input, weight, bias) requiring grad, and a grad_output for the backward pass."""
        torch.manual_seed(0)
        ho, wo = self.out_hw
        x = torch.randn(self.n, self.c, self.h, self.w, device=device, dtype=dtype, requires_grad=True)
        w = torch.randn(self.k, self.c // self.groups, self.r, self.s, device=device, dtype=dtype,
                        requires_grad=True)
        b = torch.randn(self.k, device=device, dtype=dtype, requires_grad=True)
        grad_out = torch.randn(self.n, self.k, ho, wo, device=device, dtype=dtype)
        return (x, w, b), grad_out

    def forward(self, conv, x, w, b):
        return conv(x, w, b, self.stride, self.padding, self.dilation, self.groups)


def sizes_text(sizes):
    return "x".join(map(str, sizes))


@dataclass(frozen=True)
class ConvNdCase:
    """A stride-1 conv1d or conv3d layer (family = op), given by the sizes of its input and weight tensors."""
    tf32_applies = True
    name: str
    family: str
    input_size: tuple
    weight_size: tuple
    padding: int = 0
    dilation: int = 1

    @property
    def op(self):
        return self.family

    @property
    def out_size(self):
        kernel = self.weight_size[2:]
        spatial = [size + 2 * self.padding - self.dilation * (k - 1) for size, k in zip(self.input_size[2:], kernel)]
        return (self.input_size[0], self.weight_size[0], *spatial)

    def forward_flops(self):
        return 2 * math.prod(self.out_size) * math.prod(self.weight_size[1:])

    def describe(self):
        extra = "".join(f" {key}{value}" for key, value in (("p", self.padding), ("d", self.dilation))
                        if value != (0 if key == "p" else 1))
        return f"{sizes_text(self.input_size)} -> {self.weight_size[0]} {sizes_text(self.weight_size[2:])}{extra}"

    def make_inputs(self, device, dtype):
        torch.manual_seed(0)
        x = torch.randn(self.input_size, device=device, dtype=dtype, requires_grad=True)
        w = torch.randn(self.weight_size, device=device, dtype=dtype, requires_grad=True)
        b = torch.randn(self.weight_size[0], device=device, dtype=dtype, requires_grad=True)
        return (x, w, b), torch.randn(self.out_size, device=device, dtype=dtype)

    def forward(self, conv, x, w, b):
        return conv(x, w, b, 1, self.padding, self.dilation)


@dataclass(frozen=True)
class PoolCase:
    """A max_pool2d or avg_pool2d call; options are the keyword arguments given to both implementations."""
    family = "pool"
    tf32_applies = False
    name: str
    op: str
    input_size: tuple
    options: dict = field(default_factory=dict)

    def forward_flops(self):
        return None

    def describe(self):
        short = {"kernel_size": "k", "stride": "s", "padding": "p", "count_include_pad": "count_pad="}
        extra = "".join(f" {short[key]}{value}" for key, value in self.options.items())
        return f"{sizes_text(self.input_size)}{extra}"

    def make_inputs(self, device, dtype):
        torch.manual_seed(0)
        x = torch.randn(self.input_size, device=device, dtype=dtype, requires_grad=True)
        with torch.no_grad():
            out_size = self.forward(IMPLEMENTATIONS[self.op][1], x).shape
        return (x,), torch.randn(out_size, device=device, dtype=dtype)

    def forward(self, pool, x):
        return pool(x, **self.options)


IMPLEMENTATIONS = {  # op: (cnnext, native)
    "conv2d": (cnnext.conv2d, F.conv2d),
    "conv1d": (cnnext.conv1d, F.conv1d),
    "conv3d": (cnnext.conv3d, F.conv3d),
    "max_pool2d": (cnnext.max_pool2d, F.max_pool2d),
    "avg_pool2d": (cnnext.avg_pool2d, F.avg_pool2d),
}


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


def family_cases(quick):
    """Conv1d, Conv3d and pooling: a small case of each for --quick, else two representative ones."""
    if quick:
        return [
            ConvNdCase("conv1d.k3", "conv1d", (2, 8, 64), (8, 8, 3), padding=1),
            ConvNdCase("conv3d.k3", "conv3d", (1, 4, 6, 8, 8), (4, 4, 3, 3, 3), padding=1),
            PoolCase("maxpool.k3s2", "max_pool2d", (2, 8, 16, 16), dict(kernel_size=3, stride=2, padding=1)),
            PoolCase("avgpool.k2", "avg_pool2d", (2, 8, 16, 16), dict(kernel_size=2)),
        ]
    return [
        # speech / time series: a 1-D CNN layer, and a dilated (WaveNet-style) one
        ConvNdCase("conv1d.k5", "conv1d", (32, 64, 1024), (64, 64, 5), padding=2),
        ConvNdCase("conv1d.dilated", "conv1d", (8, 128, 4096), (128, 128, 3), padding=2, dilation=2),
        # video / medical volumes: C3D-style layers
        ConvNdCase("conv3d.stem", "conv3d", (4, 3, 16, 56, 56), (32, 3, 3, 3, 3), padding=1),
        ConvNdCase("conv3d.64ch", "conv3d", (4, 64, 8, 28, 28), (64, 64, 3, 3, 3), padding=1),
        # the pooling of ResNet's stem and of the lab's CNNs
        PoolCase("maxpool.stem", "max_pool2d", (32, 64, 112, 112), dict(kernel_size=3, stride=2, padding=1)),
        PoolCase("maxpool.k2", "max_pool2d", (64, 128, 32, 32), dict(kernel_size=2)),
        PoolCase("avgpool.k3", "avg_pool2d", (32, 64, 56, 56),
                 dict(kernel_size=3, stride=1, padding=1, count_include_pad=False)),
        PoolCase("avgpool.k2", "avg_pool2d", (64, 128, 32, 32), dict(kernel_size=2)),
    ]


def all_shapes(device, quick):
    if quick:
        return [replace(s, n=4) for s in resnet18_cifar_layers(4)[1:3]] + \
               [replace(s, n=4) for s in other_layers(4) if s.name in ("hdc.d5", "depthwise")] + \
               family_cases(quick)
    big_batch = 128 if device == "cuda" else 64
    return resnet18_cifar_layers(big_batch) + other_layers(big_batch // 4) + family_cases(quick)


def pass_call(shape, fn, inputs, grad_out, backward):
    """One forward (and backward, for all inputs) of `fn` on `shape`, as a call without arguments."""
    def run():
        y = shape.forward(fn, *inputs)
        if backward:
            torch.autograd.grad(y, inputs, grad_out)
    return run


class Tf32:
    """Context: cuDNN's TF32 switch set to `enabled` (and restored)."""

    def __init__(self, enabled):
        self.enabled = enabled

    def __enter__(self):
        self.saved = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = self.enabled

    def __exit__(self, *exc):
        torch.backends.cudnn.allow_tf32 = self.saved


def with_tf32(run, enabled):
    """`run` with cuDNN's TF32 switch set to `enabled` while it runs."""
    def call():
        with Tf32(enabled):
            run()
    return call


def cnnext_supports(device):
    try:
        x = torch.zeros(1, 1, 3, 3, device=device)
        cnnext.conv2d(x, torch.zeros(1, 1, 1, 1, device=device))
        return True
    except (NotImplementedError, RuntimeError):
        return False


def pass_flops(shape, backward):
    """Floating-point operations of one pass (forward+backward counts three forwards); None for pooling."""
    flops = shape.forward_flops()
    return None if flops is None else flops * (3 if backward else 1)


def in_memory_format(t, memory_format):
    """t in channels-last memory (channels_last_3d for 5-D) when memory_format asks for it and t is 4-D or 5-D,
    keeping requires_grad; else t as it is."""
    if memory_format == "contiguous" or t.dim() not in (4, 5):
        return t
    layout = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
    return t.detach().contiguous(memory_format=layout).requires_grad_(t.requires_grad)


def bench_shape(shape, args, timer, with_cnnext):
    """Rows of results for one shape: native (+ TF32 on cuda for convs), cnnext, and for conv2d naive on
    the reduced shape."""
    rows = []
    dtype = getattr(torch, args.dtype)
    ours, native = IMPLEMENTATIONS[shape.op]
    for backward in (False, True):
        pass_name = "fwd+bwd" if backward else "fwd"
        inputs, grad_out = shape.make_inputs(args.device, dtype)
        inputs = tuple(in_memory_format(t, args.memory_format) for t in inputs)
        grad_out = in_memory_format(grad_out, args.memory_format)
        native_call = pass_call(shape, native, inputs, grad_out, backward)
        calls = {"native": with_tf32(native_call, False)}
        if args.device == "cuda" and shape.tf32_applies:
            calls["native-tf32"] = with_tf32(native_call, True)
        if with_cnnext:
            calls["cnnext"] = with_tf32(pass_call(shape, ours, inputs, grad_out, backward), False)
        times = time_interleaved(calls, timer, args.warmup, args.repeats)
        for label, ms in times.items():
            rows.append(result_row(shape, shape, label, pass_name, ms, times["native"], pass_flops(shape, backward)))
        if args.naive and isinstance(shape, Shape):
            small = shape.reduced()
            small_inputs, small_grad_out = small.make_inputs(args.device, dtype)
            # Native takes microseconds on the reduced shape: it gets the full repeats, the loops only a few.
            native_ms = time_interleaved(
                {"native": with_tf32(pass_call(small, native, small_inputs, small_grad_out, backward), False)},
                timer, args.warmup, args.repeats)["native"]
            naive_ms = time_interleaved(
                {"naive": pass_call(small, cnnext.naive.conv2d, small_inputs, small_grad_out, backward)},
                timer, 1, args.naive_repeats)["naive"]
            rows.append(result_row(shape, small, "naive", pass_name, naive_ms, native_ms,
                                   pass_flops(small, backward)))
    return rows


def result_row(shape, timed_shape, impl, pass_name, ms, native_ms, flops):
    return {"layer": shape.name, "family": shape.family, "impl": impl, "pass": pass_name,
            "shape": timed_shape.describe(), "reduced_shape": timed_shape != shape,
            "ms": ms, "gflops": None if flops is None else flops / ms / 1e6, "ratio": native_ms / ms}


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
        gflops = "-" if r["gflops"] is None else f"{r['gflops']:.2f}"
        print(f"{r['layer']:<18} {r['pass']:<8} {r['impl']:<12} {shape:<34} {r['ms']:>10.3f} "
              f"{gflops:>9} {r['ratio']:>7.3f}", file=file)


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
            "device": device, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "load_average_start": os.getloadavg(),
            # glibc's malloc settings change PyTorch's and cnnext's times alike (page faults): recorded when set
            "glibc_tunables": os.environ.get("GLIBC_TUNABLES", "")}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    return info


def save_results(args, info, totals, rows, plot_rows):
    """Writes args.json (rows, summary, machine, arguments) and args.plot (plot_rows(rows, path)) if asked."""
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": info, "args": {k: str(v) for k, v in vars(args).items()},
                                         "summary": totals, "rows": rows}, indent=1))
    if args.plot:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        plot_rows(rows, args.plot)


def plot_ratio_bars(ratios, path, ylabel, title):
    """Grouped bar chart of `ratios` ({pass name: {label: ratio}}) around the line of equal speed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(label for by_label in ratios.values() for label in by_label))
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(labels)), 4))
    width = 0.8 / len(ratios)
    for i, (pass_name, by_label) in enumerate(ratios.items()):
        xs = [j + (i - (len(ratios) - 1) / 2) * width for j in range(len(labels))]
        ax.bar(xs, [by_label.get(label, 0) for label in labels], width, label=pass_name)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot(rows, path):
    ratios = {pass_name: {r["layer"]: r["ratio"] for r in rows if r["impl"] == "cnnext" and r["pass"] == pass_name}
              for pass_name in ("fwd", "fwd+bwd")}
    plot_ratio_bars(ratios, path, "native time / cnnext time", "cnnext vs PyTorch native (higher is faster)")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="a few small shapes (CI smoke test)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's default)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time CPU work (process CPU time of all threads) instead of wall-clock time")
    parser.add_argument("--dtype", choices=("float32", "float64", "bfloat16", "float16"), default="float32",
                        help="the dtype of every tensor (native: oneDNN for bfloat16 on AVX-512 CPUs)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per call (default 15, quick 3)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls first (default 3, quick 1)")
    parser.add_argument("--only", default=None, help="only layers whose name contains this text")
    parser.add_argument("--family", action="append", default=None,
                        choices=("resnet18", "alexnet", "hdc", "misc", "conv1d", "conv3d", "pool"),
                        help="only this family of layers (repeat for several)")
    parser.add_argument("--memory-format", choices=("contiguous", "channels_last"), default="contiguous",
                        help="the layout of inputs, weights and gradients: NCHW, or channels-last (NHWC / NDHWC), "
                             "which both sides' kernels read without converting")
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
              if (args.only is None or args.only in s.name) and (args.family is None or s.family in args.family)]
    with_cnnext = cnnext_supports(args.device)
    if not with_cnnext:
        print(f"conv_speed: cnnext has no {args.device} kernel in this build; timing native only", file=sys.stderr)
    if args.cpu_time and args.device == "cuda":
        sys.exit("conv_speed: --cpu-time times CPU kernels; it cannot time --device cuda")
    timer = Timer(args.device, args.cpu_time)
    info = machine_info(args.device)
    info["memory_format"] = args.memory_format
    print(f"# {info['cpu']}, torch {info['torch']}, {info['threads']} threads, {args.dtype}, {args.memory_format}, "
          f"device {args.device}"
          + (", CPU time" if args.cpu_time else "")
          + (f" ({info['gpu']})" if args.device == "cuda" else "") + f", {info['date']}")
    rows = []
    for shape in tqdm(shapes, desc="conv_speed", unit="shape", file=sys.stderr):
        rows.extend(bench_shape(shape, args, timer, with_cnnext))
    print_table(rows)
    totals = summary(rows)
    for key, value in totals.items():
        print(f"{key}: {value:.3f}")
    info["load_average_end"] = os.getloadavg()  # other processes on the machine while this ran
    save_results(args, info, totals, rows, plot)


if __name__ == "__main__":
    main()
