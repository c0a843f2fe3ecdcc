"""`run.py lecture`: every demo of cnnext.lecture, its figure and numbers, into one handout (report.md).

Not a Context experiment: no dataset and no training loop of the lab, so it parses and runs itself."""
import datetime
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from cnnext import lecture
from cnnext.report import Report, write_json
from cnnext.train import environment

NAME = "lecture"
TITLE = "The CNN lecture, runnable: each idea as a demo with a figure and its numbers"


def add_parser(commands):
    parser = commands.add_parser(NAME, help=TITLE, description=TITLE + ". Demos: " + ", ".join(lecture.DEMOS))
    parser.add_argument("--out", metavar="DIR", help="output folder (default runs/lecture/)")
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats (seconds; CI)")
    parser.add_argument("--only", action="append", choices=list(lecture.DEMOS), metavar="DEMO",
                        help="run only this demo (repeatable); one of " + ", ".join(lecture.DEMOS))
    parser.add_argument("--threads", type=int, help="threads of the demos that time something (default: torch's); "
                        "the others run on one")
    return parser


def plain(value, limit=64):
    """JSON-ready: tensors, arrays and lists of up to `limit` elements as lists, larger ones summarised (their
    shape or length): the full data stays in the figures and in the code that recomputes it."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return value.tolist() if np.prod(value.shape) <= limit else {"shape": list(value.shape)}
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value] if len(value) <= limit else {"length": len(value)}
    return value


def machine():
    return {**environment("cnnext", "cpu"), "cores": os.cpu_count(),
            "load_average": [round(v, 2) for v in os.getloadavg()],
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def main(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out or f"runs/{NAME}")
    out.mkdir(parents=True, exist_ok=True)
    demos = [demo for demo in lecture.DEMOS.values() if not args.only or demo.name in args.only]
    env = machine()
    timed = ", ".join(str(demo.item) for demo in demos if demo.timed) or "none here"
    command = " ".join(["python experiments/run.py lecture", *(["--quick"] if args.quick else []),
                        *([f"--threads {args.threads}"] if args.threads else [])])
    report = Report("The CNN lecture, runnable")
    report.paragraph(f"Every number below was computed by `{command}` on {env['date']}: torch {env['torch']}, "
                     f"{env['processor']}, {env['cores']} cores, {env['threads']} thread(s) for the timed demos "
                     f"({timed}) and one for the rest, load average at the start {env['load_average']} (other jobs "
                     "shared the machine). Convolutions and pooling run on cnnext's ops; the code of each demo is in "
                     "`cnnext/lecture/`, its test in `tests/test_lecture.py`.")
    if args.quick:
        report.paragraph("> **Quick run** (`--quick`): reduced sizes and repeats; the timings mean little.")
    metrics = {"quick": args.quick, "environment": env, "demos": {}}
    threads = torch.get_num_threads()
    for demo in tqdm(demos, desc="lecture", unit="demo"):
        torch.set_num_threads(threads if demo.timed else 1)  # tiny tensors: thread start-up would dominate
        started = time.perf_counter()
        result = demo.compute(quick=args.quick)
        figure = demo.plot(result, out / f"{demo.item:02d}-{demo.name}.png")
        report.heading(f"{demo.item}. {demo.title}")
        demo.handout(result, report, figure)
        metrics["demos"][demo.name] = {"seconds": time.perf_counter() - started, "result": plain(result)}
    torch.set_num_threads(threads)
    report.write(out / "report.md")
    write_json(out / "metrics.json", metrics)
    print(f"lecture: {len(demos)} demos, report in {out / 'report.md'}")
    return metrics
