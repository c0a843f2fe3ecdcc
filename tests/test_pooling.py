"""cnnext.max_pool2d / avg_pool2d and cnnext.MaxPool2d / AvgPool2d against torch.nn.functional and torch.nn.

Max pooling selects values, so outputs and gradients match PyTorch exactly, and so do the indices.
Average pooling: float64 rtol=1e-10, atol=1e-10; float32 rtol=1e-5, atol=1e-5.
"""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import cnnext

TOLERANCES = {torch.float64: dict(rtol=1e-10, atol=1e-10), torch.float32: dict(rtol=1e-5, atol=1e-5)}


@st.composite
def pool_case(draw, with_dilation):
    """A random valid pooling call: (input, kernel_size, stride, padding, dilation, ceil_mode)."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if with_dilation else (1, 1)
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    ceil_mode = draw(st.booleans())
    # at least `dilation` wide: smaller inputs can give windows that hold no input (test_empty_window)
    size = [max(d * (k - 1) + 1 - 2 * p, d) + draw(st.integers(0, 6)) for k, d, p in zip(kernel, dilation, padding)]
    dtype = draw(st.sampled_from([torch.float64, torch.float32]))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4)), *size)
    layout = draw(st.sampled_from(["contiguous", "channels_last", "strided", "unbatched"]))
    if layout == "strided":
        x = torch.randn(*shape[:-1], 2 * shape[-1], dtype=dtype)[..., ::2]
    else:
        x = torch.randn(shape, dtype=dtype)
        if layout == "channels_last":
            x = x.to(memory_format=torch.channels_last)
        elif layout == "unbatched":
            x = x[0]
    if draw(st.booleans()):  # ties: few distinct values, so the first/last maximum rule matters
        x = x.mul(2).round()
    return x, kernel, stride, padding, dilation, ceil_mode


def assert_same_layout(out, expected):
    """Same memory format (strides of size-1 dimensions do not count)."""
    formats = [torch.contiguous_format] + ([torch.channels_last] if expected.dim() == 4 else [])
    for memory_format in formats:
        assert out.is_contiguous(memory_format=memory_format) == expected.is_contiguous(memory_format=memory_format)


def forward_backward(pool, x):
    x = x.detach().clone().requires_grad_()
    out = pool(x)
    values = out[0] if isinstance(out, tuple) else out
    grad = torch.arange(values.numel(), dtype=x.dtype).reshape(values.shape).sin()
    values.backward(grad)
    return out, x.grad


@settings(max_examples=80)
@given(pool_case(with_dilation=True))
def test_max_pool2d_parity_with_torch(case):
    x, kernel, stride, padding, dilation, ceil_mode = case
    args = (kernel, stride, padding, dilation, ceil_mode, True)
    (out, indices), grad = forward_backward(lambda t: cnnext.max_pool2d(t, *args), x)
    (expected, expected_indices), expected_grad = forward_backward(lambda t: F.max_pool2d(t, *args), x)
    assert torch.equal(out, expected)
    assert torch.equal(indices, expected_indices)
    assert_same_layout(out, expected)
    torch.testing.assert_close(grad, expected_grad, **TOLERANCES[x.dtype])


@settings(max_examples=80)
@given(pool_case(with_dilation=False), st.booleans(), st.sampled_from([None, 1, 3, -2]))
def test_avg_pool2d_parity_with_torch(case, count_include_pad, divisor_override):
    x, kernel, stride, padding, _, ceil_mode = case
    args = (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    out, grad = forward_backward(lambda t: cnnext.avg_pool2d(t, *args), x)
    expected, expected_grad = forward_backward(lambda t: F.avg_pool2d(t, *args), x)
    torch.testing.assert_close(out, expected, **TOLERANCES[x.dtype])
    assert_same_layout(out, expected)
    torch.testing.assert_close(grad, expected_grad, **TOLERANCES[x.dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("op", ["max", "avg"])
def test_channels_last_gives_the_bits_of_nchw(op, dtype):
    """Channels-last tensors run on their own kernels (vectors along the channels, no NCHW copy), which sum in the
    NCHW kernels' order: outputs, indices and gradients are the same bits, and stay channels-last."""
    torch.manual_seed(0)
    x = torch.randn(3, 37, 11, 13, dtype=dtype).mul(3).round()  # ties; 37 channels: a part vector
    x[0, 5, 2, 3] = float("nan")
    cases = [dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), dict(kernel_size=(2, 4), stride=(1, 3)),
             dict(kernel_size=3, stride=2, padding=1, count_include_pad=False) if op == "avg" else
             dict(kernel_size=3, stride=1, padding=1, dilation=2)]
    for kwargs in cases:
        results = []
        for layout in (torch.contiguous_format, torch.channels_last):
            t = x.contiguous(memory_format=layout).detach().requires_grad_()
            out = (cnnext.max_pool2d(t, return_indices=True, **kwargs) if op == "max"
                   else (cnnext.avg_pool2d(t, **kwargs), torch.empty(0)))
            grad = torch.arange(out[0].numel(), dtype=dtype).reshape(out[0].shape).sin()
            out[0].backward(grad.contiguous(memory_format=layout))
            results.append((out[0].detach(), out[1], t.grad))
            assert all(r.is_contiguous(memory_format=layout) for r in (out[0], t.grad))
        for nchw, channels_last in zip(*results):
            torch.testing.assert_close(channels_last, nchw, rtol=0, atol=0, equal_nan=True)
        if op == "max":  # 37 NCHW channels are pooled through a channels-last copy: still PyTorch's values and indices
            expected, expected_indices = F.max_pool2d(x, return_indices=True, **kwargs)
            torch.testing.assert_close(results[0][0], expected, rtol=0, atol=0, equal_nan=True)
            assert torch.equal(results[0][1], expected_indices)


