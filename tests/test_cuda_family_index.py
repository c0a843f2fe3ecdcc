"""The index math of the Conv3d and pooling CUDA kernels, checked against PyTorch on the CPU (no GPU needed).

tests/cuda/family_index_test.cu is a host program built with nvcc that runs the kernels' per-element
__host__ __device__ functions (vol2col, col2vol, max/avg pooling forward and backward) in double on
random cases written to its stdin; this test compares what it prints with F.conv3d, F.max_pool2d and
F.avg_pool2d and their gradients. (tests/test_cuda_compile.py compiles the kernels themselves.)
Skips when nvcc is not found.
"""
import os
import random
import shutil
import subprocess

import pytest
import torch
import torch.nn.functional as F
from torch.utils import cpp_extension

from cnnext.ops import pool_output_size

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def find_nvcc():
    cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
    candidates = [shutil.which("nvcc"), os.path.join(cuda_home, "bin", "nvcc")]
    return next((c for c in candidates if c and os.path.isfile(c) and os.access(c, os.X_OK)), None)


NVCC = find_nvcc()
# The kernels include the shared CUDA helpers of the Conv2d kernels (common.cuh, conv2d_geometry.cuh, ...).
SHARED_HEADER = os.path.join(ROOT, "csrc", "cuda", "kernels", "common.cuh")
pytestmark = [
    pytest.mark.skipif(NVCC is None, reason="nvcc not found: the CUDA kernels' index math is not checked"),
    pytest.mark.skipif(not os.path.exists(SHARED_HEADER),
                       reason="csrc/cuda/kernels/common.cuh is missing (the CUDA Conv2d kernels are not in this tree)"),
]


