"""cnnext.conv1d / conv3d / max_pool2d / avg_pool2d on CUDA tensors against PyTorch's CUDA ops (TF32 off).

The whole module skips when no GPU is visible; tests/test_cuda_compile.py still compiles the kernels and
tests/test_cuda_family_index.py checks their index math on the CPU.
"""
import pytest
import torch
import torch.nn.functional as F

import cnnext

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA GPU visible (torch.cuda.is_available() is False): "
                                       "the CUDA kernels cannot run here; tests/test_cuda_compile.py still compiles them")

DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
TOLERANCES = {torch.float64: (1e-10, 1e-11), torch.float32: (1e-4, 1e-5),
              torch.float16: (1e-2, 2e-3), torch.bfloat16: (4e-2, 1.6e-2)}


@pytest.fixture(autouse=True)
def exact_reference():
    """cuDNN and cuBLAS in full precision: no TF32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def assert_close(actual, expected, dtype):
    rtol, atol = TOLERANCES[dtype]
    scale = max(1.0, expected.abs().max().item()) if expected.numel() else 1.0
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol * scale)


def forward_backward(fn, tensors):
    tensors = [t.detach().clone().requires_grad_() if t is not None else None for t in tensors]
    out = fn(*tensors)
    values = out[0] if isinstance(out, tuple) else out
    torch.manual_seed(1)
    # Drawn in logical order: randn_like would follow the output's strides, and PyTorch's float64 Conv3d
    # returns a contiguous output where cnnext keeps channels_last_3d, so the two would get different gradients.
    values.backward(torch.randn(values.shape, dtype=values.dtype, device=values.device))
    return out, [t.grad for t in tensors if t is not None]


CONV3D_CASES = [
    dict(stride=1, padding=1, dilation=1, groups=1),
    dict(stride=(1, 2, 2), padding=(0, 1, 2), dilation=(2, 1, 1), groups=2),
    dict(stride=1, padding="same", dilation=1, groups=4),
    dict(stride=1, padding=0, dilation=1, groups=1, kernel=1),  # pointwise: no column buffer
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(CONV3D_CASES)))
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last_3d])
def test_conv3d_matches_torch(dtype, case, memory_format):
    args = dict(CONV3D_CASES[case])
    kernel = args.pop("kernel", 3)
    torch.manual_seed(0)
    x = torch.randn(3, 8, 6, 9, 10, device="cuda", dtype=dtype).to(memory_format=memory_format)
    w = torch.randn(12, 8 // args["groups"], kernel, kernel, kernel, device="cuda", dtype=dtype)
    b = torch.randn(12, device="cuda", dtype=dtype)
    out, grads = forward_backward(lambda x, w, b: cnnext.conv3d(x, w, b, **args), [x, w, b])
    expected, expected_grads = forward_backward(lambda x, w, b: F.conv3d(x, w, b, **args), [x, w, b])
    assert out.is_contiguous(memory_format=memory_format)
    assert_close(out, expected, dtype)
    for got, want in zip(grads, expected_grads):
        assert_close(got, want, dtype)


def test_conv1d_matches_torch():
    x, w = torch.randn(4, 6, 50, device="cuda"), torch.randn(8, 3, 5, device="cuda")
    out, grads = forward_backward(lambda x, w: cnnext.conv1d(x, w, None, 1, "same", 2, 2), [x, w])
    expected, expected_grads = forward_backward(lambda x, w: F.conv1d(x, w, None, 1, "same", 2, 2), [x, w])
    assert_close(out, expected, torch.float32)
    for got, want in zip(grads, expected_grads):
        assert_close(got, want, torch.float32)


POOL_CASES = [
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=False),
    dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), ceil_mode=True),
    dict(kernel_size=2, stride=None, padding=0, ceil_mode=True),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(POOL_CASES)))
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_max_pool2d_matches_torch(dtype, case, memory_format):
    args = POOL_CASES[case]
    dilation = 2 if case == 1 else 1
    torch.manual_seed(0)
    x = torch.randn(4, 5, 13, 11, device="cuda").mul(2).round().to(dtype).to(memory_format=memory_format)  # ties
    (out, indices), (grad,) = forward_backward(
        lambda t: cnnext.max_pool2d(t, dilation=dilation, return_indices=True, **args), [x])
    (expected, expected_indices), (expected_grad,) = forward_backward(
        lambda t: F.max_pool2d(t, dilation=dilation, return_indices=True, **args), [x])
    assert torch.equal(out, expected) and torch.equal(indices, expected_indices)
    assert_close(grad, expected_grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(POOL_CASES)))
@pytest.mark.parametrize("count_include_pad, divisor_override", [(True, None), (False, None), (True, 5)])
def test_avg_pool2d_matches_torch(dtype, case, count_include_pad, divisor_override):
    args = POOL_CASES[case]
    torch.manual_seed(0)
    x = torch.randn(4, 5, 13, 11, device="cuda", dtype=dtype)
    out, (grad,) = forward_backward(
        lambda t: cnnext.avg_pool2d(t, count_include_pad=count_include_pad, divisor_override=divisor_override,
                                    **args), [x])
    expected, (expected_grad,) = forward_backward(
        lambda t: F.avg_pool2d(t, count_include_pad=count_include_pad, divisor_override=divisor_override, **args), [x])
    assert_close(out, expected, dtype)
    assert_close(grad, expected_grad, dtype)


def test_results_are_deterministic():
    x = torch.randn(8, 16, 10, 12, 12, device="cuda", requires_grad=True)
    w = torch.randn(16, 16, 3, 3, 3, device="cuda", requires_grad=True)
    grads = []
    for _ in range(2):
        x.grad = w.grad = None
        cnnext.conv3d(x, w, padding=1).square().sum().backward()
        y = cnnext.avg_pool2d(x[:, :, 0], 3, 1, 1) + cnnext.max_pool2d(x[:, :, 1], 3, 1, 1)
        y.sum().backward()
        grads.append((x.grad.clone(), w.grad.clone()))
    assert torch.equal(grads[0][0], grads[1][0])


def test_batch_zero_and_device_guard():
    empty = torch.randn(0, 3, 4, 5, 6, device="cuda")
    assert cnnext.conv3d(empty, torch.randn(2, 3, 3, 3, 3, device="cuda")).shape == (0, 2, 2, 3, 4)
    assert cnnext.max_pool2d(empty[:, :, 0], 2).shape == (0, 3, 2, 3)
    assert cnnext.avg_pool2d(empty[:, :, 0], 2).shape == (0, 3, 2, 3)