def test_channels_last_pooling_copies_nothing():
    x = torch.randn(4, 32, 16, 16).contiguous(memory_format=torch.channels_last).requires_grad_()
    with torch.profiler.profile() as profile:
        for out in (cnnext.max_pool2d(x, 3, 2, 1), cnnext.avg_pool2d(x, 3, 2, 1)):
            out.backward(torch.ones_like(out))  # channels-last, like out
    ops = {event.name for event in profile.events()}
    assert {"cnnext::max_pool2d_backward", "cnnext::avg_pool2d_backward"} <= ops
    assert not ops & {"aten::copy_", "aten::contiguous", "aten::clone"}, ops


def test_empty_window():
    """Padding 1 and dilation 2 over a 1-pixel input: the window steps over the only pixel. PyTorch outputs
    -inf with an index outside the window; cnnext outputs the same and sends that window no gradient."""
    x = torch.randn(2, 3, 1, 1, dtype=torch.float64, requires_grad=True)
    out, indices = cnnext.max_pool2d(x, (2, 1), None, (1, 0), (2, 1), return_indices=True)
    expected, expected_indices = F.max_pool2d(x, (2, 1), None, (1, 0), (2, 1), return_indices=True)
    assert torch.equal(out, expected) and torch.equal(indices, expected_indices)
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_nan_and_inf_like_torch():
    x = torch.randn(2, 3, 6, 6)
    x[0, 0, 1, 1] = float("nan")
    x[0, 0, 0, 1] = float("nan")  # two NaNs in one window: PyTorch reports the last one scanned
    x[0, 1, :3, :3] = float("-inf")
    x[1, 2, 4, 4] = float("inf")
    for kwargs in (dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=2)):
        out, indices = cnnext.max_pool2d(x, return_indices=True, **kwargs)
        expected, expected_indices = F.max_pool2d(x, return_indices=True, **kwargs)
        torch.testing.assert_close(out, expected, equal_nan=True, rtol=0, atol=0)
        assert torch.equal(indices, expected_indices)
        torch.testing.assert_close(cnnext.avg_pool2d(x, **kwargs), F.avg_pool2d(x, **kwargs), equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision(dtype):
    x = torch.randn(2, 3, 7, 8).to(dtype)
    out, indices = cnnext.max_pool2d(x, 3, 2, 1, return_indices=True)
    expected, expected_indices = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    assert out.dtype == dtype and torch.equal(out, expected) and torch.equal(indices, expected_indices)
    avg = cnnext.avg_pool2d(x, 3, 2, 1, ceil_mode=True)
    assert avg.dtype == dtype
    torch.testing.assert_close(avg, F.avg_pool2d(x, 3, 2, 1, ceil_mode=True), rtol=1e-2, atol=1e-2)


def test_gradcheck():
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: cnnext.max_pool2d(t, (3, 2), (2, 1), (1, 1), (1, 2), True), (x,))
    assert torch.autograd.gradcheck(lambda t: cnnext.avg_pool2d(t, 3, 2, 1, True, False), (x,))
    assert torch.autograd.gradcheck(lambda t: cnnext.avg_pool2d(t, (2, 3), 1, (1, 0), divisor_override=4), (x,))


