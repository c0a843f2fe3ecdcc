"""The lab's regression experiment: photo dehazing. The lab's AOD-Net against a small U-Net trained
with L1 + SSIM, each over several seeds, beside the hazy input itself."""
import os
from dataclasses import replace
from statistics import mean, stdev

import torch

from cnnext.data import ImagePairs
from cnnext.losses import L1SSIMLoss
from cnnext.report import plot_bars, plot_image_grid
from cnnext.train import evaluate, is_main, psnr_per_image, ssim_per_image

from experiments.context import Experiment
from experiments.outputs import write_outputs

PEERS = ("published student reports of the same lab (random 80/20 split, shallow CNNs): about 20-22 dB PSNR, "
         "computed from the MSE they report")
MODELS = {"aodnet": ("AOD-Net", "mse"), "dehaze-unet": ("U-Net", "l1+ssim")}


def _spread(values, digits):
    return f"{mean(values):.{digits}f} ± {stdev(values):.{digits}f}" if len(values) > 1 else f"{values[0]:.{digits}f}"


def _crop(ctx):
    return min(ctx.settings["crop"], ctx.data.image_size) if ctx.settings.get("crop") else None


def _training_data(ctx, seed):
    """The data with a training set of random crop x crop windows (flipped with augmentation), drawn with `seed`."""
    train = ctx.data.train
    return replace(ctx.data, train=ImagePairs(train.inputs, train.targets, train.augment, seed, train.skipped,
                                              _crop(ctx)))


def _train_over_seeds(ctx, model_name, loss):
    """One run per seed (weight initialisation, batch order, crops); the model of the last seed."""
    runs, model = [], None
    for seed in ctx.seeds:  # one ctx.train call per seed: the training crops are drawn with the seed too
        config = replace(ctx.config, loss=L1SSIMLoss(ctx.settings["ssim_weight"]) if loss != "mse" else None)
        run, model = ctx.train(f"{model_name}-seed{seed}", model_name, data=_training_data(ctx, seed), config=config,
                               seeds=[seed], **ctx.settings.get(model_name, {}))
        run["seed"] = seed
        runs.append(run)
    return runs, model


def _examples(ctx, model, title):
    model.eval()
    count = min(4, len(ctx.data.test))
    hazy, clear = (torch.stack(t) for t in zip(*(ctx.data.test[i] for i in range(count))))
    with torch.no_grad():
        output = model(hazy.to(ctx.config.device)).cpu().clamp(0, 1)
    row_titles = [f"test {i}: {p:.1f} dB / {s:.3f}" for i, (p, s)
                  in enumerate(zip(psnr_per_image(output, clear).tolist(), ssim_per_image(output, clear).tolist()))]
    ctx.add_figure(plot_image_grid(list(zip(hazy, output, clear)), ["hazy input", f"{title} output", "clear target"],
                                   ctx.path("dehaze_examples.png"), row_titles),
                   f"Test images: hazy input, {title} output (last seed), clear target (row label: output PSNR / SSIM)")


def run_dehaze(ctx):
    results, model = {}, None
    for model_name, (title, loss) in MODELS.items():
        results[model_name], model = _train_over_seeds(ctx, model_name, loss)
    hazy = evaluate(torch.nn.Identity(), ctx.data.test, "dehaze", ctx.config.batch_size, ctx.config.device,
                    ctx.config.max_batches)
    if not is_main():
        return
    _examples(ctx, model, MODELS["dehaze-unet"][0])
    rows = [["hazy input (no network)", "-", "-", f"{hazy['test_psnr']:.2f}", f"{hazy['test_ssim']:.4f}"]]
    for model_name, runs in results.items():
        title, loss = MODELS[model_name]
        rows.append([f"{title} (`{model_name}`)", loss, ", ".join(str(run["seed"]) for run in runs),
                     _spread([run["final"]["test_psnr"] for run in runs], 2),
                     _spread([run["final"]["test_ssim"] for run in runs], 4)])
    names = ["hazy input"] + [MODELS[name][0] for name in results]
    psnrs = [hazy["test_psnr"]] + [mean(run["final"]["test_psnr"] for run in runs) for runs in results.values()]
    ctx.add_figure(plot_bars(names, psnrs, ctx.path("psnr.png"), "PSNR (dB)", "Test PSNR against the clear images",
                             "{:.2f}"), "Test PSNR (mean over seeds): the hazy input itself against the networks")
    settings = ctx.settings
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    write_outputs(ctx, [
        f"**Recipe**: {settings['epochs']} epochs, batch {settings['batch_size']}, "
        f"{settings['optimizer']} lr {settings['lr']:g} annealed along a cosine; training samples are random "
        f"{_crop(ctx) or ctx.data.image_size} px square windows of the training pairs"
        f"{', flipped at random' if ctx.data.train.augment else ''}, the test images are evaluated whole; the U-Net "
        f"({settings['dehaze-unet']['features']} features in its first level) is trained with L1 + "
        f"{settings['ssim_weight']:g} (1 - SSIM), "
        f"AOD-Net with MSE as in its paper. Every image is resized to {ctx.data.image_size} x "
        f"{ctx.data.image_size} once; PSNR and SSIM (Gaussian 11x11 window) are computed on these same resized "
        f"test images for the hazy input and for the networks, and averaged over the test images. The test "
        f"loss column is the MSE for every run. Seeds vary the weights' initialisation, the batch order and the crops; "
        f"mean ± standard deviation over the seeds.",
        (["compared with the clear image", "training loss", "seeds", "test PSNR (dB)", "test SSIM"], rows),
        f"For comparison on the lab's images: {PEERS}." + ("" if ctx.data.bundled else " Our split is the "
                                                           "lab's: the last 20% of the pairs by file name."),
        f"Machine load (1, 5, 15 min averages) when the run ended: {load} on {os.cpu_count()} cores; the "
        f"time columns are wall times under that load.",
    ], extra={"hazy_input_baseline": hazy, "peers": PEERS,
              "summary": {name: {"test_psnr": [run["final"]["test_psnr"] for run in runs],
                                 "test_ssim": [run["final"]["test_ssim"] for run in runs]}
                          for name, runs in results.items()},
              "load_average": os.getloadavg()})


EXPERIMENTS = {e.name: e for e in [
    Experiment("dehaze", "Image dehazing (regression)", "The regression task of the lab: hazy image in, clear "
               "image out.", run_dehaze, task="dehaze",
               defaults={"image_size": 128, "crop": 64, "epochs": 12, "batch_size": 16, "lr": 2e-3,
                         "optimizer": "adam", "weight_decay": 0.0, "augment": True, "seeds": 3, "ssim_weight": 0.2,
                         "dehaze-unet": {"features": 8}}, quick_image_size=32),
]}
