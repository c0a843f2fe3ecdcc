"""CI has nvcc but no GPU: compile every CUDA source anyway, so CUDA code that does not compile fails CI.

What is compiled (all at once, in parallel processes, into a fresh temporary directory; nothing is cached):
- every kernel header csrc/cuda/kernels/*.cuh on its own (it must be self-contained and include no torch
  header: the kernels are plain CUDA);
- every instantiation unit tests/cuda/instantiate_*.cu, for each of ARCHS: these instantiate every kernel
  template for every dtype, so all device code goes through nvcc and ptxas. A new kernel header
  csrc/cuda/kernels/NAME.cuh needs one (tests/cuda/instantiate_NAME.cu); test_every_kernel_header_is_instantiated
  fails until it has;
- every launcher csrc/cuda/*.cu against torch's headers. The CPU torch wheel lacks one generated CUDA header,
  c10/cuda/impl/cuda_cmake_macros.h; a stand-in with the content of a CUDA build's is written to the temporary
  directory. Nothing is linked: the CPU wheel has no libc10_cuda/libtorch_cuda to link against;
- tests/cuda/conv2d_index_test.cu, a host program that checks the kernels' index math on the CPU; it is run.
The test skips, with the reason, when nvcc is not found.
"""
import os
import random
import re
import shutil
import subprocess
import sysconfig
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch.utils.cpp_extension as cpp_extension

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ROOT / "csrc" / "cuda" / "kernels"
ARCHS = ("80", "90")


def find_nvcc():
    cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
    candidates = [shutil.which("nvcc"), os.path.join(cuda_home, "bin", "nvcc")]
    return next((c for c in candidates if c and os.path.isfile(c) and os.access(c, os.X_OK)), None)


NVCC = find_nvcc()
pytestmark = pytest.mark.skipif(
    NVCC is None, reason="nvcc not found (not on PATH, nor in $CUDA_HOME/bin or /usr/local/cuda/bin): "
                         "the CUDA kernels are not compiled; install the CUDA toolkit to check them")

# The flags torch.utils.cpp_extension gives nvcc (no implicit half conversions, relaxed constexpr) + ours.
NVCC_FLAGS = [*cpp_extension.COMMON_NVCC_FLAGS, "-std=c++20", "-O3"]
STRICT = ["--Werror", "all-warnings", "-Xcompiler", "-Wall,-Wextra"]
CUDA_CMAKE_MACROS = """#pragma once
// Stand-in for the header that a CUDA build of PyTorch generates (c10/cuda/impl/cuda_cmake_macros.h.in);
// the CPU wheel does not ship it.
#define C10_CUDA_BUILD_SHARED_LIBS
"""


def kernel_headers():
    return sorted(KERNELS.glob("*.cuh"))


def instantiation_units():
    return sorted((ROOT / "tests" / "cuda").glob("instantiate_*.cu"))


def launchers():
    return sorted((ROOT / "csrc" / "cuda").glob("*.cu"))


def quoted_includes(path):
    """The files that `path` includes with #include "...", resolved relative to it."""
    names = re.findall(r'^\s*#\s*include\s+"([^"]+)"', path.read_text(), flags=re.M)
    return [(path.parent / name).resolve() for name in names]


def gencode(arch):
    return ["-gencode", f"arch=compute_{arch},code=sm_{arch}"]


def compile_jobs(tmp):
    """name -> nvcc command line, the longest first so that the process pool finishes early."""
    jobs = {}
    stand_in = tmp / "stand_in" / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h"
    stand_in.parent.mkdir(parents=True)
    stand_in.write_text(CUDA_CMAKE_MACROS)
    torch_includes = [f"-I{path}" for path in [tmp / "stand_in", *cpp_extension.include_paths(),
                                               sysconfig.get_paths()["include"]]]
    for launcher in launchers():
        # The kernels' device code is compiled to machine code for every arch by the instantiation units;
        # here PTX for one arch suffices to check the launcher (the time goes into torch's host headers).
        jobs[f"launcher {launcher.name}"] = [
            NVCC, "-c", str(launcher), "-o", str(tmp / f"launcher_{launcher.stem}.o"), *NVCC_FLAGS,
            "-gencode", f"arch=compute_{ARCHS[0]},code=compute_{ARCHS[0]}", *torch_includes,
            "-DTORCH_API_INCLUDE_EXTENSION_H", "-DTORCH_EXTENSION_NAME=_C",
            f"-D_GLIBCXX_USE_CXX11_ABI={int(torch_cxx11_abi())}", "-Xcompiler", "-fPIC"]
    for unit in instantiation_units():
        for arch in ARCHS:
            jobs[f"{unit.name} sm_{arch}"] = [NVCC, "-c", str(unit), "-o", str(tmp / f"{unit.stem}_sm{arch}.o"),
                                              *NVCC_FLAGS, *STRICT, *gencode(arch)]
    jobs["conv2d_index_test"] = [NVCC, str(ROOT / "tests" / "cuda" / "conv2d_index_test.cu"), "-o",
                                 str(tmp / "conv2d_index_test"), *NVCC_FLAGS, *STRICT]
    for header in kernel_headers():
        unit = tmp / f"header_{header.stem}.cu"
        unit.write_text(f'#include "{header}"\n')
        jobs[f"header {header.name}"] = [NVCC, "-c", str(unit), "-o", str(tmp / f"{unit.stem}.o"), *NVCC_FLAGS,
                                         *STRICT, *gencode(ARCHS[0])]
    return jobs


