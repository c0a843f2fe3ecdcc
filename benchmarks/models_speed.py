"""Whole models on cnnext against PyTorch: inference and one training step, side by side in one process.

    python benchmarks/models_speed.py --threads 2 --json r.json --plot r.png   # lab zoo (+ torchvision's)
    python benchmarks/models_speed.py --quick                                   # smoke test: tiny settings

Each model is built once with torch.nn layers and once more as a deep copy passed through `cnnext.convert`
(the same weights). Per model and pass it times the two alternately, repeat by repeat, after warm-up, and
reports the median milliseconds and ratio = PyTorch time / cnnext time (above 1: cnnext is faster), and
the largest difference between the two models' outputs on the batch (eval mode). With --in-a-row N the sides
take turns in runs of N consecutive calls instead, as the steps of an epoch follow one another: on this
machine a step's time depends on what the previous one left (glibc's free memory, page faults), and PyTorch's
training steps in a row were up to 1.3x slower than between cnnext's. With --separate-processes each such run is
a fresh process of its own, as `experiments/run.py --backend torch|cnnext` trains one backend per process (the
sides still take turns, --repeats times).
  - inference: model.eval(), forward under torch.no_grad();
  - train step: model.train(), zero_grad, forward, loss, backward, optimizer step (the lab's optimizers:
    SGD with momentum 0.9 and weight decay 5e-4, Adam for AOD-Net; the same for torchvision's models).
With --precision bfloat16 both models run under torch.autocast(bfloat16) (mixed precision, as
`experiments/run.py --precision bfloat16` trains): PyTorch's bfloat16 convolutions (oneDNN) against cnnext's.
With --memory-format channels_last both models and the batch are channels-last (NHWC memory, as
`experiments/run.py --memory-format channels_last` trains), which both sides' CPU kernels read without converting.
The lab's zoo runs at its experiments' settings (batch size, image size, width: experiments/run.py), so
its training-step rows are the timed part of an epoch of `experiments/run.py --backend cnnext|torch`.
torchvision's classification models run at 224 px when torchvision can be imported, else they are skipped
with a message.
"""
import argparse
import copy
import json
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import cnnext  # noqa: E402
from cnnext.models import build_model  # noqa: E402
from cnnext.timing import Timer, time_in_runs, time_interleaved  # noqa: E402
from cnnext.train import MEMORY_FORMATS, PRECISIONS, autocast, in_memory_format  # noqa: E402
from conv_speed import geometric_mean, machine_info, plot_ratio_bars, save_results  # noqa: E402

PASSES = ("inference", "train step")


@dataclass(frozen=True)
class Case:
    """A model and the batch it runs on; build() returns it with torch.nn layers."""
    name: str
    group: str          # "lab" or "torchvision"
    batch: int
    image_size: int
    build: object
    task: str = "classification"   # or "dehaze": image out, MSE loss
    optimizer: str = "sgd"


def lab_cases(quick):
    """The lab's models at their experiments' settings (experiments/run.py: conv and dilated, resnet, alexnet,
    dehaze's training crops), or tiny ones for --quick."""
    def lab(name, **options):
        return lambda: build_model(name, backend="torch", num_classes=3, **options)
    if quick:
        return [Case("cnn", "lab", 2, 16, lab("cnn", image_size=16)),
                Case("aodnet", "lab", 2, 16, lab("aodnet"), task="dehaze", optimizer="adam")]
    return [Case("cnn", "lab", 32, 32, lab("cnn", image_size=32, num_blocks=3)),
            Case("hdc", "lab", 32, 32, lab("hdc", image_size=32)),
            Case("resnet18", "lab", 32, 32, lab("resnet18", width=0.25)),
            Case("alexnet", "lab", 32, 32, lab("alexnet", image_size=32, width=0.5)),
            Case("aodnet", "lab", 16, 64, lab("aodnet"), task="dehaze", optimizer="adam")]  # 64 px training crops


TORCHVISION_MODELS = {"resnet18": 8, "resnet50": 4, "mobilenet_v2": 8, "efficientnet_b0": 8, "convnext_tiny": 4,
                      "vgg11_bn": 4, "densenet121": 4, "regnet_x_400mf": 8}  # name: batch size


