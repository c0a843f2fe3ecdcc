"""The lab's classification experiments: plain CNN, hyper-parameters, AlexNet, MLP, dilated (HDC) networks
and residual networks."""
from dataclasses import replace

from cnnext.models import hdc_check
from cnnext.receptive_field import path_counts
from cnnext.report import plot_curves, plot_heatmaps

from experiments.context import Experiment
from experiments.outputs import mean_epoch_time, mean_std, write_outputs


def run_conv(ctx):
    other = "torch" if ctx.backend != "torch" else "cnnext"
    for blocks in (1, 3):
        for backend in (ctx.backend, other):
            ctx.train(f"cnn{blocks}-{backend}", "cnn", backend=backend, num_blocks=blocks)
    write_outputs(ctx, [f"The lab's hand-written convolution is `{ctx.backend}` here (cnnext's C++ kernels by "
                        f"default; `--backend naive` runs the Python loops) and its torch.nn counterpart is "
                        f"`{other}`; both build the same plain CNN with 1 and with 3 Conv-BN-ReLU-MaxPool blocks "
                        f"from the same seed, so accuracy and loss should agree closely and the time column "
                        f"compares the kernels."])


def run_hparams(ctx):
    base = {"num_blocks": 3, "kernel_size": 3}
    sweeps = {"num_blocks": [1, 2, 3, 4], "kernel_size": [3, 5, 7],
              "batch_size": [16, 32, 64], "lr": [0.1, 0.01, 0.001]}
    if ctx.args.quick:
        sweeps = {key: values[:2] for key, values in sweeps.items()}
    rows, seen = [], set()
    for key, values in sweeps.items():
        for value in values:
            options, config = dict(base), ctx.config
            if key in options:
                options[key] = value
            else:
                config = replace(ctx.config, **{key: value})
            setting = (options["num_blocks"], options["kernel_size"], config.batch_size, config.lr)
            name = f"L{setting[0]}-k{setting[1]}-b{setting[2]}-lr{setting[3]:g}"
            if setting in seen:
                run = next(r for r in ctx.runs if r["name"] == name)
            else:
                seen.add(setting)
                run, _ = ctx.train(name, "cnn", config=config, **options)
            rows.append([key, value, name, mean_std(run, "test_accuracy"),
                         f"{run['final']['test_loss']:.4f}", f"{mean_epoch_time(run):.1f}"])
    write_outputs(ctx, ["One hyper-parameter at a time is changed from the baseline (3 blocks, 3x3 kernels, "
                        f"batch {ctx.config.batch_size}, lr {ctx.config.lr:g}):",
                        (["varied", "value", "run", "test accuracy", "test loss", "train time / epoch (s)"], rows)])


def run_alexnet(ctx):
    ctx.train("alexnet", "alexnet", width=ctx.settings["width"])
    classic = ctx.data.image_size >= 128  # AlexNet's variant='auto'
    first_conv = "11x11 stride-4" if classic else "3x3 stride-1 (for small images)"
    ctx.train("cnn3", "cnn", num_blocks=3)
    write_outputs(ctx, [f"AlexNet ({'classic' if classic else 'small'} variant: {first_conv} first conv, width "
                        f"x{ctx.settings['width']:g}) against the 3-block plain CNN."])


def run_mlp(ctx):
    ctx.train("mlp", "mlp")
    ctx.train("cnn3", "cnn", num_blocks=3)
    write_outputs(ctx, ["The previous lab's feed-forward network (flattened pixels, hidden layers 512 and 256) "
                        "against the 3-block CNN: compare the parameter counts with the accuracies."])


def _hdc_rows(rate_lists):
    rows = []
    for rates in rate_lists:
        check = hdc_check(rates)
        rows.append([str(list(rates)), "yes" if check else "no", str(list(check.max_distances)),
                     "; ".join(check.reasons) or "-"])
    return ["rates", "satisfies HDC", "M_i", "why not"], rows


def _sizes(image_size, rates):
    sizes = [image_size]
    for rate in rates:
        sizes.append(sizes[-1] - 2 * rate)
    return " -> ".join(map(str, sizes))


def run_dilated(ctx):
    rates = (1, 2, 5)
    ctx.train("hdc-1-2-5", "hdc", rates=rates)
    ctx.train("cnn3", "cnn", num_blocks=3)
    write_outputs(ctx, [f"The HDC network stacks three unpadded 3x3 Conv-BN-ReLU layers with dilation rates "
                        f"{list(rates)}, so the feature maps go {_sizes(ctx.data.image_size, rates)}, then global "
                        f"average pooling and one linear layer; it is compared with the 3-block plain CNN.",
                        _hdc_rows([rates])])


DILATION_RATES = [(1, 2, 5), (1, 2, 3), (1, 1, 1), (2, 4, 8), (1, 2, 9)]
DEEP_PAIR = ("plain20", "plain56", "resnet20", "resnet56")


