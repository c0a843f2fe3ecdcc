"""Builds cnnext._C: the C++ CPU kernels always, the CUDA kernels when torch has CUDA and nvcc is found.

FORCE_CUDA=1 builds the CUDA kernels even when no GPU is visible; CNNEXT_CPU_ONLY=1 skips them.
Build with `pip install --no-build-isolation -e .` so the torch already installed is the one used.
"""
import glob
import os

import torch
from setuptools import find_packages, setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

ROOT = os.path.dirname(os.path.abspath(__file__))


def build_cuda() -> bool:
    if os.environ.get("CNNEXT_CPU_ONLY") == "1":
        return False
    if os.environ.get("FORCE_CUDA") == "1":
        return True
    return torch.version.cuda is not None and CUDA_HOME is not None


def extension():
    sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/cpu/*.cpp"))
    cxx_flags = ["-O3", "-fopenmp", "-std=c++20"]
    if not build_cuda():
        return CppExtension("cnnext._C", sources, extra_compile_args={"cxx": cxx_flags},
                            extra_link_args=["-fopenmp"])
    if torch.version.cuda is None or CUDA_HOME is None:
        raise RuntimeError(f"FORCE_CUDA=1, but the CUDA kernels need a CUDA build of torch (this is torch "
                           f"{torch.__version__}) and a CUDA toolkit (CUDA_HOME={CUDA_HOME}); set CNNEXT_CPU_ONLY=1 "
                           f"for the CPU kernels only")
    # Ampere and Hopper machine code, plus Hopper PTX that newer GPUs compile when the library loads.
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0+PTX")
    return CUDAExtension(
        "cnnext._C",
        sources + sorted(glob.glob("csrc/cuda/*.cu")),
        # torch's own flags come first (no implicit half conversions, C++20); -lineinfo maps profiles to source.
        extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "--expt-relaxed-constexpr", "-std=c++20", "-lineinfo"]},
        extra_link_args=["-fopenmp"],
    )


setup(
    name="cnnext",
    version="0.1.0",
    description="Readable, fast, tested convolution kernels (C++ and CUDA) for PyTorch, with a CNN model zoo",
    packages=find_packages(include=["cnnext", "cnnext.*"]),
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    python_requires=">=3.10",
)