def torchvision_cases(quick):
    try:
        import torchvision
    except ImportError as error:
        print(f"models_speed: skipping torchvision's models: torchvision cannot be imported ({error})",
              file=sys.stderr)
        return []
    names = ["resnet18"] if quick else list(TORCHVISION_MODELS)
    size = 64 if quick else 224
    return [Case(f"tv.{name}", "torchvision", 2 if quick else TORCHVISION_MODELS[name], size,
                 lambda name=name: torchvision.models.get_model(name, weights=None)) for name in names]


def make_batch(case, model):
    torch.manual_seed(0)
    x = torch.rand(case.batch, 3, case.image_size, case.image_size)
    if case.task == "dehaze":
        return x, torch.rand_like(x)
    with torch.no_grad():
        classes = model.eval()(x[:1]).shape[1]
    return x, torch.randint(classes, (case.batch,))


def make_optimizer(case, model):
    if case.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=1e-3)
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)


def pass_call(case, model, pass_name, x, target, precision="float32"):
    """One inference or one training step of `model` in `precision`, as a call without arguments."""
    loss_fn = F.mse_loss if case.task == "dehaze" else F.cross_entropy
    optimizer = make_optimizer(case, model)

    def infer():
        model.eval()
        with torch.no_grad(), autocast(precision):
            model(x)

    def train_step():
        model.train()
        optimizer.zero_grad(set_to_none=True)
        with autocast(precision):
            loss = loss_fn(model(x), target)
        loss.backward()
        optimizer.step()
    return infer if pass_name == "inference" else train_step


def built(case, args, side):
    """The case's model for `side` ('torch' or 'cnnext': converted), its batch and target, in args.memory_format."""
    model = case.build()
    if side == "cnnext":
        model = cnnext.convert(model)
    model = model.to(memory_format=MEMORY_FORMATS[args.memory_format])
    x, target = make_batch(case, model)
    return model, in_memory_format(x, args.memory_format), in_memory_format(target, args.memory_format)


def timed_in_own_process(case, side, pass_name, args):
    """The times of one run of args.in_a_row calls of one side, alone in a fresh Python process (as a training
    run of one backend is: nothing the other side allocated or cached is there)."""
    command = [sys.executable, __file__, "--run-alone", case.name, side, pass_name, "--threads", str(args.threads),
               "--precision", args.precision, "--memory-format", args.memory_format, "--warmup", str(args.warmup),
               "--in-a-row", str(args.in_a_row)] + (["--quick"] if args.quick else [])
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"models_speed: timing {case.name} ({side}, {pass_name}) in its own process failed:\n"
                           f"{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_alone(case, side, pass_name, args):
    """--run-alone: prints the milliseconds of args.in_a_row calls after args.warmup untimed ones, as JSON."""
    model, x, target = built(case, args, side)
    call = pass_call(case, model, pass_name, x, target, args.precision)
    for _ in range(args.warmup):
        call()
    timer = Timer()
    print(json.dumps([timer(call) for _ in range(args.in_a_row)]))


def bench_case(case, args):
    reference, x, target = built(case, args, "torch")
    converted = cnnext.convert(copy.deepcopy(reference)).to(memory_format=MEMORY_FORMATS[args.memory_format])
    with torch.no_grad(), autocast(args.precision):  # the two must compute the same thing: the rows say how close
        difference = (converted.eval()(x).float() - reference.eval()(x).float()).abs().max().item()
    rows = []
    for pass_name in PASSES:
        calls = {"torch": pass_call(case, reference, pass_name, x, target, args.precision),
                 "cnnext": pass_call(case, converted, pass_name, x, target, args.precision)}
        if args.separate_processes:
            samples = {side: [] for side in calls}
            for _ in range(args.repeats):
                for side in calls:
                    samples[side] += timed_in_own_process(case, side, pass_name, args)
            ms = {side: statistics.median(values) for side, values in samples.items()}
        elif args.in_a_row > 1:
            ms = time_in_runs(calls, warmup=args.warmup, run_length=args.in_a_row, rounds=args.repeats)
        else:
            ms = time_interleaved(calls, warmup=args.warmup, repeats=args.repeats)
        rows.append({"model": case.name, "group": case.group, "pass": pass_name, "batch": case.batch,
                     "image_size": case.image_size, "torch_ms": ms["torch"], "cnnext_ms": ms["cnnext"],
                     "ratio": ms["torch"] / ms["cnnext"], "max_abs_diff": difference})
    return rows