def gridding_figure(ctx, rate_lists):
    """Path counts from each input pixel to one output (cnnext.receptive_field.path_counts) per rate list:
    white pixels inside the square are the holes of gridding."""
    counts = [path_counts(rates) for rates in rate_lists]
    titles = [f"rates {list(rates)}: {int((c == 0).sum())} holes" for rates, c in zip(rate_lists, counts)]
    caption = ("Receptive field of one output of three stacked 3x3 dilated convolutions: colour = number of "
               "paths from that input pixel, white = never seen (gridding)")
    ctx.add_figure(plot_heatmaps(counts, titles, ctx.path("gridding.png"), "Gridding of the dilation rate lists",
                                 "paths"), caption)
    return counts


def run_dilation(ctx):
    for rates in DILATION_RATES:
        ctx.train("hdc-" + "-".join(map(str, rates)), "hdc", rates=rates)
    counts = gridding_figure(ctx, DILATION_RATES)
    rows = []
    for rates, run, count in zip(DILATION_RATES, ctx.runs, counts):
        check = hdc_check(rates)
        rows.append([str(list(rates)), "yes" if check else "no", _sizes(ctx.data.image_size, rates),
                     f"{count.shape[0]} x {count.shape[0]}", int((count == 0).sum()),
                     mean_std(run, "test_accuracy"), "; ".join(check.reasons) or "-"])
    write_outputs(ctx, ["The same unpadded 3-layer dilated network with other rate lists, including ones that "
                        "break the Hybrid Dilated Convolution rule (`cnnext.hdc_check`). The receptive field "
                        "column and the holes (input pixels inside it that reach the output through no path; "
                        "`cnnext.receptive_field.path_counts`) show the gridding the rule forbids; see the "
                        "gridding figure.",
                        (["rates", "HDC", "feature map sizes", "receptive field", "holes", "test accuracy",
                          "why not HDC"], rows)])


