"""bfloat16 Conv2d on the CPU (csrc/cpu/direct_conv_kernels_bf16.cpp on AVX-512 BF16, im2col + GEMM elsewhere)
against F.conv2d in float64 on the same bfloat16 values, at bfloat16 tolerance.

Shapes reach every branch of the bfloat16 kernels: odd channel counts (padded to a pair), the 3-channel stem,
1 to 4 vectors per tile, stride phases of grad input, pixel pairs of grad weight across odd output widths,
strided 1x1, dilation, groups, depthwise, channels-last and non-contiguous input. The same checks run in a
subprocess with the BF16 instructions masked (CNNEXT_CPU_KERNEL=avx512: the GEMM path) and with the direct
kernel off.
"""
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import cnnext

# n, c, h, w, k, kernel (r, s), stride, padding, dilation, groups
SHAPES = [
    (4, 3, 32, 32, 64, (3, 3), 1, 1, 1, 1),        # ResNet's CIFAR stem
    (2, 3, 23, 23, 16, (11, 11), 4, 2, 1, 1),      # AlexNet's stem
    (3, 17, 10, 7, 33, (3, 3), 1, 0, 2, 1),        # odd channels both ways, odd widths
    (9, 16, 9, 9, 20, (3, 3), 2, 1, 1, 1),
    (2, 64, 8, 8, 64, (3, 3), 2, 1, 1, 1),
    (3, 32, 11, 11, 32, (3, 3), 1, 5, 5, 1),
    (7, 24, 6, 6, 17, (1, 1), 2, 0, 1, 1),        # strided 1x1
    (2, 64, 8, 8, 48, (1, 1), 1, 0, 1, 1),
    (2, 20, 12, 10, 70, (5, 3), (2, 3), (2, 1), (1, 2), 1),
    (5, 48, 7, 7, 16, (3, 3), 3, 2, 2, 1),
    (2, 128, 5, 5, 130, (3, 3), 2, 1, 1, 1),
    (8, 32, 5, 5, 40, (3, 3), 1, 1, 1, 2),         # groups of even width: direct
    (4, 34, 6, 6, 34, (3, 3), 1, 1, 1, 2),         # groups of odd width (17): GEMM
    (8, 40, 9, 9, 40, (3, 3), 1, 1, 1, 40),        # depthwise
    (8, 24, 10, 10, 24, (3, 3), 2, 1, 1, 24),
    (2, 21, 7, 7, 21, (5, 5), 1, 4, 2, 21),        # depthwise, odd channel count
    (2, 512, 4, 4, 512, (3, 3), 1, 1, 1, 1),       # ResNet's layer4: long reduction
    (6, 64, 4, 4, 64, (3, 3), 1, 1, 1, 1),         # small map: regions of valid taps, steps per thread
    (4, 16, 16, 16, 24, (3, 3), 1, 0, 5, 1),       # unpadded dilation 5: grad input cut into regions
    (2, 8, 3, 3, 8, (3, 3), 1, 3, 1, 1),           # border outputs that read only padding: bias alone
    (6, 3, 10, 10, 16, (7, 7), 2, 3, 1, 1),        # stem with merged row taps, rows cut into regions
    (2, 16, 31, 66, 20, (3, 3), 1, 1, 1, 1),       # NCHW rows 8184 / 4092 bytes apart: 4 KB-aliasing copy
]
# Both sides multiply the same bfloat16 values exactly and sum in float32 (the reference in float64), so they
# differ by float32 summation error plus one rounding of the result to bfloat16 (2^-8 relative); relative to the
# largest value, as sums of terms of both signs round in absolute terms.
RTOL = 2 ** -7


def assert_close_bf16(got, want, what):
    assert got.dtype == torch.bfloat16, f"{what}: dtype {got.dtype}"
    scale = want.abs().max().item()
    torch.testing.assert_close(got.double(), want, rtol=RTOL, atol=RTOL * scale, msg=lambda m: f"{what}: {m}")


def make_input(n, c, h, w, layout):
    if layout == "non_contiguous":
        return torch.randn(n, c, h, 2 * w).bfloat16()[..., ::2]
    x = torch.randn(n, c, h, w).bfloat16()
    return x.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else x


def shape_id(s):
    return "x".join(map(str, s[:5])) + f"-k{s[5]}-s{s[6]}-p{s[7]}-d{s[8]}-g{s[9]}"


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "non_contiguous"])
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_bfloat16_matches_float64_reference(shape, layout):
    torch.manual_seed(0)
    n, c, h, w, k, kernel, stride, padding, dilation, groups = shape
    x = make_input(n, c, h, w, layout).requires_grad_()
    weight = torch.randn(k, c // groups, *kernel).bfloat16().requires_grad_()
    bias = torch.randn(k).bfloat16().requires_grad_()
    out = cnnext.conv2d(x, weight, bias, stride, padding, dilation, groups)
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x, weight, bias), grad_out)

    x64, w64, b64 = (t.detach().double().requires_grad_() for t in (x, weight, bias))
    ref = F.conv2d(x64, w64, b64, stride, padding, dilation, groups)
    ref_grads = torch.autograd.grad(ref, (x64, w64, b64), grad_out.double())

    format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    assert out.is_contiguous(memory_format=format)
    assert_close_bf16(out, ref, "output")
    for name, got, want in zip(("input", "weight", "bias"), grads, ref_grads):
        assert_close_bf16(got, want, f"grad {name}")


def test_bfloat16_sums_in_float32():
    """A long reduction of values whose bfloat16 partial sums would lose the small terms: float32 keeps them."""
    x = torch.ones(1, 512, 1, 1, dtype=torch.bfloat16)
    weight = torch.full((16, 512, 1, 1), 2.0 ** -9, dtype=torch.bfloat16)
    weight[:, 0] = 1.0
    out = cnnext.conv2d(x, weight)  # 1 + 511 * 2^-9 ~= 1.998; summed in bfloat16 it would stay at 1.0
    torch.testing.assert_close(out.float(), torch.full_like(out.float(), 1 + 511 * 2.0 ** -9), rtol=2 ** -8, atol=0)


def test_bit_for_bit_repeatable():
    x = torch.randn(8, 64, 12, 12).bfloat16().requires_grad_()
    weight = torch.randn(96, 64, 3, 3).bfloat16().requires_grad_()
    runs = []
    for _ in range(2):
        out = cnnext.conv2d(x, weight, None, 2, 1)
        runs.append((out, *torch.autograd.grad(out, (x, weight), torch.ones_like(out))))
    for first, second in zip(*runs):
        assert torch.equal(first, second)


@pytest.mark.parametrize("kernel", ["avx512", "gemm"])
def test_fallback_paths_pass_the_same_checks(kernel):
    """CPUs without AVX-512 BF16 run bfloat16 on the im2col + GEMM path: CNNEXT_CPU_KERNEL=avx512 masks the
    BF16 instructions (float32 stays direct), =gemm turns the direct kernel off (read once per process)."""
    env = {**os.environ, "CNNEXT_CPU_KERNEL": kernel}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
                             "-k", "matches_float64 and contiguous and not non_ and not channels"],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"{len(SHAPES)} passed" in result.stdout