def torch_cxx11_abi():
    import torch
    return torch._C._GLIBCXX_USE_CXX11_ABI


def run(command):
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    return result.returncode, result.stdout + result.stderr, time.perf_counter() - start


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """Runs every compile job in parallel; name -> (returncode, output, seconds). Prints the times."""
    tmp = tmp_path_factory.mktemp("nvcc")
    jobs = compile_jobs(tmp)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        results = dict(zip(jobs, pool.map(run, jobs.values())))
    print(f"\nnvcc: {len(jobs)} jobs in {time.perf_counter() - start:.1f} s wall on {os.cpu_count()} cores")
    for name, (_, _, seconds) in results.items():
        print(f"  {seconds:6.1f} s  {name}")
    return tmp, results


def expect_compiled(results, name):
    returncode, output, _ = results[name]
    assert returncode == 0, f"nvcc failed on {name}:\n{output[-6000:]}"


def test_kernel_headers_are_plain_cuda():
    assert kernel_headers(), f"no kernel headers found in {KERNELS}"
    for header in kernel_headers():
        torch_includes = re.findall(r'^\s*#\s*include\s+[<"]((?:torch|ATen|c10)/[^>"]+)[>"]', header.read_text(),
                                    flags=re.M)
        assert not torch_includes, f"{header.name} includes torch headers {torch_includes}; kernels must be plain CUDA"


def test_every_kernel_header_is_instantiated():
    reached, todo = set(), [unit.resolve() for unit in instantiation_units()]
    while todo:
        path = todo.pop()
        for included in quoted_includes(path):
            if included not in reached and included.exists():
                reached.add(included)
                todo.append(included)
    missing = [h.name for h in kernel_headers() if h.resolve() not in reached]
    assert not missing, (f"kernel headers {missing} are not included by any tests/cuda/instantiate_*.cu, so CI "
                         f"would not compile their kernels: add tests/cuda/instantiate_<name>.cu that instantiates "
                         f"every kernel template for float, double, __half and __nv_bfloat16")


@pytest.mark.parametrize("header", [h.name for h in kernel_headers()])
def test_kernel_header_compiles_alone(compiled, header):
    expect_compiled(compiled[1], f"header {header}")


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("unit", [u.name for u in instantiation_units()])
def test_kernels_compile_for_every_dtype(compiled, unit, arch):
    expect_compiled(compiled[1], f"{unit} sm_{arch}")


@pytest.mark.parametrize("launcher", [launcher.name for launcher in launchers()])
def test_launcher_compiles_against_torch_headers(compiled, launcher):
    expect_compiled(compiled[1], f"launcher {launcher}")


def random_convolutions(count, seed=0):
    """Valid convolutions, small enough for a CPU emulation, with every parameter varied."""
    rng = random.Random(seed)
    lines = []
    while len(lines) < count:
        groups = rng.choice([1, 1, 2, 3])
        c, k = groups * rng.randint(1, 6), groups * rng.randint(1, 6)
        r, s = rng.randint(1, 4), rng.randint(1, 4)
        stride_h, stride_w, dil_h, dil_w = (rng.randint(1, 3) for _ in range(4))
        pad_h, pad_w = rng.randint(0, 2), rng.randint(0, 2)
        h = max(1, dil_h * (r - 1) + 1 - 2 * pad_h) + rng.randint(0, 8)
        w = max(1, dil_w * (s - 1) + 1 - 2 * pad_w) + rng.randint(0, 8)
        n = rng.randint(1, 3)
        lines.append(f"{n} {c} {h} {w} {k} {r} {s} {stride_h} {stride_w} {pad_h} {pad_w} {dil_h} {dil_w} {groups}")
    return lines


# Shapes that need several tiles in every direction of the default 128 x 64 x 16 tile, depthwise, pointwise.
EDGE_CONVOLUTIONS = [
    "2 20 10 10 70 3 3 1 1 1 1 1 1 1",   # 200 x 70 output GEMM, depth 180
    "1 9 13 11 130 3 3 1 1 1 1 1 1 1",   # 130 output channels: 3 column tiles
    "2 8 9 9 8 3 3 1 1 1 1 1 1 8",       # depthwise
    "2 16 7 7 32 1 1 1 1 0 0 1 1 1",     # pointwise
    "1 3 1 1 4 1 1 1 1 0 0 1 1 1",       # 1x1 image
    "1 4 5 5 6 5 5 1 1 0 0 1 1 2",       # kernel as large as the image
    "2 6 8 8 6 3 3 3 3 4 4 2 2 3",       # padding wider than the kernel reach
    "2 0 5 5 3 3 3 1 1 1 1 1 1 1",       # zero input channels: the output is the bias
]


def test_index_math_on_cpu(compiled):
    tmp, results = compiled
    expect_compiled(results, "conv2d_index_test")
    configs = EDGE_CONVOLUTIONS + random_convolutions(150)
    result = subprocess.run([str(tmp / "conv2d_index_test")], input="\n".join(configs) + "\n", capture_output=True,
                            text=True, timeout=600)
    failures = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    checked = [line for line in result.stdout.splitlines() if line.startswith("ok ")]
    assert result.returncode == 0 and not failures, "\n".join(failures[:30]) + result.stderr
    assert len(checked) == len(configs) + 1, result.stdout[-3000:]