def run_resnet(ctx):
    width = ctx.settings["width"]
    ctx.train("resnet18", "resnet18", width=width)
    ctx.train("plain18", "plain18", width=width)
    # one seed and fewer epochs for the four deep CIFAR nets: the runtime budget (see docs/experiments.md)
    deep_config = replace(ctx.config, epochs=min(ctx.settings["deep_epochs"], ctx.config.epochs))
    deep = [ctx.train(name, name, config=deep_config, seeds=ctx.seeds[:1])[0] for name in DEEP_PAIR]
    ctx.add_figure(plot_curves(deep, ctx.path("depth_train_loss.png"), "plain vs residual at depth 20 and 56",
                               splits=("train",), log_loss=True),
                   "Training loss and accuracy of plain-20/56 and ResNet-20/56 (He et al. 2016, Fig. 6)")
    loss = {run["name"]: run["final"]["train_loss"] for run in deep}
    rows = [[run["name"], "yes" if run["name"].startswith("resnet") else "no", run["name"][-2:],
             f"{run['parameters']:,}", mean_std(run, "train_loss", 1, 4, ""), mean_std(run, "test_accuracy")]
            for run in deep]
    steps = deep[0]["per_seed"][0]["history"][-1]["epoch"] * -(-len(ctx.data.train) // ctx.config.batch_size)
    plain_degrades = loss["plain56"] > loss["plain20"]
    verdict = (f"After {steps} steps: the deeper plain net trains {'worse' if plain_degrades else 'no worse'} than "
               f"the shallower one (training loss plain-56 {loss['plain56']:.4f}, plain-20 {loss['plain20']:.4f}); "
               f"with shortcuts the 56-layer net trains "
               f"{'better' if loss['resnet56'] < loss['plain56'] else 'no better'} than plain-56 "
               f"({loss['resnet56']:.4f}) and "
               f"{'as well as or better than' if loss['resnet56'] <= loss['resnet20'] else 'still worse than'} "
               f"ResNet-20 ({loss['resnet20']:.4f}). He et al. train for 64,000 steps; the training-loss figure "
               f"shows whether a curve was still falling.")
    write_outputs(ctx, [f"ResNet-18 as the lab gives it (3x3 stem; stages 64, 128/2, 256/2, 512/2 of two basic "
                        f"blocks; 1x1 projection shortcuts where the shape changes; add before the ReLU) against "
                        f"the same 18 layers without shortcuts (width x{width:g}).",
                        "The lab's slide (He et al. 2016): a deeper plain network trains *worse* than a "
                        "shallower one, and shortcuts remove the degradation. The CIFAR networks of the paper "
                        "(3x3/16 stem, three stages of n basic blocks with widths 16, 32, 64; 6n+2 layers) show "
                        "it here with and without shortcuts, on the same data and recipe:",
                        (["run", "shortcuts", "layers", "parameters", "final train loss", "test accuracy"], rows),
                        verdict])


def run_resnet_dilated(ctx):
    ctx.train("resnet18", "resnet18", width=ctx.settings["width"])
    ctx.train("resnet18-dilated", "resnet18-dilated", width=ctx.settings["width"])
    write_outputs(ctx, ["ResNet-18 against its dilated twin (Yu et al., Dilated Residual Networks): the last stage "
                        "has dilation 2 instead of stride 2, so it sees a 2x larger feature map with the same "
                        f"weights (width x{ctx.settings['width']:g})."])


TRANSFER_MODELS = (("cnn1", "cnn", {"num_blocks": 1}), ("cnn3", "cnn", {"num_blocks": 3}),
                   ("hdc-1-2-5", "hdc", {"rates": (1, 2, 5)}))


def run_transfer(ctx):
    rows = []
    for name, model, options in TRANSFER_MODELS:
        scratch, _ = ctx.train(f"{name}-scratch", model, pretrain="none", **options)
        pretrained, _ = ctx.train(f"{name}-cifar10", model, pretrain="cifar10", **options)
        rows.append([name] + [mean_std(run, key) for key in ("test_accuracy", "test_accuracy_plain")
                              for run in (scratch, pretrained)])
    write_outputs(ctx, ["Each network is trained twice on the same images with the same recipe: once from random "
                        "weights (*-scratch*), once starting from the weights it learnt on CIFAR-10's 50,000 "
                        "training images (*-cifar10*; every layer fine-tuned, a fresh classifier). CIFAR-10 holds "
                        "cars and trucks (no buses) photographed by many cameras in every light; the lab split's "
                        "test cars and buses come from cameras its training set does not have.",
                        (["network", "reported: from scratch", "reported: pretrained",
                          "final model alone: from scratch", "final model alone: pretrained"], rows)])


# The lab split's recipe (fifth round in docs/experiments.md): 30 epochs in bfloat16, and pretraining on CIFAR-10
# when the data directory has it (CLASSIFICATION's pretrain=None). resnet-dilated does not: its two ResNet-18s at
# 64 px would pretrain for about 35 minutes each (estimated from their fine-tuning time).
LAB_SPLIT = {"split": "lab", "epochs": 30, "precision": "bfloat16"}

EXPERIMENTS = {e.name: e for e in [
    Experiment("conv", "Hand-written vs torch.nn convolution", "The lab's first experiment: the same plain CNN "
               "built on the chosen backend's convolution and on torch.nn's: time, accuracy, loss.", run_conv,
               defaults={**LAB_SPLIT, "seeds": 1}),
    Experiment("hparams", "Hyper-parameters of the plain CNN", "Number of conv blocks, kernel size, batch size "
               "and learning rate, one at a time.", run_hparams, defaults={"split": "random", "seeds": 1}),
    Experiment("alexnet", "AlexNet", "AlexNet (Krizhevsky et al. 2012) against the plain CNN.", run_alexnet,
               defaults={**LAB_SPLIT, "width": 0.5}, quick_image_size=32),
    Experiment("mlp", "MLP vs CNN", "The feed-forward network of the previous lab against the CNN.", run_mlp,
               defaults=LAB_SPLIT),
    Experiment("dilated", "Dilated (HDC) convolution network", "A Hybrid Dilated Convolution network against "
               "the plain CNN.", run_dilated, defaults={"split": "random", "epochs": 60, "precision": "bfloat16"},
               quick_image_size=32),
    Experiment("dilation", "Dilation rates and the HDC rule", "Dilation rate lists that satisfy and that break "
               "the HDC rule.", run_dilation, defaults={"split": "random", "seeds": 1, "epochs": 40},
               quick_image_size=32),
    Experiment("resnet", "ResNet-18 vs a plain 18-layer network, and the degradation problem",
               "Residual connections against the same depth without them: the lab's ResNet-18, and He et al.'s "
               "plain/residual 20- and 56-layer CIFAR networks.", run_resnet,
               defaults={"split": "random", "width": 0.25, "deep_epochs": 10}),
    Experiment("resnet-dilated", "ResNet-18 with dilated convolutions", "ResNet-18 against its dilated variant.",
               run_resnet_dilated, defaults={"width": 0.25, "image_size": 64, "epochs": 30, "pretrain": "none"}),
    Experiment("transfer", "Transfer learning from CIFAR-10 across the lab split's camera shift",
               "The plain CNN with 1 and 3 blocks and the HDC net trained on the lab's images alone, and pretrained "
               "on CIFAR-10 first, then fine-tuned. Needs cifar10/ beside vehicles/ in the data directory.", run_transfer,
               defaults={**LAB_SPLIT, "pretrain": "cifar10"},
               quick_image_size=32),
]}
