"""Item 10: Conv1d on a real time series (Google's daily closing price 2004-2008, from matplotlib's sample
data) and Conv3d on a generated video clip (a bright square moving right, generated in code)."""
import numpy as np
import torch

from ..functional import conv1d, conv3d
from .figures import plt, save


def closing_prices():
    """(dates as numpy datetime64, closing prices) from matplotlib's bundled goog.npz."""
    from matplotlib import cbook

    prices = cbook.get_sample_data("goog.npz")["price_data"]
    return prices["date"], torch.tensor(prices["close"], dtype=torch.float64)


def moving_clip(frames=8, size=12, side=4):
    """Generated clip [1, 1, frames, size, size]: a side x side square of ones moving one pixel right per frame."""
    clip = torch.zeros(1, 1, frames, size, size, dtype=torch.float64)
    top = (size - side) // 2
    for t in range(frames):
        clip[0, 0, t, top:top + side, 1 + t:1 + t + side] = 1
    return clip


def series_numbers(quick=False, window=20):
    dates, close = closing_prices()
    if quick:
        dates, close = dates[:200], close[:200]
    x = close[None, None]
    average = conv1d(x, torch.full((1, 1, window), 1.0 / window, dtype=torch.float64))[0, 0]
    change = conv1d(x, torch.tensor([[[-1.0, 1.0]]], dtype=torch.float64))[0, 0]  # close[t+1] - close[t]
    clip = moving_clip()
    motion = conv3d(clip, torch.tensor([-1.0, 1.0], dtype=torch.float64).view(1, 1, 2, 1, 1))[0, 0]
    smooth = conv3d(clip, torch.full((1, 1, 3, 3, 3), 1 / 27, dtype=torch.float64))[0, 0]
    return {
        "dates": dates, "close": close, "window": window, "average": average, "change": change,
        "series_length": len(close), "average_length": len(average),
        "average_error": float(np.abs(average.numpy() - np.convolve(close.numpy(), np.ones(window) / window,
                                                                    "valid")).max()),
        "change_error": float((change - close.diff()).abs().max()),
        "clip": clip[0, 0], "clip_shape": list(clip.shape), "motion": motion, "motion_shape": list(motion.shape),
        "motion_entering": [float(m.clamp(min=0).sum()) for m in motion],
        "motion_leaving": [float(-m.clamp(max=0).sum()) for m in motion],
        "smooth_shape": list(smooth.shape), "smooth": smooth,
    }


def plot_series(result, path):
    figure = plt.figure(figsize=(13, 6.5), layout="constrained")
    top, bottom = figure.subfigures(2, 1, height_ratios=[1.25, 0.75])
    price_axis, change_axis = top.subplots(1, 2, width_ratios=[2, 1])
    dates, window = result["dates"], result["window"]
    price_axis.plot(dates, result["close"], color="0.6", linewidth=1, label="daily close (real data)")
    price_axis.plot(dates[window - 1:], result["average"], color="C0",
                    label=f"Conv1d, kernel ones({window}) / {window}: moving average")
    price_axis.set(ylabel="US $", title="Google's closing price (matplotlib sample data goog.npz)")
    price_axis.legend(fontsize="small")
    change_axis.plot(dates[1:], result["change"], color="C3", linewidth=0.7)
    change_axis.set(ylabel="US $ per day", title="Conv1d, kernel [-1, 1]: daily change")
    for axis in (price_axis, change_axis):
        axis.grid(alpha=0.3)
        axis.tick_params(axis="x", labelrotation=30, labelsize="small")
    bottom.suptitle("Conv3d on a generated clip (a 4x4 square moving 1 px right per frame, 8 frames of "
                    "12x12): frames 0-2; kernel [-1, 1] along time (red: pixels entering, blue: leaving); "
                    "3x3x3 mean", fontsize="medium")
    axes = bottom.subplots(1, 9)
    for t in range(3):
        axes[t].imshow(result["clip"][t].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[t].set_title(f"frame {t}", fontsize="small")
        axes[3 + t].imshow(result["motion"][t].numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
        axes[3 + t].set_title(f"motion {t}→{t + 1}\n+{result['motion_entering'][t]:g} / "
                              f"-{result['motion_leaving'][t]:g} px", fontsize="small")
        axes[6 + t].imshow(result["smooth"][t].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[6 + t].set_title(f"3x3x3 mean {t}", fontsize="small")
    for axis in axes:
        axis.set_xticks([])
        axis.set_yticks([])
    return save(figure, path)


def series_handout(result, report, figure):
    report.paragraph("The same sliding dot product works along one axis (text, speech, time series: Conv1d, input "
                     "[N, C, L]) and three (video, CT/MRI volumes: Conv3d, input [N, C, D, H, W]). A 1-D kernel of "
                     "ones / k is a moving average; [-1, 1] is the 1-D edge detector, here the daily price change. "
                     "A 3-D kernel [-1, 1] along time subtracts consecutive frames: it fires where something moves.")
    report.figure(figure, "Conv1d on a real price series (top); Conv3d on a generated clip (bottom)")
    report.paragraph(
        f"Time series: {result['series_length']} trading days (2004-08-19 to 2008-10-14); the {result['window']}-day "
        f"average has {result['average_length']} = {result['series_length']} - {result['window']} + 1 values and "
        f"matches numpy.convolve to {result['average_error']:.1e}; the [-1, 1] kernel matches numpy.diff to "
        f"{result['change_error']:.1e}. Clip (generated): shape {result['clip_shape']}; the motion output has shape "
        f"{result['motion_shape']} (one frame fewer) and every frame pair shows exactly "
        f"{result['motion_entering'][0]:g} pixels entering (+1) and {result['motion_leaving'][0]:g} leaving (-1), "
        f"one column of the 4x4 square; the 3x3x3 average has shape {result['smooth_shape']}.")
