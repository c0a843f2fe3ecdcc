"""The float32 CPU direct convolution (csrc/cpu/direct_conv*.cpp) against F.conv2d in float64.

Shapes are chosen to reach every branch of the direct kernel: vector widths that are not multiples of 16,
1 to 4 vectors per tile, narrow outputs (vectors along the rows, up to 12 channels in tiles of 4), Winograd F(2x2, 3x3), 1x1 and depthwise
layers on NCHW (vectors along pixels or rows), stride phases in grad input (including phases with no taps),
strided 1x1 subsampling, dilation, groups, depthwise, batches small enough to split inside one step and large
enough to give each thread its own images, and channels-last / non-contiguous input. The same checks run on
the GEMM path and with every shape on the tap kernel.
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
    (2, 3, 9, 9, 5, (3, 3), 1, 1, 1, 1),
    (9, 16, 9, 9, 20, (3, 3), 2, 1, 1, 1),
    (2, 17, 10, 7, 33, (3, 3), 1, 0, 2, 1),
    (3, 32, 11, 11, 32, (3, 3), 1, 5, 5, 1),
    (7, 24, 6, 6, 17, (1, 1), 2, 0, 1, 1),
    (2, 64, 8, 8, 48, (1, 1), 1, 0, 1, 1),
    (1, 3, 23, 23, 16, (11, 11), 4, 2, 1, 1),
    (8, 32, 5, 5, 40, (3, 3), 1, 1, 1, 2),
    (2, 20, 12, 10, 70, (5, 3), (2, 3), (2, 1), (1, 2), 1),
    (5, 48, 7, 7, 16, (3, 3), 3, 2, 2, 1),
    (2, 128, 5, 5, 130, (3, 3), 2, 1, 1, 1),
    (8, 40, 9, 9, 40, (3, 3), 1, 1, 1, 40),
    (8, 24, 10, 10, 24, (3, 3), 2, 1, 1, 24),
    (2, 20, 7, 7, 20, (5, 5), 1, 4, 2, 20),
    (6, 64, 4, 4, 64, (3, 3), 1, 1, 1, 1),         # small map: regions of valid taps, steps per thread
    (4, 16, 16, 16, 24, (3, 3), 1, 0, 5, 1),       # unpadded dilation 5: grad input cut into regions
    (2, 8, 3, 3, 8, (3, 3), 1, 3, 1, 1),           # border outputs that read only padding: bias alone
    (6, 3, 10, 10, 16, (7, 7), 2, 3, 1, 1),        # stem with merged row taps, rows cut into regions
    (2, 16, 31, 66, 20, (3, 3), 1, 1, 1, 1),       # NCHW rows 8184 / 4092 bytes apart: 4 KB-aliasing copy
    (4, 6, 20, 37, 3, (5, 5), 1, 2, 1, 1),         # 3 output channels: vectors along the rows, a masked tail
    (2, 12, 9, 100, 4, (3, 3), (2, 1), 1, (1, 2), 1),  # the same over two row pieces, H stride, W dilation
    (3, 3, 12, 12, 24, (3, 3), 1, 2, 2, 1),        # 3 input channels: grad input as a narrow convolution
    (2, 5, 11, 21, 6, (5, 5), 1, 2, 1, 1),         # 6 output channels: narrow tiles of 4 + 2 rows (grad input: 5)
    (2, 12, 10, 19, 9, (3, 3), 1, 1, 1, 1),        # narrow in tiles of 4 + 4 + 1 rows, its grad input 4 + 4 + 4
    (3, 32, 14, 15, 40, (3, 3), 1, 0, 1, 1),       # Winograd F(2x2, 3x3): 12x13 output (clipped tiles)
    (2, 24, 16, 16, 17, (3, 3), 1, 2, 1, 1),       # Winograd with padding 2 (its grad input: padding 0)
    (2, 16, 13, 11, 24, (3, 3), 1, 2, 2, 1),       # Winograd on dilation 2's phase sub-grids, phases of unequal length
    (2, 20, 12, 17, 16, (3, 3), 1, (1, 3), (1, 3), 1),  # Winograd with dilation 1 along H and 3 along W
    (3, 20, 9, 9, 13, (1, 1), 1, 0, 1, 1),         # 1x1 on NCHW: 81 pixels (a tile, a part-vector tail), 13 rows
    (2, 8, 23, 23, 70, (1, 1), 1, 0, 1, 1),        # 1x1 on NCHW: 529 pixels, blocks of 256 and a tail
    (2, 12, 17, 19, 20, (1, 1), 2, 0, 1, 1),       # strided 1x1 on NCHW: a subsampled copy, 9x10 pixels
    (3, 24, 18, 20, 24, (3, 3), 1, 1, 1, 24),      # depthwise on NCHW planes: vectors along the rows
    (2, 16, 20, 37, 16, (7, 7), 1, 3, 1, 16),      # depthwise 7x7: 37-pixel rows (part vectors), 20 rows
    (2, 8, 21, 19, 8, (5, 5), 1, 4, 2, 8),         # depthwise, dilation 2 (its grad input: padding 4)
    (2, 12, 15, 33, 12, (5, 5), 1, 2, 1, 12),      # depthwise 5x5: input vectors reused across the rows
]


def make_input(n, c, h, w, layout):
    if layout == "non_contiguous":
        return torch.randn(n, c, h, 2 * w)[..., ::2]
    x = torch.randn(n, c, h, w)
    return x.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else x


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "non_contiguous"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:5])) + f"-k{s[5]}-s{s[6]}-p{s[7]}-d{s[8]}-g{s[9]}")
def test_float32_matches_float64_reference(shape, layout):
    torch.manual_seed(0)
    n, c, h, w, k, kernel, stride, padding, dilation, groups = shape
    x = make_input(n, c, h, w, layout).requires_grad_()
    weight = torch.randn(k, c // groups, *kernel, requires_grad=True)
    bias = torch.randn(k, requires_grad=True)
    out = cnnext.conv2d(x, weight, bias, stride, padding, dilation, groups)
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x, weight, bias), grad_out)

    x64, w64, b64 = (t.detach().double().requires_grad_() for t in (x, weight, bias))
    ref = F.conv2d(x64, w64, b64, stride, padding, dilation, groups)
    ref_grads = torch.autograd.grad(ref, (x64, w64, b64), grad_out.double())

    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-4)
    for name, got, want in zip(("input", "weight", "bias"), grads, ref_grads):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-3, msg=lambda m: f"grad {name}: {m}")


@pytest.mark.parametrize("weight_layout", ["sliced", "transposed", "channels_last"])
def test_winograd_reads_any_weight_layout(weight_layout):
    """Winograd's weight transform reads the weight through its strides (and grad input's flipped, transposed weight
    in place): a weight that is a view gives what its contiguous copy gives."""
    torch.manual_seed(0)
    x = torch.randn(2, 40, 9, 9, requires_grad=True)
    if weight_layout == "sliced":
        weight = torch.randn(72, 40, 3, 3)[::2]
    elif weight_layout == "transposed":
        weight = torch.randn(40, 36, 3, 3).transpose(0, 1)
    else:
        weight = torch.randn(36, 40, 3, 3).contiguous(memory_format=torch.channels_last)
    weight.requires_grad_()
    assert not weight.is_contiguous()
    assert "Winograd" in torch.ops.cnnext._kernel_path("conv2d", x, weight, [1, 1], [1, 1], [1, 1], 1)
    out = cnnext.conv2d(x, weight, None, 1, 1)
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x, weight), grad_out)
    x64, w64 = x.detach().double().requires_grad_(), weight.detach().double().contiguous().requires_grad_()
    ref = F.conv2d(x64, w64, None, 1, 1)
    ref_grads = torch.autograd.grad(ref, (x64, w64), grad_out.double())
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-4)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("shape", [(2, 40, 9, 9, 36, 3, 1), (4, 64, 8, 8, 64, 3, 2), (2, 96, 14, 14, 24, 1, 1)],
                         ids=["winograd", "tap-kernel", "pointwise"])
def test_reused_scratch_memory_never_reaches_results(shape):
    """Freed scratch memory comes back from the allocator holding what its last user left there: calls on NaN inputs
    leave NaNs in every buffer they used, and the same layer called next on finite inputs must read none of them
    (a tile that accumulated onto its output without first storing to it failed here)."""
    n, c, h, w, k, kernel, stride = shape
    args = ([stride] * 2, [kernel // 2] * 2, [1, 1], 1)
    weight = torch.randn(k, c, kernel, kernel)

    def forward_backward(x, grad_out):
        out = torch.ops.cnnext.conv2d(x, weight, None, *args)
        return (out, *torch.ops.cnnext.conv2d_backward(grad_out, x, weight, *args, [True, True, False])[:2])

    out_shape = F.conv2d(torch.empty(n, c, h, w), weight, None, stride, kernel // 2).shape
    assert all(t.isnan().all() for t in forward_backward(torch.full((n, c, h, w), float("nan")),
                                                         torch.full(out_shape, float("nan"))))
    x, grad_out = torch.randn(n, c, h, w), torch.randn(out_shape)
    x64, w64 = x.double().requires_grad_(), weight.double().requires_grad_()
    ref = F.conv2d(x64, w64, None, stride, kernel // 2)
    expected = (ref, *torch.autograd.grad(ref, (x64, w64), grad_out.double()))
    for got, want in zip(forward_backward(x, grad_out), expected):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-3)


def test_channels_last_output_for_channels_last_input():
    x = torch.randn(4, 32, 8, 8).contiguous(memory_format=torch.channels_last)
    out = cnnext.conv2d(x, torch.randn(48, 32, 3, 3), padding=1)
    assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("threads", [1, 2])
def test_bit_for_bit_repeatable(threads):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = torch.randn(8, 64, 12, 12, requires_grad=True)
        weight = torch.randn(96, 64, 3, 3, requires_grad=True)
        runs = []
        for _ in range(2):
            out = cnnext.conv2d(x, weight, None, 2, 1)
            runs.append((out, *torch.autograd.grad(out, (x, weight), torch.ones_like(out))))
        for first, second in zip(*runs):
            assert torch.equal(first, second)
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("kernel", ["gemm", "direct"])
def test_other_paths_pass_the_same_checks(kernel):
    """CPUs without AVX-512 run float32 on the im2col + GEMM path (CNNEXT_CPU_KERNEL=gemm forces it);
    CNNEXT_CPU_KERNEL=direct keeps the Winograd, narrow, 1x1 and depthwise layers on the tap kernel, which the shapes
    above then reach too. The variable is read once per process, hence the subprocess."""
    env = {**os.environ, "CNNEXT_CPU_KERNEL": kernel}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
                             "-k", "float32_matches and channels_last"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"{len(SHAPES)} passed" in result.stdout