def summary(rows):
    out = {}
    for group in dict.fromkeys(r["group"] for r in rows):
        for pass_name in PASSES:
            ratios = [r["ratio"] for r in rows if r["group"] == group and r["pass"] == pass_name]
            out[f"{group}_geomean_ratio_{pass_name}"] = geometric_mean(ratios)
            out[f"{group}_min_ratio_{pass_name}"] = min(ratios)
    return out


HEADER = (f"{'model':<20} {'pass':<11} {'batch':>5} {'px':>4} {'torch ms':>10} {'cnnext ms':>10} {'ratio':>6} "
          f"{'max diff':>9}")


def row_text(r):
    return (f"{r['model']:<20} {r['pass']:<11} {r['batch']:>5} {r['image_size']:>4} {r['torch_ms']:>10.2f} "
            f"{r['cnnext_ms']:>10.2f} {r['ratio']:>6.3f} {r['max_abs_diff']:>9.1e}")


def plot(rows, path):
    ratios = {pass_name: {r["model"]: r["ratio"] for r in rows if r["pass"] == pass_name} for pass_name in PASSES}
    plot_ratio_bars(ratios, path, "PyTorch time / cnnext time",
                    "Whole models on cnnext (via convert) vs PyTorch (higher is faster)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="two tiny lab models and one small torchvision model")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per pass (default 7, quick 1); "
                        "with --in-a-row, rounds of runs")
    parser.add_argument("--in-a-row", type=int, default=1, metavar="N",
                        help="time N consecutive calls of one side, then N of the other, in turn (as an epoch's steps "
                             "follow one another; --warmup untimed calls start each run); default 1: one call of "
                             "each side in turn")
    parser.add_argument("--warmup", type=int, default=None, help="untimed runs first (default 2, quick 1)")
    parser.add_argument("--only", action="append", default=None, help="only models whose name contains this text")
    parser.add_argument("--group", choices=("lab", "torchvision"), default=None, help="only this group of models")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="float32, or bfloat16 mixed precision (torch.autocast) on both sides")
    parser.add_argument("--memory-format", choices=list(MEMORY_FORMATS), default="contiguous",
                        help="NCHW (contiguous) or NHWC (channels_last) models and batches on both sides")
    parser.add_argument("--separate-processes", action="store_true",
                        help="run every run of --in-a-row calls in a fresh process of its own, the sides in turn (as "
                             "`experiments/run.py --backend torch|cnnext` trains: one backend per process)")
    parser.add_argument("--run-alone", nargs=3, metavar=("MODEL", "SIDE", "PASS"), help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=None, help="write results (with machine info) here")
    parser.add_argument("--plot", type=Path, default=None, help="write a bar chart of the ratios here")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (1 if args.quick else 7)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    torch.set_num_threads(args.threads)
    cases = ((lab_cases(args.quick) if args.group != "torchvision" else [])
             + (torchvision_cases(args.quick) if args.group != "lab" else []))
    cases = [c for c in cases if args.only is None or any(text in c.name for text in args.only)]
    if args.run_alone:
        name, side, pass_name = args.run_alone
        return run_alone(next(c for c in cases if c.name == name), side, pass_name, args)
    info = machine_info("cpu")
    info["memory_format"] = args.memory_format
    print(f"# {info['cpu']}, torch {info['torch']}, {info['threads']} threads, {args.precision}, {args.memory_format}, "
          f"{info['date']}")
    print(HEADER)
    print("-" * len(HEADER))
    rows = []
    for case in tqdm(cases, desc="models_speed", unit="model", file=sys.stderr):
        for row in bench_case(case, args):
            rows.append(row)
            tqdm.write(row_text(row), file=sys.stdout)
        save_results(args, info, summary(rows), rows, plot)  # after every model: a stopped run keeps its rows
    for key, value in summary(rows).items():
        print(f"{key}: {value:.3f}")


if __name__ == "__main__":
    main()