def test_gradgradcheck():
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda t: cnnext.max_pool2d(t, (3, 2), (2, 1), (1, 1), (1, 2), True), (x,))
    assert torch.autograd.gradgradcheck(lambda t: cnnext.avg_pool2d(t, 3, 2, 1, True, False), (x,))
    tiny = torch.randn(2, 3, 1, 1, dtype=torch.float64, requires_grad=True)  # empty windows (test_empty_window)
    assert torch.autograd.gradgradcheck(lambda t: cnnext.max_pool2d(t, (2, 1), None, (1, 0), (2, 1)), (tiny,))


def test_opcheck():
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64, requires_grad=True)
    max_args = ([3, 2], [2, 1], [1, 1], [1, 2], True)
    torch.library.opcheck(torch.ops.cnnext.max_pool2d.default, (x, *max_args))
    out, indices = torch.ops.cnnext.max_pool2d(x, *max_args)
    grad_output = torch.randn_like(out, requires_grad=True)
    torch.library.opcheck(torch.ops.cnnext.max_pool2d_backward.default, (grad_output, x.detach(), indices, *max_args))
    for avg_args in (([3, 3], [2, 2], [1, 1], True, False, None), ([2, 3], [1, 1], [1, 0], False, True, 4)):
        torch.library.opcheck(torch.ops.cnnext.avg_pool2d.default, (x, *avg_args))
        out = torch.ops.cnnext.avg_pool2d(x, *avg_args)
        torch.library.opcheck(torch.ops.cnnext.avg_pool2d_backward.default,
                              (torch.randn_like(out, requires_grad=True), x.detach(), *avg_args))


def test_torch_compile_fullgraph():
    torch._dynamo.reset()
    model = nn.Sequential(cnnext.Conv2d(3, 4, 3, padding=1), nn.ReLU(), cnnext.MaxPool2d(2),
                          cnnext.AvgPool2d(3, stride=1, padding=1, count_include_pad=False))
    x = torch.randn(2, 3, 8, 8)
    compiled = torch.compile(model, fullgraph=True)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)
    compiled(x).sum().backward()
    assert model[0].weight.grad is not None


def test_batch_zero_and_unbatched():
    empty = torch.randn(0, 3, 6, 6, requires_grad=True)
    out, indices = cnnext.max_pool2d(empty, 2, return_indices=True)
    assert out.shape == indices.shape == (0, 3, 3, 3)
    out.sum().backward()
    assert empty.grad.shape == empty.shape
    assert cnnext.avg_pool2d(empty, 3, padding=1).shape == F.avg_pool2d(empty, 3, padding=1).shape
    single = torch.randn(3, 7, 5)
    assert torch.equal(cnnext.max_pool2d(single, 3, 1, 1), F.max_pool2d(single, 3, 1, 1))
    torch.testing.assert_close(cnnext.avg_pool2d(single, 2, ceil_mode=True), F.avg_pool2d(single, 2, ceil_mode=True))


