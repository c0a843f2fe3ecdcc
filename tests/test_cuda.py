"""cnnext.conv2d on CUDA tensors against PyTorch's cuDNN convolution (TF32 off), on both kernel paths.

Every test runs each path: CNNEXT_CUDA_CONV_PATH=im2col (im2col/col2im + cuBLAS), implicit_gemm (the fused
kernels) and auto (the per-shape choice). The whole module skips when no GPU is visible.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnnext

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="no CUDA GPU visible (torch.cuda.is_available() is False): the CUDA kernels cannot run here "
           "(tests/test_cuda_compile.py still compiles them)")

PATHS = ("im2col", "implicit_gemm", "auto")
DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
# (rtol, atol relative to the largest reference value): both sides round once to the dtype after
# accumulating in float32 (float64 for float64), in a different order.
TOLERANCES = {torch.float64: (1e-10, 1e-11), torch.float32: (1e-4, 1e-5),
              torch.float16: (1e-2, 2e-3), torch.bfloat16: (4e-2, 1.6e-2)}


@pytest.fixture(autouse=True)
def exact_reference():
    """cuDNN and cuBLAS in full precision: no TF32, no reduced-precision half reductions."""
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction,
             torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    yield
    (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32,
     torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction,
     torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction) = saved


@pytest.fixture(params=PATHS)
def path(request, monkeypatch):
    """The kernel path under test; the launcher reads CNNEXT_CUDA_CONV_PATH on every call."""
    monkeypatch.setenv("CNNEXT_CUDA_CONV_PATH", request.param)
    return request.param


def assert_close(actual, expected, dtype, what):
    rtol, atol = TOLERANCES[dtype]
    scale = max(1.0, expected.abs().max().item()) if expected.numel() else 1.0
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol * scale, msg=lambda m: f"{what}: {m}")


def make_layout(t, memory_format):
    """t with the same values in the given layout: contiguous, channels_last, or a strided view."""
    if memory_format == "channels_last":
        return t.contiguous(memory_format=torch.channels_last)
    if memory_format == "noncontiguous":
        wide = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype, device=t.device)
        wide[..., ::2] = t
        return wide[..., ::2]
    return t.contiguous()


def forward_backward(conv, x, w, b, grad_out, **kwargs):
    """Output and the gradients of input, weight and bias (None when b is None)."""
    x, w = x.detach().requires_grad_(), w.detach().requires_grad_()
    b = b.detach().requires_grad_() if b is not None else None
    out = conv(x, w, b, **kwargs)
    inputs = [x, w] + ([b] if b is not None else [])
    grads = torch.autograd.grad(out, inputs, grad_out)
    return (out, *grads) if b is not None else (out, *grads, None)


def check_parity(x, w, b, dtype, **kwargs):
    torch.manual_seed(1)
    expected_out = F.conv2d(x, w, b, **kwargs)
    grad_out = torch.randn_like(expected_out)
    expected = forward_backward(F.conv2d, x, w, b, grad_out, **kwargs)
    actual = forward_backward(cnnext.conv2d, x, w, b, grad_out, **kwargs)
    for name, a, e in zip(("output", "grad_input", "grad_weight", "grad_bias"), actual, expected):
        if e is None:
            continue
        assert a.shape == e.shape and a.dtype == e.dtype and a.device == e.device, name
        assert_close(a, e, dtype, f"{name} ({kwargs})")
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        assert actual[0].is_contiguous(memory_format=torch.channels_last), "channels_last in, channels_last out"


@st.composite
def convolutions(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg, kg = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    r, s = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    h = max(1, dilation[0] * (r - 1) + 1 - 2 * padding[0]) + draw(st.integers(0, 12))
    w = max(1, dilation[1] * (s - 1) + 1 - 2 * padding[1]) + draw(st.integers(0, 12))
    return dict(n=draw(st.integers(1, 4)), c=groups * cg, k=groups * kg, h=h, w=w, kernel=(r, s), stride=stride,
                padding=padding, dilation=dilation, groups=groups, bias=draw(st.booleans()),
                dtype=draw(st.sampled_from(DTYPES)),
                memory_format=draw(st.sampled_from(["contiguous", "channels_last", "noncontiguous"])))


def tensors(case, device="cuda"):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(case["n"], case["c"], case["h"], case["w"], generator=gen, dtype=torch.float64)
    w = torch.randn(case["k"], case["c"] // case["groups"], *case["kernel"], generator=gen, dtype=torch.float64)
    b = torch.randn(case["k"], generator=gen, dtype=torch.float64) if case["bias"] else None
    to = dict(device=device, dtype=case["dtype"])
    x = make_layout(x.to(**to), case["memory_format"])
    w = make_layout(w.to(**to), case["memory_format"])
    return x, w, (b.to(**to) if b is not None else None)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # `path` only sets an env var
@given(case=convolutions())
def test_parity_with_cudnn(path, case):
    x, w, b = tensors(case)
    check_parity(x, w, b, case["dtype"], stride=case["stride"], padding=case["padding"], dilation=case["dilation"],
                 groups=case["groups"])


# ResNet-18 (CIFAR) layers at batch 8, and shapes that need many tiles, split-K and partial tiles.
LARGE_CASES = [
    dict(n=8, c=64, h=32, w=32, k=64, kernel=(3, 3), stride=(1, 1), padding=(1, 1)),
    dict(n=8, c=64, h=32, w=32, k=128, kernel=(3, 3), stride=(2, 2), padding=(1, 1)),
    dict(n=8, c=128, h=16, w=16, k=256, kernel=(3, 3), stride=(2, 2), padding=(1, 1)),
    dict(n=8, c=256, h=8, w=8, k=512, kernel=(3, 3), stride=(2, 2), padding=(1, 1)),
    dict(n=8, c=64, h=32, w=32, k=128, kernel=(1, 1), stride=(2, 2), padding=(0, 0)),
    dict(n=4, c=3, h=37, w=29, k=70, kernel=(7, 7), stride=(2, 2), padding=(3, 3)),
    dict(n=2, c=96, h=20, w=20, k=96, kernel=(3, 3), stride=(1, 1), padding=(2, 2), dilation=(2, 2), groups=96),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index", range(len(LARGE_CASES)))
def test_parity_large(path, index, dtype):
    case = dict(dilation=(1, 1), groups=1, bias=True, dtype=dtype, memory_format="contiguous") | LARGE_CASES[index]
    x, w, b = tensors(case)
    check_parity(x, w, b, dtype, stride=case["stride"], padding=case["padding"], dilation=case["dilation"],
                 groups=case["groups"])


@pytest.mark.parametrize("memory_format", ["channels_last", "noncontiguous"])
def test_memory_formats(path, memory_format):
    case = dict(n=2, c=6, h=9, w=11, k=4, kernel=(3, 3), groups=2, bias=True, dtype=torch.float32,
                memory_format=memory_format)
    x, w, b = tensors(case)
    out = cnnext.conv2d(x, w, b, padding=1, groups=2)
    assert_close(out, F.conv2d(x, w, b, padding=1, groups=2), torch.float32, "output")
    if memory_format == "channels_last":
        assert out.is_contiguous(memory_format=torch.channels_last)
        grad = forward_backward(cnnext.conv2d, x, w, b, torch.ones_like(out), padding=1, groups=2)[1]
        assert grad.is_contiguous(memory_format=torch.channels_last)


def test_gradcheck_float64(path):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 7, 6, dtype=torch.float64, generator=gen).cuda().requires_grad_()
    w = torch.randn(6, 2, 3, 2, dtype=torch.float64, generator=gen).cuda().requires_grad_()
    b = torch.randn(6, dtype=torch.float64, generator=gen).cuda().requires_grad_()

    def conv(x, w, b):
        return cnnext.conv2d(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)

    assert torch.autograd.gradcheck(conv, (x, w, b))
    assert torch.autograd.gradgradcheck(conv, (x, w, b))


def test_opcheck(path):
    gen = torch.Generator().manual_seed(0)
    samples = [
        (torch.randn(2, 4, 8, 8, generator=gen), torch.randn(6, 4, 3, 3, generator=gen), torch.randn(6, generator=gen),
         [1, 1], [1, 1], [1, 1], 1),
        (torch.randn(1, 6, 9, 7, generator=gen).contiguous(memory_format=torch.channels_last),
         torch.randn(6, 2, 3, 1, generator=gen), None, [2, 1], [0, 1], [2, 1], 3),
    ]
    for x, w, b, *args in samples:
        x, w = x.cuda().requires_grad_(), w.cuda().requires_grad_()
        b = b.cuda().requires_grad_() if b is not None else None
        torch.library.opcheck(torch.ops.cnnext.conv2d.default, (x, w, b, *args))
        out = torch.ops.cnnext.conv2d(x, w, b, *args)
        torch.library.opcheck(torch.ops.cnnext.conv2d_backward.default,
                              (torch.randn_like(out), x.detach(), w.detach(), *args, [True, True, True]))


def test_torch_compile_fullgraph(path):
    torch._dynamo.reset()
    model = torch.nn.Sequential(cnnext.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                cnnext.Conv2d(8, 4, 3, stride=2, groups=4)).cuda()
    x = torch.randn(2, 3, 16, 16, device="cuda")
    compiled = torch.compile(model, fullgraph=True)
    expected = model(x)
    actual = compiled(x)
    assert_close(actual, expected, torch.float32, "compiled output")
    actual.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_cpu_and_cuda_agree(path):
    case = dict(n=3, c=6, h=10, w=9, k=9, kernel=(3, 2), groups=3, bias=True, dtype=torch.float64,
                memory_format="contiguous")
    kwargs = dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=3)
    x, w, b = tensors(case, device="cpu")
    grad_out = torch.randn_like(cnnext.conv2d(x, w, b, **kwargs))
    on_cpu = forward_backward(cnnext.conv2d, x, w, b, grad_out, **kwargs)
    on_cuda = forward_backward(cnnext.conv2d, x.cuda(), w.cuda(), b.cuda(), grad_out.cuda(), **kwargs)
    for name, c, g in zip(("output", "grad_input", "grad_weight", "grad_bias"), on_cpu, on_cuda):
        assert_close(g.cpu(), c, torch.float64, name)


def test_batch_zero(path):
    x = torch.randn(0, 4, 8, 8, device="cuda", requires_grad=True)
    w = torch.randn(6, 4, 3, 3, device="cuda", requires_grad=True)
    b = torch.randn(6, device="cuda", requires_grad=True)
    out = cnnext.conv2d(x, w, b, padding=1)
    assert out.shape == (0, 6, 8, 8) and out.device == x.device
    out.sum().backward()
    assert x.grad.shape == x.shape
    assert torch.equal(w.grad, torch.zeros_like(w)) and torch.equal(b.grad, torch.zeros_like(b))


def test_zero_input_channels_give_bias(path):
    x, w = torch.randn(2, 0, 5, 5, device="cuda", requires_grad=True), torch.randn(3, 0, 3, 3, device="cuda")
    b = torch.arange(3.0, device="cuda")
    out = cnnext.conv2d(x, w, b, padding=1)
    assert torch.equal(out, b.view(1, 3, 1, 1).expand(2, 3, 5, 5))
    out.sum().backward()
    assert x.grad.shape == x.shape


def test_complex_input(path):
    x = torch.randn(2, 4, 7, 6, dtype=torch.complex128, device="cuda")
    w = torch.randn(6, 2, 3, 3, dtype=torch.complex128, device="cuda")
    torch.testing.assert_close(cnnext.conv2d(x, w, padding=1, groups=2), F.conv2d(x, w, padding=1, groups=2))


def test_unbatched_and_same_padding(path):
    x = torch.randn(4, 10, 9, device="cuda")
    w = torch.randn(5, 4, 4, 3, device="cuda")
    for padding in ("same", "valid", 2):
        assert_close(cnnext.conv2d(x, w, padding=padding, dilation=(2, 1)),
                     F.conv2d(x, w, padding=padding, dilation=(2, 1)), torch.float32, f"padding={padding!r}")


def test_runs_on_the_current_stream(path):
    x = torch.randn(4, 8, 16, 16, device="cuda")
    w = torch.randn(8, 8, 3, 3, device="cuda")
    expected = F.conv2d(x, w, padding=1)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        actual = cnnext.conv2d(x, w, padding=1)
    side.synchronize()
    assert_close(actual, expected, torch.float32, "output on a side stream")


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs a second GPU")
def test_second_device(path):
    x = torch.randn(2, 4, 8, 8, device="cuda:1")
    w = torch.randn(4, 4, 3, 3, device="cuda:1")
    out = cnnext.conv2d(x, w, padding=1)
    assert out.device == x.device
    assert_close(out, F.conv2d(x, w, padding=1), torch.float32, "output on cuda:1")


def test_results_are_deterministic(path):
    x = torch.randn(16, 32, 24, 24, device="cuda")
    w = torch.randn(48, 32, 3, 3, device="cuda")
    grad_out = torch.randn(16, 48, 24, 24, device="cuda")
    first = forward_backward(cnnext.conv2d, x, w, None, grad_out, padding=1)[:3]
    second = forward_backward(cnnext.conv2d, x, w, None, grad_out, padding=1)[:3]
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_unknown_path_is_refused(monkeypatch):
    monkeypatch.setenv("CNNEXT_CUDA_CONV_PATH", "cudnn")
    x, w = torch.randn(1, 2, 5, 5, device="cuda"), torch.randn(2, 2, 3, 3, device="cuda")
    with pytest.raises(RuntimeError, match="CNNEXT_CUDA_CONV_PATH"):
        cnnext.conv2d(x, w)


@pytest.mark.parametrize("path_name", ["im2col", "implicit_gemm"])
def test_tensor_past_2_pow_31_elements(monkeypatch, path_name):
    """Input of 33 x 64 x 1024 x 1024 float16 (2.2e9 elements > 2^31): exercises the 64-bit index kernels.
    Images are independent, so the last image (the one past 2^31) is checked against cuDNN on that image."""
    n, c, hw, k = 33, 64, 1024, 4
    assert n * c * hw * hw > 2**31
    free, _ = torch.cuda.mem_get_info()
    needed = 4 * n * c * hw * hw * 2 + (3 << 30)  # input, its channels-last copy, grad_input and its copy
    if free < needed:
        pytest.skip(f"needs about {needed / 2**30:.0f} GiB of free GPU memory, {free / 2**30:.0f} GiB free")
    monkeypatch.setenv("CNNEXT_CUDA_CONV_PATH", path_name)
    torch.manual_seed(0)
    x = torch.randn(n, c, hw, hw, device="cuda", dtype=torch.float16).requires_grad_()
    w = (torch.randn(k, c, 3, 3, device="cuda", dtype=torch.float16) / math.sqrt(9 * c)).requires_grad_()
    out = cnnext.conv2d(x, w, padding=1)
    last = x.detach()[-1:].clone().requires_grad_()
    expected = F.conv2d(last, w.detach(), padding=1)
    assert_close(out.detach()[-1:], expected, torch.float16, "output of the last image")
    grad_out = torch.zeros_like(out)
    grad_out[-1:] = torch.randn_like(expected)
    (grad_x,) = torch.autograd.grad(out, [x], grad_out)
    (expected_grad,) = torch.autograd.grad(expected, [last], grad_out[-1:])
    assert_close(grad_x[-1:], expected_grad, torch.float16, "grad_input of the last image")
    rest = grad_x[:-1]  # no grad_output there: exactly zero (amax/amin allocate nothing the size of rest)
    assert rest.amax().item() == 0 and rest.amin().item() == 0