@pytest.fixture(scope="module")
def index_program(tmp_path_factory):
    binary = tmp_path_factory.mktemp("nvcc") / "family_index_test"
    command = [NVCC, os.path.join(ROOT, "tests", "cuda", "family_index_test.cu"), "-o", str(binary),
               *cpp_extension.COMMON_NVCC_FLAGS, "-std=c++17", "-O1", "--Werror", "all-warnings",
               "-Xcompiler", "-Wall,-Wextra"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, f"nvcc failed:\n{result.stdout}{result.stderr}"
    return binary


def values(t):
    return " ".join(f"{v:.17g}" for v in t.flatten().tolist())


def max_case(rng):
    kernel = [rng.randint(1, 4) for _ in range(2)]
    dilation = [rng.randint(1, 3) for _ in range(2)]
    stride = [rng.randint(1, 3) for _ in range(2)]
    padding = [rng.randint(0, k // 2) for k in kernel]
    size = [max(d * (k - 1) + 1 - 2 * p, d) + rng.randint(0, 5) for k, d, p in zip(kernel, dilation, padding)]
    x = torch.randn(rng.randint(1, 2), rng.randint(1, 3), *size, dtype=torch.float64)
    if rng.random() < 0.5:
        x = x.mul(2).round()  # ties
    return x, kernel, stride, padding, dilation, rng.random() < 0.5


def avg_case(rng):
    x, kernel, stride, padding, _, ceil_mode = max_case(rng)
    return x, kernel, stride, padding, ceil_mode, rng.random() < 0.5, rng.choice([None, None, 3, -2])


def conv3d_case(rng):
    groups = rng.choice([1, 1, 2])
    c, k = groups * rng.randint(1, 3), groups * rng.randint(1, 3)
    kernel = [rng.randint(1, 3) for _ in range(3)]
    stride = [rng.randint(1, 2) for _ in range(3)]
    padding = [rng.randint(0, 2) for _ in range(3)]
    dilation = [rng.randint(1, 2) for _ in range(3)]
    size = [max(d * (kk - 1) + 1 - 2 * p, 1) + rng.randint(0, 3) for kk, d, p in zip(kernel, dilation, padding)]
    x = torch.randn(rng.randint(1, 2), c, *size, dtype=torch.float64)
    w = torch.randn(k, c // groups, *kernel, dtype=torch.float64)
    return x, w, stride, padding, dilation, groups


def run_program(binary, text):
    result = subprocess.run([str(binary)], input=text, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    blocks, current = [], []
    for line in result.stdout.splitlines():
        if line == "end":
            blocks.append(current)
            current = []
        else:
            current.append(torch.tensor([float(v) for v in line.split()], dtype=torch.float64))
    return blocks


def test_pooling_index_math(index_program):
    rng = random.Random(0)
    torch.manual_seed(0)
    cases, text = [], []
    for _ in range(40):
        x, kernel, stride, padding, dilation, ceil_mode = max_case(rng)
        out_hw = [pool_output_size(x.shape[2 + i], kernel[i], stride[i], padding[i], dilation[i], ceil_mode)
                  for i in range(2)]
        dy = torch.randn(*x.shape[:2], *out_hw, dtype=torch.float64)
        cases.append(("max", x, dy, (kernel, stride, padding, dilation, ceil_mode)))
        text.append(f"max {x.shape[0] * x.shape[1]} {x.shape[2]} {x.shape[3]} {out_hw[0]} {out_hw[1]} "
                    f"{' '.join(map(str, [*kernel, *stride, *padding, *dilation]))}\n{values(x)}\n{values(dy)}\n")
    for _ in range(40):
        x, kernel, stride, padding, ceil_mode, include_pad, divisor = avg_case(rng)
        out_hw = [pool_output_size(x.shape[2 + i], kernel[i], stride[i], padding[i], 1, ceil_mode) for i in range(2)]
        dy = torch.randn(*x.shape[:2], *out_hw, dtype=torch.float64)
        cases.append(("avg", x, dy, (kernel, stride, padding, ceil_mode, include_pad, divisor)))
        text.append(f"avg {x.shape[0] * x.shape[1]} {x.shape[2]} {x.shape[3]} {out_hw[0]} {out_hw[1]} "
                    f"{' '.join(map(str, [*kernel, *stride, *padding]))} {int(include_pad)} {divisor or 0}\n"
                    f"{values(x)}\n{values(dy)}\n")
    results = run_program(index_program, "".join(text))
    assert len(results) == len(cases)
    for (kind, x, dy, args), printed in zip(cases, results):
        x = x.clone().requires_grad_()
        if kind == "max":
            y, indices = F.max_pool2d(x, *args, return_indices=True)
            y.backward(dy)
            assert torch.equal(printed[0], y.detach().flatten()), args
            assert torch.equal(printed[1], indices.flatten().double()), args
            torch.testing.assert_close(printed[2], x.grad.flatten(), rtol=1e-12, atol=1e-12)
        else:
            y = F.avg_pool2d(x, *args)
            y.backward(dy)
            torch.testing.assert_close(printed[0], y.detach().flatten(), rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(printed[1], x.grad.flatten(), rtol=1e-12, atol=1e-12)


def test_conv3d_index_math(index_program):
    rng = random.Random(1)
    torch.manual_seed(1)
    cases, text = [], []
    for _ in range(30):
        x, w, stride, padding, dilation, groups = conv3d_case(rng)
        y = F.conv3d(x, w, None, stride, padding, dilation, groups)
        dy = torch.randn_like(y)
        cases.append((x, w, dy, (stride, padding, dilation, groups)))
        sizes = [*x.shape, w.shape[0], *w.shape[2:], *y.shape[2:], *stride, *padding, *dilation, groups]
        text.append(f"conv3d {' '.join(map(str, sizes))}\n{values(x.permute(0, 2, 3, 4, 1))}\n"
                    f"{values(w.permute(0, 2, 3, 4, 1))}\n{values(dy.permute(0, 2, 3, 4, 1))}\n")
    results = run_program(index_program, "".join(text))
    assert len(results) == len(cases)
    for (x, w, dy, args), printed in zip(cases, results):
        x = x.clone().requires_grad_()
        y = F.conv3d(x, w, None, *args)
        y.backward(dy)
        torch.testing.assert_close(printed[0], y.detach().permute(0, 2, 3, 4, 1).flatten(), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(printed[1], x.grad.permute(0, 2, 3, 4, 1).flatten(), rtol=1e-10, atol=1e-10)
