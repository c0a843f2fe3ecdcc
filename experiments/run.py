#!/usr/bin/env python
"""The CNN lab as reproducible experiments: `python experiments/run.py NAME [options]`, NAME one of the
subcommands below (`--help` lists them). Each writes metrics.json, PNG figures and report.md to --out
(default runs/NAME/), saves a checkpoint per model and epoch (rerunning the same command resumes), and runs
data-parallel under `torchrun --nproc_per_node N experiments/run.py NAME ...`.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnnext import data as datasets  # noqa: E402
from cnnext.data.augment import MIXES  # noqa: E402
from cnnext.data.vehicles import SPLITS  # noqa: E402
from cnnext.report import Report, write_json  # noqa: E402
from cnnext.train import MEMORY_FORMATS, PRECISIONS, ResumeError, init_distributed, is_main, log  # noqa: E402
from experiments import cifar, classification, dehaze, lecture, speedrun  # noqa: E402
from experiments.context import Context  # noqa: E402
from experiments.pretrain import PRETRAIN_SETS, has_cifar10  # noqa: E402

EXPERIMENTS = {**classification.EXPERIMENTS, **dehaze.EXPERIMENTS, **cifar.EXPERIMENTS,
               **speedrun.EXPERIMENTS}
LAB_EXPERIMENTS = {name: e for name, e in EXPERIMENTS.items() if e.defaults.get("dataset") != "cifar10"}
CIFAR_ONLY = [name for name in EXPERIMENTS if name not in LAB_EXPERIMENTS]
STANDALONE = {lecture.NAME: lecture}  # not Context experiments: each adds its own parser and runs itself


def common_options():
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("common options (defaults depend on the experiment; see docs)")
    group.add_argument("--dataset", choices=datasets.DATASETS, help="vehicles or cifar10 for classification "
                       "experiments (default vehicles); dehaze for `dehaze`")
    group.add_argument("--data", metavar="DIR", help="data directory with vehicles/, dehaze/, cifar10/ (default: "
                       "$CNNEXT_DATA; with neither, real data bundled with scikit-learn: handwritten digits, "
                       "hazed sample photos; labelled as such)")
    group.add_argument("--cache", metavar="DIR", help="where decoded CIFAR-10 JPEGs (one .npy per split) and "
                       "weights pretrained on CIFAR-10 are kept (default: $CNNEXT_CACHE, else ~/.cache/cnnext)")
    group.add_argument("--epochs", type=int)
    group.add_argument("--batch-size", type=int, help="per process")
    group.add_argument("--lr", type=float, help="peak learning rate (cosine schedule)")
    group.add_argument("--image-size", type=int, help="images are resized to this square size")
    group.add_argument("--test-fraction", type=float, default=0.2,
                       help="vehicles/dehaze: the fraction of each class (of the pairs) held out as the test set")
    group.add_argument("--split", choices=SPLITS, help="vehicles: 'lab' = the last --test-fraction of each class "
                       "in file-name order (the lab's rule), 'random' = a stratified random split of the same size, "
                       "seeded by --seed (default: the experiment's)")
    group.add_argument("--seeds", type=int, metavar="N", help="train every model N times (seeds --seed, --seed+1, "
                       "...) and report mean and standard deviation")
    group.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    group.add_argument("--backend", default="cnnext", choices=["cnnext", "torch", "naive"],
                       help="convolution kernels: cnnext's C++/CUDA, PyTorch's, or the naive Python loops "
                            "(tiny runs only)")
    group.add_argument("--width", type=float, help="channel width multiplier for alexnet (default 0.5), resnet and "
                       "resnet-dilated (default 1)")
    on_off = argparse.BooleanOptionalAction
    group.add_argument("--augment", action=on_off, help="training augmentation: classification: flips plus the "
                       "experiment's crops or translations and photometric jitter (batched; the report names them); "
                       "dehaze: flips")
    group.add_argument("--standardize", choices=["none", "image", "channel"], help="classification: per-image "
                       "standardisation as the model's first layer, over the whole image or per colour channel")
    group.add_argument("--ema", action=on_off, help="evaluate an exponential moving average of the weights")
    group.add_argument("--tta", action=on_off, help="classification: average predictions over image and mirror")
    group.add_argument("--bn-adapt", action=on_off, help="classification: re-estimate BatchNorm statistics on the "
                       "unlabelled test images before testing (unsupervised domain adaptation)")
    group.add_argument("--tent", action=on_off, help="classification: train the BatchNorm scales and shifts to make "
                       "confident predictions on the unlabelled test images, then re-estimate their statistics "
                       "(TENT, unsupervised domain adaptation; default: as --bn-adapt)")
    group.add_argument("--class-weights", choices=["none", "balanced"], help="classification: 'balanced' weights "
                       "each class's cross-entropy by N / (classes x its count), so rare classes count as much")
    group.add_argument("--mix", choices=MIXES, help="classification: mix each training batch with a shuffled copy "
                       "of itself: 'mixup' blends images, 'cutmix' pastes a box; the loss weighs both labels")
    group.add_argument("--precision", choices=PRECISIONS, help="training steps in float32, or in bfloat16 mixed "
                       "precision (torch.autocast: convolutions in bfloat16, weights and optimiser in float32; "
                       "evaluation stays float32)")
    group.add_argument("--memory-format", choices=list(MEMORY_FORMATS), help="weights and batches in NCHW "
                       "('contiguous', PyTorch's default) or NHWC memory ('channels_last', which both backends' CPU "
                       "kernels read without converting: faster training, the same values; docs/benchmarks.md)")
    group.add_argument("--pretrain", choices=PRETRAIN_SETS, help="classification: first train each model on "
                       "CIFAR-10's training set (DATA/cifar10, same input pipeline), then fine-tune all of it here "
                       "with a fresh classifier; the pretrained weights are cached (--cache) and shared by the seeds "
                       "(default: cifar10 on the vehicles' lab split when DATA has cifar10/, none otherwise and in "
                       "`resnet-dilated`)")
    group.add_argument("--pretrain-epochs", type=int, metavar="N", help="epochs of that pretraining (default 10)")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--threads", type=int, help="torch.set_num_threads")
    group.add_argument("--out", metavar="DIR", help="output folder (default runs/NAME/)")
    group.add_argument("--quick", action="store_true", help="smoke test: tiny images, a few batches, 2 epochs")
    group.add_argument("--no-resume", action="store_true", help="ignore checkpoints and train from scratch")
    return parser


def build_parser():
    parser = argparse.ArgumentParser(prog="run.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="experiment", required=True, metavar="NAME")
    common = common_options()
    for experiment in EXPERIMENTS.values():
        command = commands.add_parser(experiment.name, parents=[common], help=experiment.title,
                                      description=experiment.help)
        if experiment.add_options:
            experiment.add_options(command.add_argument_group(f"{experiment.name} options"))
    commands.add_parser("all", parents=[common], help="the lab's experiments on its vehicles and dehazing data, one "
                        "after another (into OUT/NAME/); the CIFAR-10 ones (" + ", ".join(CIFAR_ONLY) + ") take "
                        "hours and run on their own")
    for entry in STANDALONE.values():
        entry.add_parser(commands)
    return parser


def run_all(args):
    base = Path(args.out or "runs")
    rows = []
    for name, experiment in LAB_EXPERIMENTS.items():
        if experiment.defaults.get("pretrain", "none") != "none" and not has_cifar10(args.data):
            log(f"== {name}: skipped, it pretrains on CIFAR-10 and the data directory has no cifar10/ folder")
            continue
        args_for = argparse.Namespace(**{**vars(args), "out": str(base / name),
                                         "dataset": None if experiment.task == "dehaze" else args.dataset})
        started = time.perf_counter()
        ctx = Context(experiment, args_for)
        experiment.run(ctx)
        rows.append([f"[{name}]({name}/report.md)", experiment.title, len(ctx.runs),
                     f"{time.perf_counter() - started:.1f}"])
    if is_main():
        report = Report("The CNN lab: all experiments")
        report.table(["experiment", "title", "models trained", "wall time (s)"], rows)
        report.write(base / "report.md")
        write_json(base / "metrics.json", {"experiments": [row[0].split("]")[0][1:] for row in rows],
                                           "wall_time_s": {row[0].split("]")[0][1:]: float(row[3]) for row in rows}})


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.experiment in STANDALONE:
        return STANDALONE[args.experiment].main(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.device = init_distributed(args.device)
    try:
        if args.experiment == "all":
            run_all(args)
        else:
            experiment = EXPERIMENTS[args.experiment]
            experiment.run(Context(experiment, args))
        if torch.distributed.is_initialized():
            # ranks other than 0 finish before rank 0 has written the reports; tearing gloo down on one rank
            # while the other still holds the group aborted that rank's process now and then at exit
            torch.distributed.barrier()
    except (datasets.DataLayoutError, ResumeError) as error:
        raise SystemExit(f"run.py: {error}") from None
    except KeyboardInterrupt:
        raise SystemExit("interrupted: the last finished epoch is checkpointed; rerun the same command to resume")
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
    if int(os.environ.get("RANK", "0")) != 0:
        # after a finished run, a torchrun worker was now and then aborted while Python shut down ("terminate
        # called without an active exception" from gloo's threads); a worker has written nothing, so it leaves
        # without running those destructors
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
