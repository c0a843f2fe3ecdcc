"""What this cnnext is and what it will do on this machine, for users and bug reports (`python -m cnnext`).

Everything comes from where it is decided: versions from the packages, the build record and the kernel each op
takes from the compiled library itself (csrc/config.cpp asks the same functions the kernels dispatch on).
"""
import os
import platform
import sys

import torch

from . import __version__
from ._extension import BUILD

DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
# The layer the kernel choice is reported for: 64 -> 64 channels, 3x3, stride 1, padding 1 (a ResNet layer).
CHANNELS = 64


def kernel_path(op, dtype):
    """The CPU kernel `op` ('conv2d' or 'conv3d') runs for a 64-channel 3x3 layer of `dtype` on this machine."""
    dims = 2 if op == "conv2d" else 3
    x = torch.empty((1, CHANNELS) + (8,) * dims, dtype=dtype)
    w = torch.empty((CHANNELS, CHANNELS) + (3,) * dims, dtype=dtype)
    return torch.ops.cnnext._kernel_path(op, x, w, [1] * dims, [1] * dims, [1] * dims, 1)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def data_dir_line():
    from .data import DATA_ENV, resolve_data_dir  # here: the data loaders are not needed to import cnnext
    try:
        path = resolve_data_dir()
    except Exception as error:  # a CNNEXT_DATA that points nowhere: say so, the report is for finding such things
        return f"error: {error}"
    if path is None:
        return f"none (${DATA_ENV} is not set: the experiments use the bundled sample data of scikit-learn)"
    return f"{path} (from ${DATA_ENV})"


def report():
    """The configuration report as text (cnnext.show_config() prints it)."""
    features = dict(torch.ops.cnnext._cpu_features())
    cuda = (f"CUDA {BUILD['cuda']}, architectures {BUILD['cuda_archs']}" if BUILD["cuda"]
            else "not built (a CPU build of torch, or CNNEXT_CPU_ONLY=1)")
    lines = [
        f"cnnext {__version__} ({os.path.dirname(os.path.abspath(__file__))})",
        f"  torch: {torch.__version__} (cnnext was built against {BUILD['torch']})",
        f"  Python: {platform.python_version()} ({sys.executable}), {platform.system()} {platform.machine()}",
        "Kernels compiled in:",
        "  CPU: yes",
        f"  CUDA: {cuda}",
    ]
    if BUILD["cuda"]:
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(gpus))
        lines.append(f"  GPUs visible: {gpus}{' (' + names + ')' if gpus else ''}; path choice "
                     f"CNNEXT_CUDA_CONV_PATH={os.environ.get('CNNEXT_CUDA_CONV_PATH', 'auto')}")
    lines += [
        f"CPU: {cpu_name()}",
        f"  features found at run time: {' '.join(f for f, present in features.items() if present) or 'none'}",
        f"  features absent: {' '.join(f for f, present in features.items() if not present) or 'none'}",
        f"  threads: {torch.get_num_threads()} (torch.get_num_threads(); inter-op {torch.get_num_interop_threads()})",
        f"CPU kernel per op on this machine ({CHANNELS} -> {CHANNELS} channels, 3x3"
        f"{', CNNEXT_CPU_KERNEL=' + os.environ['CNNEXT_CPU_KERNEL'] if 'CNNEXT_CPU_KERNEL' in os.environ else ''}):",
    ]
    for op in ("conv2d", "conv3d"):
        paths = ", ".join(f"{str(dtype).removeprefix('torch.')}: {kernel_path(op, dtype)}" for dtype in DTYPES)
        lines.append(f"  {op}: {paths}")
    lines += [
        "  conv1d: conv2d's kernels (it runs as conv2d on images of height 1)",
        "  max_pool2d, avg_pool2d: one loop kernel per (image, channel) plane, every dtype",
        f"Data directory: {data_dir_line()}",
    ]
    return "\n".join(lines)


def show_config(file=None):
    """Prints what this cnnext is and does here: versions, kernels compiled in, CPU features, the kernel each op takes,
    threads and the data directory, like torch.__config__.show(). Paste it into bug reports."""
    print(report(), file=file or sys.stdout)
