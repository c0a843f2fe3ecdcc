"""Speed of the rest of the convolution family: conv1d, conv3d, max_pool2d, avg_pool2d, cnnext vs PyTorch.

    python benchmarks/family_speed.py                   # representative shapes, on the CPU
    python benchmarks/family_speed.py --quick --json r.json

Per case and pass (forward, forward+backward) it prints the median time of the repeats after warm-up and
ratio = PyTorch time / cnnext time (above 1: cnnext is faster). The two are timed alternately within each
repeat, so that load from other processes falls on both alike.
"""
import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import cnnext  # noqa: E402


@dataclass(frozen=True)
class Case:
    op: str
    input_shape: tuple
    args: dict          # keyword arguments shared by both implementations
    weight_shape: tuple = ()

    def describe(self):
        sizes = "x".join(map(str, self.input_shape))
        weight = f" w{'x'.join(map(str, self.weight_shape))}" if self.weight_shape else ""
        extra = "".join(f" {key}={value}" for key, value in self.args.items())
        return f"{sizes}{weight}{extra}"


IMPLEMENTATIONS = {
    "conv1d": (cnnext.conv1d, F.conv1d),
    "conv3d": (cnnext.conv3d, F.conv3d),
    "max_pool2d": (cnnext.max_pool2d, F.max_pool2d),
    "avg_pool2d": (cnnext.avg_pool2d, F.avg_pool2d),
}


def cases(quick):
    if quick:
        return [
            Case("conv1d", (2, 8, 64), dict(padding=1), (8, 8, 3)),
            Case("conv3d", (1, 4, 6, 8, 8), dict(padding=1), (4, 4, 3, 3, 3)),
            Case("max_pool2d", (2, 8, 16, 16), dict(kernel_size=3, stride=2, padding=1)),
            Case("avg_pool2d", (2, 8, 16, 16), dict(kernel_size=2)),
        ]
    return [
        # speech / time series: a 1-D CNN layer, and a dilated (WaveNet-style) one
        Case("conv1d", (32, 64, 1024), dict(padding=2), (64, 64, 5)),
        Case("conv1d", (8, 128, 4096), dict(padding=2, dilation=2), (128, 128, 3)),
        # video / medical volumes: C3D-style layers
        Case("conv3d", (4, 3, 16, 56, 56), dict(padding=1), (32, 3, 3, 3, 3)),
        Case("conv3d", (4, 64, 8, 28, 28), dict(padding=1), (64, 64, 3, 3, 3)),
        # the pooling of ResNet's stem and of the lab's CNNs
        Case("max_pool2d", (32, 64, 112, 112), dict(kernel_size=3, stride=2, padding=1)),
        Case("max_pool2d", (64, 128, 32, 32), dict(kernel_size=2)),
        Case("avg_pool2d", (32, 64, 56, 56), dict(kernel_size=3, stride=1, padding=1, count_include_pad=False)),
        Case("avg_pool2d", (64, 128, 32, 32), dict(kernel_size=2)),
    ]


def make_inputs(case, requires_grad):
    torch.manual_seed(0)
    tensors = [torch.randn(case.input_shape)]
    if case.weight_shape:
        tensors += [torch.randn(case.weight_shape) * 0.1, torch.randn(case.weight_shape[0])]
    return [t.requires_grad_(requires_grad) for t in tensors]


def run_once(fn, tensors, case, backward):
    start = time.perf_counter()
    out = fn(*tensors, **case.args)
    if backward:
        out.sum().backward()
    return (time.perf_counter() - start) * 1000


def time_case(case, backward, warmup, repeats):
    """Median ms of cnnext and PyTorch, timed alternately."""
    ours, theirs = IMPLEMENTATIONS[case.op]
    tensors = make_inputs(case, requires_grad=backward)
    times = {"cnnext": [], "torch": []}
    with torch.set_grad_enabled(backward):
        for repeat in range(warmup + repeats):
            for name, fn in (("cnnext", ours), ("torch", theirs)):
                for t in tensors:
                    t.grad = None
                elapsed = run_once(fn, tensors, case, backward)
                if repeat >= warmup:
                    times[name].append(elapsed)
    return statistics.median(times["cnnext"]), statistics.median(times["torch"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny shapes, few repeats (a smoke test)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per case (default 10, quick 2)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 10)
    warmup = 1 if args.quick else 2

    results = []
    print(f"{'op':<11} {'pass':<16} {'case':<72} {'cnnext ms':>10} {'torch ms':>10} {'ratio':>6}")
    for case in cases(args.quick):
        for backward in (False, True):
            ours_ms, torch_ms = time_case(case, backward, warmup, repeats)
            row = dict(op=case.op, case=case.describe(), pass_="forward+backward" if backward else "forward",
                       cnnext_ms=ours_ms, torch_ms=torch_ms, ratio=torch_ms / ours_ms)
            results.append(row)
            print(f"{row['op']:<11} {row['pass_']:<16} {row['case']:<72} {ours_ms:>10.2f} {torch_ms:>10.2f} "
                  f"{row['ratio']:>6.2f}", flush=True)
    if args.json:
        meta = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    torch=torch.__version__, threads=torch.get_num_threads(), machine=platform.processor()
                    or platform.machine(), quick=args.quick, repeats=repeats, ratio="torch_ms / cnnext_ms")
        args.json.write_text(json.dumps(dict(meta=meta, results=results), indent=1))


if __name__ == "__main__":
    main()
