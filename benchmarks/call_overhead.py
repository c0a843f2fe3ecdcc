"""Per-call overhead: cnnext's functions against PyTorch's on inputs so tiny that the kernels take no time.

    python benchmarks/call_overhead.py                       # conv2d, conv3d, max_pool2d, avg_pool2d
    python benchmarks/call_overhead.py --json r.json

Each row times blocks of calls, forward alone and forward+backward, cnnext and native alternately (block by
block, so that load from other processes falls on both alike), and reports the median microseconds per call
and overhead = cnnext time / native time (1.0: the same cost per call; below: cheaper).
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import cnnext  # noqa: E402
from conv_speed import machine_info  # noqa: E402

# op: (cnnext function, native function, input size, the rest of the arguments)
CASES = {
    "conv2d": (cnnext.conv2d, F.conv2d, (1, 1, 4, 4), lambda: (torch.randn(1, 1, 3, 3, requires_grad=True),)),
    "conv3d": (cnnext.conv3d, F.conv3d, (1, 1, 4, 4, 4), lambda: (torch.randn(1, 1, 3, 3, 3, requires_grad=True),)),
    "max_pool2d": (cnnext.max_pool2d, F.max_pool2d, (1, 1, 4, 4), lambda: (2,)),
    "avg_pool2d": (cnnext.avg_pool2d, F.avg_pool2d, (1, 1, 4, 4), lambda: (2,)),
}


def block(fn, input, rest, backward, calls):
    """Microseconds per call of `calls` calls of fn(input, *rest) (and its backward)."""
    t0 = time.perf_counter()
    for _ in range(calls):
        out = fn(input, *rest)
        if backward:
            out.sum().backward()
    return (time.perf_counter() - t0) / calls * 1e6


def measure(op, backward, calls, repeats):
    ours, native, input_size, make_rest = CASES[op]
    torch.manual_seed(0)
    x = torch.randn(input_size, requires_grad=backward)
    rest = make_rest() if backward else tuple(t.detach() if isinstance(t, torch.Tensor) else t for t in make_rest())
    samples = {"cnnext": [], "native": []}
    for fn in (ours, native):
        block(fn, x, rest, backward, calls)  # warm-up
    for _ in range(repeats):
        for label, fn in (("cnnext", ours), ("native", native)):
            samples[label].append(block(fn, x, rest, backward, calls))
    us = {label: statistics.median(values) for label, values in samples.items()}
    return {"op": op, "pass": "fwd+bwd" if backward else "fwd", "input": list(input_size),
            "cnnext_us": us["cnnext"], "native_us": us["native"], "overhead": us["cnnext"] / us["native"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per timed block")
    parser.add_argument("--repeats", type=int, default=21, help="timed blocks per implementation")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's default)")
    parser.add_argument("--op", action="append", choices=sorted(CASES), default=None, help="only this op (repeatable)")
    parser.add_argument("--json", type=Path, default=None, help="write results (with machine info) here")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    info = machine_info("cpu")
    info["load_average"] = [round(load, 2) for load in os.getloadavg()]  # 1, 5, 15 min: what else ran
    print(f"# {info['cpu']}, torch {info['torch']}, {info['threads']} threads, {info['date']}, "
          f"load average {info['load_average']}")
    print(f"{'op':<12} {'pass':<8} {'cnnext us':>10} {'native us':>10} {'overhead':>9}")
    rows = []
    for op in args.op or CASES:
        for backward in (False, True):
            row = measure(op, backward, args.calls, args.repeats)
            rows.append(row)
            print(f"{op:<12} {row['pass']:<8} {row['cnnext_us']:>10.1f} {row['native_us']:>10.1f} "
                  f"{row['overhead']:>9.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": info, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