@pytest.mark.parametrize("call, error, match", [
    (lambda: cnnext.max_pool2d(torch.randn(2, 4, 4), 5), RuntimeError, "output would be empty"),
    (lambda: cnnext.max_pool2d(torch.randn(1, 2, 8, 8), 3, padding=2), RuntimeError, "at most half"),
    (lambda: cnnext.max_pool2d(torch.randn(1, 2, 8, 8), 3, padding=2, dilation=2), RuntimeError,
     "half of kernel_size"),
    (lambda: cnnext.max_pool2d(torch.randn(1, 2, 8, 8), 0), RuntimeError, "kernel_size must be greater than zero"),
    (lambda: cnnext.max_pool2d(torch.randn(1, 2, 8, 8), 2, stride=0), RuntimeError,
     "stride must be greater than zero"),
    (lambda: cnnext.max_pool2d(torch.randn(1, 2, 8, 8), 2, dilation=0), RuntimeError,
     "dilation must be greater than zero"),
    (lambda: cnnext.max_pool2d(torch.randn(1, 2, 8, 8), 2, padding=-1), RuntimeError, "non-negative"),
    (lambda: cnnext.max_pool2d(torch.randn(8, 8), 2), RuntimeError, "3-D .* or 4-D"),
    (lambda: cnnext.max_pool2d(torch.randn(1, 0, 8, 8), 2), RuntimeError, "non-zero channels"),
    (lambda: cnnext.max_pool2d(torch.ones(1, 2, 8, 8, dtype=torch.long), 2), RuntimeError, "floating-point"),
    (lambda: cnnext.max_pool2d(torch.randn(1, 2, 8, 8), (2, 2, 2)), RuntimeError, "tuple of 2 ints"),
    (lambda: cnnext.max_pool2d(torch.randn(1, 2, 8, 8), 2.5), TypeError, "kernel_size"),
    (lambda: cnnext.avg_pool2d(torch.randn(1, 2, 8, 8), 2, divisor_override=0), RuntimeError,
     "divisor_override must not be zero"),
    (lambda: cnnext.avg_pool2d(torch.randn(1, 2, 8, 8), 3, padding=2), RuntimeError, "half"),
    (lambda: cnnext.avg_pool2d(torch.randn(1, 2, 2, 2), 3), RuntimeError, "output would be empty"),
    (lambda: torch.ops.cnnext.max_pool2d_backward(torch.randn(1, 2, 4, 4), torch.randn(1, 2, 8, 8),
                                                  torch.zeros(1, 2, 3, 3, dtype=torch.long), [2, 2], [2, 2], [0, 0],
                                                  [1, 1], False), RuntimeError, r"indices of size \[1, 2, 4, 4\]"),
    (lambda: torch.ops.cnnext.max_pool2d_backward(torch.randn(1, 2, 4, 4), torch.randn(1, 2, 8, 8),
                                                  torch.full((1, 2, 4, 4), 64), [2, 2], [2, 2], [0, 0], [1, 1],
                                                  False), RuntimeError, "outside the input plane"),
    (lambda: torch.ops.cnnext.max_pool2d_backward(
        torch.randn(1, 2, 4, 4), torch.randn(1, 2, 8, 8).contiguous(memory_format=torch.channels_last),
        torch.full((1, 2, 4, 4), -1), [2, 2], [2, 2], [0, 0], [1, 1], False), RuntimeError, "index -1 in indices"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_torch_refuses_what_we_refuse():
    """The refusals above are PyTorch's too (same calls, its own messages)."""
    for call in (lambda: F.max_pool2d(torch.randn(1, 2, 8, 8), 3, padding=2),
                 lambda: F.max_pool2d(torch.randn(1, 2, 8, 8), 3, padding=2, dilation=2),
                 lambda: F.max_pool2d(torch.randn(2, 4, 4), 5),
                 lambda: F.avg_pool2d(torch.randn(1, 2, 8, 8), 2, divisor_override=0)):
        with pytest.raises(RuntimeError):
            call()


@pytest.mark.parametrize("ours, theirs, kwargs", [
    (cnnext.MaxPool2d, nn.MaxPool2d, dict(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=True)),
    (cnnext.MaxPool2d, nn.MaxPool2d, dict(kernel_size=(2, 3), dilation=(2, 1), return_indices=True)),
    (cnnext.AvgPool2d, nn.AvgPool2d, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                                          count_include_pad=False)),
    (cnnext.AvgPool2d, nn.AvgPool2d, dict(kernel_size=2, divisor_override=3)),
])
def test_modules_match_torch(ours, theirs, kwargs):
    mine, reference = ours(**kwargs), theirs(**kwargs)
    assert repr(mine).split("(", 1)[1] == repr(reference).split("(", 1)[1]
    assert mine.state_dict() == reference.state_dict() == {}
    x = torch.randn(2, 3, 9, 10, dtype=torch.float64)
    torch.testing.assert_close(mine(x), reference(x))


def test_cnnext_backend_and_convert_use_cnnext_pooling():
    assert cnnext.layer_class("MaxPool2d", "cnnext") is cnnext.MaxPool2d
    assert cnnext.layer_class("AvgPool2d", "cnnext") is cnnext.AvgPool2d
    assert cnnext.layer_class("MaxPool2d", "torch") is nn.MaxPool2d
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(2), nn.Sequential(nn.AvgPool2d(2)))
    cnnext.convert(model, "cnnext")
    assert [type(m) for m in (model[0], model[1], model[2][0])] == [cnnext.Conv2d, cnnext.MaxPool2d,
                                                                      cnnext.AvgPool2d]
    assert model[1].kernel_size == 2
    cnnext.convert(model, "torch")
    assert [type(m) for m in (model[0], model[1], model[2][0])] == [nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d]

