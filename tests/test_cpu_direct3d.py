"""Conv3d on the CPU's direct kernel (csrc/cpu/direct_conv.cpp, the code Conv2d runs with depth 1) against
F.conv3d in float64, in float32 and in bfloat16 (float32 sums).

Shapes reach what depth adds: depth taps that read padding (rows cut by depth), depths cut together with
heights, depth strides (stride phases of grad input, some with no taps), depth dilation, the 3-channel stem
with merged row taps (its grad input a narrow convolution), narrow outputs, Winograd at depth 1, strided
1x1x1 subsampling, groups and depthwise, and channels-last-3d and non-contiguous input. The same checks run in
subprocesses with the direct kernel off (the vol2col + GEMM path) and with every shape on the tap kernel.
"""
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import cnnext

# n, c, (d, h, w), k, kernel (t, r, s), stride, padding, dilation, groups
SHAPES = [
    (2, 16, (4, 6, 6), 24, (3, 3, 3), 1, 1, 1, 1),           # depth padding: rows cut by depth
    (2, 8, (3, 4, 4), 8, (3, 3, 3), 1, 1, 1, 1),             # small maps: depths and heights cut together
    (2, 3, (6, 12, 12), 32, (3, 3, 3), 1, 1, 1, 1),          # 3-channel stem, merged row taps
    (3, 16, (7, 8, 8), 20, (3, 3, 3), (2, 1, 2), 1, 1, 1),   # depth stride: phases of grad input
    (2, 17, (9, 7, 6), 33, (3, 1, 3), 1, (2, 0, 1), (2, 1, 1), 1),  # depth dilation, odd channels
    (3, 24, (5, 6, 6), 40, (1, 1, 1), 2, 0, 1, 1),           # strided 1x1x1: subsampled
    (2, 32, (4, 5, 5), 32, (3, 3, 3), 1, 1, 1, 32),          # depthwise
    (2, 32, (4, 5, 5), 64, (3, 3, 3), 1, 1, 1, 2),           # grouped
    (1, 8, (2, 3, 3), 8, (3, 3, 3), 1, 3, 1, 1),             # outputs that read only padding: bias alone
    (2, 64, (4, 4, 4), 64, (3, 3, 3), (3, 2, 1), 2, (2, 1, 1), 1),  # phases with no taps along depth
    (2, 5, (5, 6, 20), 3, (3, 3, 3), (2, 1, 1), 1, (1, 1, 2), 1),   # 3 output channels: vectors along rows
    (2, 16, (1, 14, 13), 20, (1, 3, 3), 1, (0, 1, 1), 1, 1),       # depth 1, 1x3x3: Winograd F(2x2, 3x3)
    (2, 16, (7, 9, 8), 16, (3, 3, 3), 1, (2, 1, 1), (2, 1, 1), 1),  # Winograd per depth tap, depth dilation
    (2, 20, (5, 10, 7), 17, (2, 3, 3), 1, (0, 1, 1), 1, 1),         # Winograd, two depth taps, clipped tiles
    (1, 16, (6, 12, 11), 24, (3, 3, 3), 1, (1, 2, 2), (1, 2, 2), 1),  # Winograd with dilation 2 in the plane
    (2, 24, (3, 5, 7), 10, (1, 1, 1), 1, 0, 1, 1),           # 1x1x1 on NCDHW: vectors along the pixels
]
# bfloat16: the same products of bfloat16 values, summed in float32 and rounded once (see test_cpu_bf16.py).
BF16_RTOL = 2 ** -7


def make_input(n, c, size, dtype, layout):
    if layout == "non_contiguous":
        return torch.randn(n, c, *size[:-1], 2 * size[-1]).to(dtype)[..., ::2]
    x = torch.randn(n, c, *size).to(dtype)
    return x.contiguous(memory_format=torch.channels_last_3d) if layout == "channels_last_3d" else x


def shape_id(s):
    return f"{s[0]}x{s[1]}x{'x'.join(map(str, s[2]))}-k{s[3]}-t{s[4]}-s{s[5]}-p{s[6]}-d{s[7]}-g{s[8]}"


def assert_close(got, want, dtype, what):
    assert got.dtype == dtype, f"{what}: dtype {got.dtype}"
    if dtype == torch.bfloat16:
        scale = want.abs().max().item()
        torch.testing.assert_close(got.double(), want, rtol=BF16_RTOL, atol=BF16_RTOL * scale,
                                   msg=lambda m: f"{what}: {m}")
    else:
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-3, msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last_3d", "non_contiguous"])
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_matches_float64_reference(shape, layout, dtype):
    torch.manual_seed(0)
    n, c, size, k, kernel, stride, padding, dilation, groups = shape
    x = make_input(n, c, size, dtype, layout).requires_grad_()
    weight = torch.randn(k, c // groups, *kernel).to(dtype).requires_grad_()
    bias = torch.randn(k).to(dtype).requires_grad_()
    out = cnnext.conv3d(x, weight, bias, stride, padding, dilation, groups)
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x, weight, bias), grad_out)

    x64, w64, b64 = (t.detach().double().requires_grad_() for t in (x, weight, bias))
    ref = F.conv3d(x64, w64, b64, stride, padding, dilation, groups)
    ref_grads = torch.autograd.grad(ref, (x64, w64, b64), grad_out.double())

    format = torch.channels_last_3d if layout == "channels_last_3d" else torch.contiguous_format
    assert out.is_contiguous(memory_format=format)
    assert grads[0].is_contiguous(memory_format=format)
    assert_close(out, ref, dtype, "output")
    for name, got, want in zip(("input", "weight", "bias"), grads, ref_grads):
        assert_close(got, want, dtype, f"grad {name}")


def test_bit_for_bit_repeatable():
    x = torch.randn(4, 32, 6, 8, 8, requires_grad=True)
    weight = torch.randn(48, 32, 3, 3, 3, requires_grad=True)
    runs = []
    for _ in range(2):
        out = cnnext.conv3d(x, weight, None, 2, 1)
        runs.append((out, *torch.autograd.grad(out, (x, weight), torch.ones_like(out))))
    for first, second in zip(*runs):
        assert torch.equal(first, second)


@pytest.mark.parametrize("kernel", ["gemm", "direct"])
def test_other_paths_pass_the_same_checks(kernel):
    """CNNEXT_CPU_KERNEL=gemm turns the direct kernel off, =direct keeps the Winograd, narrow and 1x1 shapes on the tap
    kernel (read once per process, hence the subprocess)."""
    env = {**os.environ, "CNNEXT_CPU_KERNEL": kernel}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
                             "-k", "matches_float64 and channels_last_3d"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"{2 * len(SHAPES)} passed" in result.stdout
