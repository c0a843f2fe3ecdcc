"""cnnext.conv2d against torch.nn.functional.conv2d and the naive loops: outputs, gradients, op checks."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import cnnext

TOLERANCE = {torch.float64: dict(rtol=1e-10, atol=1e-10), torch.float32: dict(rtol=1e-4, atol=1e-4)}


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    in_channels = groups * draw(st.integers(1, 4))
    out_channels = groups * draw(st.integers(1, 4))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    size = [max(draw(st.integers(1, 10)), s - 2 * p) for s, p in zip(span, padding)]
    return dict(
        shape=(draw(st.integers(0, 3)), in_channels, *size),
        weight_shape=(out_channels, in_channels // groups, *kernel),
        bias=draw(st.booleans()),
        args=dict(stride=stride, padding=padding, dilation=dilation, groups=groups),
        dtype=draw(st.sampled_from([torch.float64, torch.float32])),
        layout=draw(st.sampled_from(["contiguous", "channels_last", "strided"])),
    )


def make_input(shape, dtype, layout):
    if layout == "strided":  # every other element along W: not contiguous in any memory format
        x = torch.randn(*shape[:-1], 2 * shape[-1], dtype=dtype)[..., ::2]
    else:
        x = torch.randn(shape, dtype=dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    return x.requires_grad_()


def outputs_and_grads(conv, x, w, b, args):
    out = conv(x, w, b, **args)
    grad_out = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    params = [t for t in (x, w, b) if t is not None]
    grads = torch.autograd.grad(out, params, grad_out, allow_unused=True) if out.numel() else ()
    return out, grads


@given(conv_cases())
def test_matches_torch(case):
    torch.manual_seed(0)
    x = make_input(case["shape"], case["dtype"], case["layout"])
    w = torch.randn(case["weight_shape"], dtype=case["dtype"], requires_grad=True)
    b = torch.randn(case["weight_shape"][0], dtype=case["dtype"], requires_grad=True) if case["bias"] else None
    out, grads = outputs_and_grads(cnnext.conv2d, x, w, b, case["args"])
    expected_out, expected_grads = outputs_and_grads(F.conv2d, x, w, b, case["args"])
    tol = TOLERANCE[case["dtype"]]
    torch.testing.assert_close(out, expected_out, **tol)
    for got, expected in zip(grads, expected_grads):
        torch.testing.assert_close(got, expected, **tol)


@pytest.mark.parametrize("kernel,dilation", [((3, 3), 1), ((4, 4), 1), ((2, 5), (2, 1)), ((4, 3), 3)])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_padding_strings(kernel, dilation, padding):
    x = torch.randn(2, 3, 12, 11, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, *kernel, dtype=torch.float64, requires_grad=True)
    out = cnnext.conv2d(x, w, padding=padding, dilation=dilation)
    expected = F.conv2d(x, w, padding=padding, dilation=dilation)
    torch.testing.assert_close(out, expected)
    if padding == "same":
        assert out.shape[2:] == x.shape[2:]
    torch.testing.assert_close(torch.autograd.grad(out.sum(), (x, w)), torch.autograd.grad(expected.sum(), (x, w)))


def test_unbatched_input():
    x, w, b = torch.randn(3, 7, 7), torch.randn(5, 3, 3, 3), torch.randn(5)
    out = cnnext.conv2d(x, w, b, padding=1)
    assert out.shape == (5, 7, 7)
    torch.testing.assert_close(out, F.conv2d(x, w, b, padding=1))


def test_channels_last_propagates_like_torch():
    x = torch.randn(2, 4, 6, 6).contiguous(memory_format=torch.channels_last)
    w = torch.randn(8, 4, 3, 3)
    out = cnnext.conv2d(x, w)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert cnnext.conv2d(x.contiguous(), w).is_contiguous()


def test_batch_zero_gives_empty_output_and_zero_weight_grad():
    x = torch.randn(0, 3, 5, 5, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    out = cnnext.conv2d(x, w, b)
    assert out.shape == (0, 4, 3, 3)
    out.sum().backward()
    assert x.grad.shape == x.shape
    assert torch.equal(w.grad, torch.zeros_like(w)) and torch.equal(b.grad, torch.zeros_like(b))


def test_only_requested_gradients_are_computed():
    x, w = torch.randn(2, 3, 6, 6), torch.randn(4, 3, 3, 3)
    grad_out = torch.randn(2, 4, 4, 4)
    gx, gw, gb = torch.ops.cnnext.conv2d_backward(grad_out, x, w, [1, 1], [0, 0], [1, 1], 1, [False, True, False])
    assert gx.numel() == 0 and gb.numel() == 0
    torch.testing.assert_close(gw, torch.ops.aten.convolution_backward(
        grad_out, x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [False, True, False])[1])


def test_results_repeat_bit_for_bit():
    x, w = torch.randn(16, 32, 20, 20, requires_grad=True), torch.randn(32, 32, 3, 3, requires_grad=True)
    runs = []
    for _ in range(2):
        out = cnnext.conv2d(x, w, padding=1)
        runs.append((out, *torch.autograd.grad(out.square().sum(), (x, w))))
    for first, second in zip(*runs):
        assert torch.equal(first, second)


def test_large_batch_crosses_column_chunks():
    x = torch.randn(70, 16, 32, 32)  # columns of 70 images are 4x the bounded workspace
    w = torch.randn(8, 16, 3, 3)
    torch.testing.assert_close(cnnext.conv2d(x, w, padding=1), F.conv2d(x, w, padding=1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_types(dtype):
    x, w, b = torch.randn(2, 4, 8, 8), torch.randn(6, 4, 3, 3), torch.randn(6)
    out = cnnext.conv2d(x.to(dtype), w.to(dtype), b.to(dtype), padding=1)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), F.conv2d(x, w, b, padding=1), rtol=5e-2, atol=1e-1)


def test_complex_input():
    x = torch.randn(2, 4, 7, 6, dtype=torch.complex128, requires_grad=True)
    w = torch.randn(6, 2, 3, 3, dtype=torch.complex128, requires_grad=True)
    b = torch.randn(6, dtype=torch.complex128, requires_grad=True)
    args = dict(stride=(1, 2), padding=1, groups=2)
    out, grads = outputs_and_grads(cnnext.conv2d, x, w, b, args)
    expected_out, expected_grads = outputs_and_grads(F.conv2d, x, w, b, args)
    torch.testing.assert_close(out, expected_out)
    for got, expected in zip(grads, expected_grads):
        torch.testing.assert_close(got, expected)


def test_zero_input_channels_give_bias():
    """F.conv2d returns a [2, 0, 5, 5] tensor here; the sum over no channels is 0, so cnnext returns the bias."""
    out = cnnext.conv2d(torch.randn(2, 0, 5, 5), torch.randn(3, 0, 1, 1), torch.arange(3.0))
    assert out.shape == (2, 3, 5, 5)
    assert torch.equal(out, torch.arange(3.0).view(1, 3, 1, 1).expand(2, 3, 5, 5))


def test_one_element_sequences_expand_like_torch():
    x, w = torch.randn(1, 2, 7, 7), torch.randn(3, 2, 3, 3)
    torch.testing.assert_close(cnnext.conv2d(x, w, stride=(2,), padding=[1]), F.conv2d(x, w, stride=(2,), padding=[1]))


def test_nan_and_inf_propagate_like_torch():
    x = torch.randn(1, 2, 5, 5)
    x[0, 0, 2, 2], x[0, 1, 0, 0] = float("nan"), float("inf")
    w = torch.randn(3, 2, 3, 3)
    out, expected = cnnext.conv2d(x, w, padding=1), F.conv2d(x, w, padding=1)
    assert torch.equal(out.isnan(), expected.isnan()) and torch.equal(out.isinf(), expected.isinf())


@pytest.mark.parametrize("args", [
    dict(stride=1, padding=1, dilation=1, groups=1),
    dict(stride=(2, 1), padding=(0, 2), dilation=(1, 2), groups=2),
    dict(stride=1, padding=0, dilation=1, groups=4),
])
def test_gradcheck(args):
    x = torch.randn(2, 4, 6, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 4 // args["groups"], 3, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *t: cnnext.conv2d(*t, **args), (x, w, b))


@pytest.mark.parametrize("args", [
    dict(stride=1, padding=1, dilation=1, groups=1),
    dict(stride=(2, 1), padding=(1, 0), dilation=(2, 1), groups=2),
])
def test_gradgradcheck(args):
    x = torch.randn(2, 4, 6, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 4 // args["groups"], 3, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda *t: cnnext.conv2d(*t, **args), (x, w, b))


def test_gradient_penalty_matches_torch():
    """Double backward as a WGAN-GP style penalty uses it: d/dw of |d out / d x|^2."""
    x = torch.randn(2, 3, 7, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    penalties = []
    for conv in (cnnext.conv2d, F.conv2d):
        (grad_x,) = torch.autograd.grad(conv(x, w, padding=1).tanh().sum(), x, create_graph=True)
        penalties.append(torch.autograd.grad(grad_x.square().sum(), w)[0])
    torch.testing.assert_close(*penalties)


def opcheck_samples():
    yield (torch.randn(2, 4, 7, 7), torch.randn(6, 4, 3, 3), torch.randn(6), [1, 1], [1, 1], [1, 1], 1)
    yield (torch.randn(1, 6, 9, 8, dtype=torch.float64), torch.randn(4, 3, 3, 2, dtype=torch.float64), None,
           [2, 1], [0, 1], [2, 1], 2)
    yield (torch.randn(3, 4, 5, 5).contiguous(memory_format=torch.channels_last), torch.randn(8, 4, 1, 1),
           torch.randn(8), [1, 1], [0, 0], [1, 1], 1)
    yield (torch.randn(0, 4, 5, 5), torch.randn(4, 4, 3, 3), None, [1, 1], [0, 0], [1, 1], 1)


@pytest.mark.parametrize("sample", list(opcheck_samples()), ids=["basic", "grouped-dilated", "channels-last-1x1", "batch-0"])
def test_opcheck(sample):
    x, w, b, *rest = sample
    args = (x.requires_grad_(), w.requires_grad_(), b.requires_grad_() if b is not None else None, *rest)
    torch.library.opcheck(torch.ops.cnnext.conv2d.default, args)


def test_opcheck_backward_op():
    x, w = torch.randn(2, 4, 6, 6), torch.randn(3, 4, 3, 3)
    torch.library.opcheck(torch.ops.cnnext.conv2d_backward.default,
                          (torch.randn(2, 3, 6, 6), x, w, [1, 1], [1, 1], [1, 1], 1, [True, True, True]))


def test_torch_compile_fullgraph():
    """Inductor, the default backend, traces through the op with the fake kernel and calls the real one."""
    torch._dynamo.reset()
    model = torch.nn.Sequential(cnnext.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), cnnext.Conv2d(8, 4, 3, stride=2))
    compiled = torch.compile(model, fullgraph=True)
    x = torch.randn(2, 3, 12, 12, requires_grad=True)
    out = compiled(x)
    torch.testing.assert_close(out, model(x))
    out.sum().backward()
    assert x.grad is not None and model[0].weight.grad is not None


def test_naive_reference_matches_extension():
    torch.manual_seed(1)
    x = torch.randn(2, 4, 9, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 2, 3, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, requires_grad=True)
    for args in [dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2), dict(padding="same", groups=2)]:
        out, grads = outputs_and_grads(cnnext.naive.conv2d, x, w, b, args)
        expected_out, expected_grads = outputs_and_grads(cnnext.conv2d, x, w, b, args)
        torch.testing.assert_close(out, expected_out)
        for got, expected in zip(grads, expected_grads):
            torch.testing.assert_close(got, expected)


class LoggingTensor(torch.Tensor):
    """A subclass with its own __torch_function__: cnnext.conv2d must reach it as torch.ops would."""
    seen = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        cls.seen.append(str(func))
        return super().__torch_function__(func, types, args, kwargs or {})


class RecordingMode(torch.overrides.TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.seen.append(str(func))
        return func(*args, **(kwargs or {}))


def test_unboxed_call_leaves_subclasses_and_modes_to_torch_function():
    x, w = torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3)
    LoggingTensor.seen.clear()
    out = cnnext.conv2d(x.as_subclass(LoggingTensor), w)
    assert any("cnnext.conv2d" in name for name in LoggingTensor.seen)
    torch.testing.assert_close(out.as_subclass(torch.Tensor), F.conv2d(x, w))
    LoggingTensor.seen.clear()
    cnnext.conv2d(x, w.as_subclass(LoggingTensor))  # a subclass weight behind a plain input
    assert any("cnnext.conv2d" in name for name in LoggingTensor.seen)
    with RecordingMode() as mode:
        cnnext.conv2d(x, w, None, 1, 1)
        cnnext.max_pool2d(x, 2)
    assert any("cnnext.conv2d" in name for name in mode.seen)
    assert any("cnnext.max_pool2d" in name for name in mode.seen)


@pytest.mark.parametrize("stride, padding, groups", [
    (1, 1, 1), ((1, 2), [0, 1], 1), (2, 0, 2),                        # plain ints, tuples, lists
    ((2,), (1,), 1),                                                  # 1-tuples: the checked path
])
def test_unboxed_call_and_checked_path_agree(stride, padding, groups):
    x, w = torch.randn(2, 4, 9, 8), torch.randn(6, 4 // int(groups), 3, 3, requires_grad=True)
    out = cnnext.conv2d(x, w, None, stride, padding, 1, groups)
    torch.testing.assert_close(out, F.conv2d(x, w, None, stride, padding, 1, groups))
    out.sum().backward()
    assert w.grad is not None and w.grad.shape == w.shape


def test_unboxed_call_leaves_bad_arguments_to_the_checked_path():
    x, w = torch.randn(2, 4, 9, 8), torch.randn(6, 4, 3, 3)
    with pytest.raises(TypeError, match="expected groups to be an int, but got True"):
        cnnext.conv2d(x, w, None, 1, 0, 1, True)
    with pytest.raises(RuntimeError, match="weight"):
        cnnext.conv2d(x, torch.randn(6, 5, 3, 3))


def test_unboxed_call_is_the_op_the_profiler_sees():
    x, w = torch.randn(1, 2, 5, 5), torch.nn.Parameter(torch.randn(3, 2, 3, 3))
    with torch.profiler.profile() as prof:
        cnnext.conv2d(x, w).sum().backward()
    names = {event.name for event in prof.events()}
    assert {"cnnext::conv2d", "cnnext::conv2d_backward"} <= names
