"""The lab's regression experiment: photo dehazing with AOD-Net."""
import torch

from cnnext.report import plot_bars, plot_image_grid
from cnnext.train import evaluate, is_main, psnr_per_image, ssim_per_image

from experiments.context import Experiment
from experiments.outputs import write_outputs


def run_dehaze(ctx):
    run, model = ctx.train("aodnet", "aodnet")
    hazy_baseline = evaluate(torch.nn.Identity(), ctx.data.test, "dehaze", ctx.config.batch_size, ctx.config.device,
                             ctx.config.max_batches)
    if not is_main():
        return
    model.eval()
    count = min(4, len(ctx.data.test))
    hazy, clear = (torch.stack(t) for t in zip(*(ctx.data.test[i] for i in range(count))))
    with torch.no_grad():
        output = model(hazy.to(ctx.config.device)).cpu().clamp(0, 1)
    row_titles = [f"test {i}: {p:.1f} dB / {s:.3f}" for i, (p, s)
                  in enumerate(zip(psnr_per_image(output, clear).tolist(), ssim_per_image(output, clear).tolist()))]
    ctx.add_figure(plot_image_grid(list(zip(hazy, output, clear)), ["hazy input", "AOD-Net output", "clear target"],
                                   ctx.path("dehaze_examples.png"), row_titles),
                   "Test images: hazy input, network output, clear target (row label: output PSNR / SSIM)")
    final = run["final"]
    ctx.add_figure(plot_bars(["hazy input", "AOD-Net"], [hazy_baseline["test_psnr"], final["test_psnr"]],
                             ctx.path("psnr.png"), "PSNR (dB)", "Test PSNR against the clear images", "{:.2f}"),
                   "Test PSNR: the hazy input itself against the network's output")
    table = (["compared with the clear image", "PSNR (dB)", "SSIM"],
             [["hazy input (no network)", f"{hazy_baseline['test_psnr']:.2f}", f"{hazy_baseline['test_ssim']:.4f}"],
              ["AOD-Net output", f"{final['test_psnr']:.2f}", f"{final['test_ssim']:.4f}"]])
    write_outputs(ctx, ["AOD-Net (Li et al. 2017) learns J = K(I) I - K(I) + 1 from the hazy image I with five "
                        "small convolutions, trained with MSE. PSNR and SSIM (Gaussian 11x11 window) are "
                        "averaged over the test images; the hazy input itself is the baseline.", table],
                  extra={"hazy_input_baseline": hazy_baseline})


EXPERIMENTS = {e.name: e for e in [
    Experiment("dehaze", "Image dehazing (regression)", "The regression task of the lab: hazy image in, clear "
               "image out.", run_dehaze, task="dehaze",
               defaults={"image_size": 128, "epochs": 10, "batch_size": 16, "lr": 1e-3, "optimizer": "adam",
                         "weight_decay": 0.0}, quick_image_size=32),
]}
