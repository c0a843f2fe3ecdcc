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
    cxx_flags = ["-O3", "-fopenmp", "-std=c++17"]
    if not build_cuda():
        return CppExtension("cnnext._C", sources, extra_compile_args={"cxx": cxx_flags},
                            extra_link_args=["-fopenmp"])
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
    return CUDAExtension(
        "cnnext._C",
        sources + sorted(glob.glob("csrc/cuda/*.cu")),
        extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "--expt-relaxed-constexpr", "-std=c++17"]},
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
