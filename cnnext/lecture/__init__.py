"""The CNN lecture, runnable: each idea as a demo that computes its numbers with cnnext's ops and draws a figure.

    from cnnext import lecture
    demo = lecture.DEMOS["edges"]
    result = demo.compute(quick=True)        # the numbers (dicts of floats, lists and tensors)
    demo.plot(result, "edges.png")           # the figure

`python experiments/run.py lecture` runs them all into a report. One module per demo (or pair of demos)."""
from dataclasses import dataclass
from typing import Callable

from . import (arithmetic, channels, conv1d_3d, cross_correlation, dilation, learn_kernel, normalisation,
               output_size, photo_kernels, pooling, speed_ladder)


@dataclass(frozen=True)
class Demo:
    item: int  # its number in the lecture (issue 11)
    name: str
    title: str
    compute: Callable  # compute(quick=False) -> dict of numbers
    plot: Callable  # plot(result, path) -> path of the PNG
    handout: Callable  # handout(result, report, figure_path): text, figure and numbers into a cnnext.report.Report
    timed: bool = False  # measures speed: runs on every thread; the rest are tiny and run fastest on one


DEMOS = {demo.name: demo for demo in [
    Demo(1, "corr2d", "2-D cross-correlation by hand", cross_correlation.corr2d_numbers, cross_correlation.plot_corr2d,
         cross_correlation.corr2d_handout),
    Demo(2, "edges", "Edge detection with K = [1, -1]", cross_correlation.edge_numbers, cross_correlation.plot_edges,
         cross_correlation.edges_handout),
    Demo(3, "learn-kernel", "Learning a kernel by backpropagation", learn_kernel.learn_numbers,
         learn_kernel.plot_learning, learn_kernel.learn_handout),
    Demo(4, "photo-kernels", "Classic kernels on a photograph; cross-correlation vs convolution",
         photo_kernels.kernel_numbers, photo_kernels.plot_kernels, photo_kernels.kernels_handout),
    Demo(5, "padding-stride", "Padding, stride, dilation and the output size", output_size.size_numbers,
         output_size.plot_sizes, output_size.sizes_handout),
    Demo(6, "channels", "Multiple input and output channels; 1x1 convolution", channels.channel_numbers,
         channels.plot_channels, channels.channels_handout),
    Demo(7, "pooling", "Max and average pooling", pooling.pooling_numbers, pooling.plot_pooling,
         pooling.pooling_handout),
    Demo(8, "batchnorm-dropout", "Batch normalisation and dropout from scratch",
         normalisation.normalisation_numbers, normalisation.plot_normalisation, normalisation.normalisation_handout),
    Demo(9, "dilation", "Dilated convolution and gridding", dilation.dilation_numbers, dilation.plot_dilation,
         dilation.dilation_handout),
    Demo(10, "conv1d-conv3d", "Conv1d on a time series, Conv3d on a clip", conv1d_3d.series_numbers,
         conv1d_3d.plot_series, conv1d_3d.series_handout),
    Demo(11, "dense-arithmetic", "Parameters and FLOPs: dense against convolution", arithmetic.arithmetic_numbers,
         arithmetic.plot_arithmetic, arithmetic.arithmetic_handout, timed=True),
    Demo(12, "speed-ladder", "The speed ladder: from Python loops to oneDNN", speed_ladder.ladder_numbers,
         speed_ladder.plot_ladder, speed_ladder.ladder_handout, timed=True),
]}

__all__ = ["Demo", "DEMOS"]
