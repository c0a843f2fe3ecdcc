"""cnnext.conv1d / conv3d and cnnext.Conv1d / Conv3d against torch.nn.functional and torch.nn.

Tolerances: float64 rtol=1e-10, atol=1e-10; float32 rtol=1e-4, atol=1e-4 (GEMM summation order differs).
"""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import cnnext

TOLERANCES = {torch.float64: dict(rtol=1e-10, atol=1e-10), torch.float32: dict(rtol=1e-4, atol=1e-4)}


def assert_same_forward_backward(ours, theirs, tensors, dtype):
    """Runs both functions on copies of `tensors`, compares outputs and the gradient of every tensor."""
    ours_in = [t.detach().clone().requires_grad_(t.is_floating_point()) if t is not None else None for t in tensors]
    theirs_in = [t.detach().clone().requires_grad_(t.is_floating_point()) if t is not None else None for t in tensors]
    out, expected = ours(*ours_in), theirs(*theirs_in)
    torch.testing.assert_close(out, expected, **TOLERANCES[dtype])
    if out.numel() == 0:
        return
    grad = torch.randn_like(expected)
    out.backward(grad)
    expected.backward(grad)
    for a, b in zip(ours_in, theirs_in):
        if a is not None:
            torch.testing.assert_close(a.grad, b.grad, **TOLERANCES[dtype])


@st.composite
def conv_case(draw, spatial_dims):
    """A random valid convolution: (input, weight, bias, stride, padding, dilation, groups)."""
    dtype = draw(st.sampled_from([torch.float64, torch.float32]))
    groups = draw(st.integers(1, 3))
    cin, cout = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    batch = draw(st.integers(1, 3))
    max_size = 9 if spatial_dims == 1 else 5
    kernel = [draw(st.integers(1, 3)) for _ in range(spatial_dims)]
    dilation = [draw(st.integers(1, 2)) for _ in range(spatial_dims)]
    stride = [draw(st.integers(1, 3)) for _ in range(spatial_dims)]
    padding_kind = draw(st.sampled_from(["ints", "same", "valid"]))
    if padding_kind == "same":
        stride = [1] * spatial_dims
        padding = "same"
    elif padding_kind == "valid":
        padding = "valid"
    else:
        padding = [draw(st.integers(0, 2)) for _ in range(spatial_dims)]
    pad = [0] * spatial_dims if isinstance(padding, str) else padding
    size = [max(d * (k - 1) + 1 - 2 * p, 1) + draw(st.integers(0, max_size - 3))
            for k, d, p in zip(kernel, dilation, pad)]
    x = torch.randn(batch, cin, *size, dtype=dtype)
    if spatial_dims == 3 and draw(st.booleans()):
        x = x.to(memory_format=torch.channels_last_3d)
    if draw(st.booleans()):  # non-contiguous: every other element along the last axis of a wider tensor
        x = torch.randn(batch, cin, *size[:-1], 2 * size[-1], dtype=dtype)[..., ::2]
    w = torch.randn(cout, cin // groups, *kernel, dtype=dtype)
    b = torch.randn(cout, dtype=dtype) if draw(st.booleans()) else None
    return x, w, b, stride, padding, dilation, groups


@pytest.mark.parametrize("spatial_dims", [1, 3])
@settings(max_examples=40)
@given(data=st.data())
def test_parity_with_torch(spatial_dims, data):
    x, w, b, stride, padding, dilation, groups = data.draw(conv_case(spatial_dims))
    ours = {1: cnnext.conv1d, 3: cnnext.conv3d}[spatial_dims]
    theirs = {1: F.conv1d, 3: F.conv3d}[spatial_dims]
    assert_same_forward_backward(lambda x, w, b: ours(x, w, b, stride, padding, dilation, groups),
                                 lambda x, w, b: theirs(x, w, b, stride, padding, dilation, groups),
                                 [x, w, b], x.dtype)


def test_conv3d_channels_last_3d_keeps_layout():
    x = torch.randn(2, 4, 5, 6, 7).to(memory_format=torch.channels_last_3d)
    w = torch.randn(8, 4, 3, 3, 3)
    out = cnnext.conv3d(x, w, padding=1)
    assert out.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(out, F.conv3d(x, w, padding=1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_conv3d_reduced_precision(dtype):
    x, w, b = torch.randn(2, 4, 4, 5, 6), torch.randn(6, 2, 3, 1, 3), torch.randn(6)
    out = cnnext.conv3d(x.to(dtype), w.to(dtype), b.to(dtype), padding=(1, 0, 1), groups=2)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), F.conv3d(x, w, b, padding=(1, 0, 1), groups=2), rtol=3e-2, atol=1e-1)


def test_gradcheck():
    x = torch.randn(1, 4, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 2, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: cnnext.conv3d(x, w, b, (1, 2, 1), (1, 1, 0), (1, 1, 2), 2),
                                    (x, w, b))
    x1 = torch.randn(2, 4, 9, dtype=torch.float64, requires_grad=True)
    w1 = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: cnnext.conv1d(x, w, None, 2, 1, 2, 2), (x1, w1))


def test_gradgradcheck():
    x = torch.randn(1, 2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 1, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x, w, b: cnnext.conv3d(x, w, b, 1, 1, (1, 2, 1), 2), (x, w, b))


def test_complex_input():
    x = torch.randn(2, 4, 4, 5, 3, dtype=torch.complex128)
    w = torch.randn(6, 2, 3, 3, 1, dtype=torch.complex128)
    b = torch.randn(6, dtype=torch.complex128)
    torch.testing.assert_close(cnnext.conv3d(x, w, b, padding=1, groups=2), F.conv3d(x, w, b, padding=1, groups=2))
    signal, w1 = torch.randn(2, 4, 9, dtype=torch.complex128), torch.randn(3, 4, 3, dtype=torch.complex128)
    torch.testing.assert_close(cnnext.conv1d(signal, w1, stride=2), F.conv1d(signal, w1, stride=2))


def test_zero_input_channels_give_bias():
    """As cnnext.conv2d does (F.conv3d returns an empty [2, 0, ...] tensor here): a sum over no channels is 0."""
    out = cnnext.conv3d(torch.randn(2, 0, 4, 4, 4), torch.randn(3, 0, 3, 3, 3), torch.arange(3.0))
    assert torch.equal(out, torch.arange(3.0).view(1, 3, 1, 1, 1).expand(2, 3, 2, 2, 2))


def test_opcheck():
    x = torch.randn(2, 4, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 2, 2, 3, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, requires_grad=True)
    args = ([1, 2, 1], [1, 0, 1], [1, 1, 2], 2)
    torch.library.opcheck(torch.ops.cnnext.conv3d.default, (x, w, b, *args))
    torch.library.opcheck(torch.ops.cnnext.conv3d.default, (x.detach(), w.detach(), None, *args))
    go = torch.randn_like(torch.ops.cnnext.conv3d(x, w, b, *args))
    torch.library.opcheck(torch.ops.cnnext.conv3d_backward.default,
                          (go.requires_grad_(), x, w, *args, [True, True, True]))


def test_torch_compile_fullgraph():
    # aot_eager traces forward and backward through the fake kernels and the autograd formulas, as inductor
    # does, without inductor's code generation (test_pooling.py compiles one model with inductor).
    torch._dynamo.reset()
    model = nn.Sequential(cnnext.Conv3d(2, 4, 3, padding=1), nn.ReLU(), cnnext.Conv3d(4, 3, (1, 2, 2), stride=2))
    x = torch.randn(2, 2, 4, 6, 6)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)
    compiled(x).sum().backward()
    assert model[0].weight.grad is not None
    conv1d = torch.compile(lambda x, w: cnnext.conv1d(x, w, padding="same"), fullgraph=True, backend="aot_eager")
    signal, w = torch.randn(2, 3, 10), torch.randn(4, 3, 4)
    torch.testing.assert_close(conv1d(signal, w), F.conv1d(signal, w, padding="same"), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("spatial_dims", [1, 3])
def test_unbatched_and_batch_zero(spatial_dims):
    ours = {1: cnnext.conv1d, 3: cnnext.conv3d}[spatial_dims]
    theirs = {1: F.conv1d, 3: F.conv3d}[spatial_dims]
    w = torch.randn(4, 3, *[3] * spatial_dims, dtype=torch.float64)
    single = torch.randn(3, *[6] * spatial_dims, dtype=torch.float64)
    torch.testing.assert_close(ours(single, w, padding=1), theirs(single, w, padding=1))
    empty = torch.randn(0, 3, *[6] * spatial_dims, dtype=torch.float64, requires_grad=True)
    out = ours(empty, w.requires_grad_(), padding=1)
    assert out.shape == theirs(empty, w, padding=1).shape
    out.sum().backward()
    assert empty.grad.shape == empty.shape and torch.equal(w.grad, torch.zeros_like(w))


@pytest.mark.parametrize("call, error, match", [
    (lambda: cnnext.conv3d(torch.randn(2, 3, 4, 4), torch.randn(4, 3, 3, 3, 3)), RuntimeError, "input of size"),
    (lambda: cnnext.conv3d(torch.randn(1, 3, 4, 4, 4), torch.randn(4, 3, 3, 3)), RuntimeError, "weight to be 5-D"),
    (lambda: cnnext.conv3d(torch.randn(1, 4, 4, 4, 4), torch.randn(4, 3, 3, 3, 3)), RuntimeError,
     "expects input with 3 channels"),
    (lambda: cnnext.conv3d(torch.randn(1, 4, 4, 4, 4), torch.randn(3, 2, 1, 1, 1), groups=2), RuntimeError,
     "groups=2 must divide out_channels"),
    (lambda: cnnext.conv3d(torch.randn(1, 3, 4, 4, 4), torch.randn(4, 3, 1, 1, 1), stride=0), RuntimeError,
     "stride must be >= 1"),
    (lambda: cnnext.conv3d(torch.randn(1, 3, 4, 4, 4), torch.randn(4, 3, 1, 1, 1), padding=-1), RuntimeError,
     "padding must be >= 0"),
    (lambda: cnnext.conv3d(torch.randn(1, 3, 4, 4, 4), torch.randn(4, 3, 1, 1, 1), dilation=(1, 0, 1)), RuntimeError,
     "dilation must be >= 1"),
    (lambda: cnnext.conv3d(torch.randn(1, 3, 2, 4, 4), torch.randn(4, 3, 3, 3, 3)), RuntimeError,
     "smaller than the dilated kernel"),
    (lambda: cnnext.conv3d(torch.randn(1, 3, 4, 4, 4), torch.randn(4, 3, 3, 3, 3), padding="full"), RuntimeError,
     "invalid padding string"),
    (lambda: cnnext.conv3d(torch.randn(1, 3, 4, 4, 4), torch.randn(4, 3, 3, 3, 3), padding="same", stride=2),
     RuntimeError, "not supported for strided"),
    (lambda: cnnext.conv3d(torch.randn(1, 3, 4, 4, 4), torch.randn(4, 3, 3, 3, 3, dtype=torch.float64)),
     RuntimeError, "same dtype"),
    (lambda: cnnext.conv3d(torch.ones(1, 3, 4, 4, 4, dtype=torch.long), torch.ones(4, 3, 3, 3, 3, dtype=torch.long)),
     RuntimeError, "floating-point dtype"),
    (lambda: cnnext.conv3d(torch.randn(1, 3, 4, 4, 4), torch.randn(4, 3, 3, 3, 3), torch.randn(5)), RuntimeError,
     r"bias of size \[4\]"),
    (lambda: cnnext.conv3d(torch.randn(1, 3, 4, 4, 4), torch.randn(4, 3, 3, 3, 3), stride=(1, 2)), RuntimeError,
     "tuple of 3 ints"),
    (lambda: cnnext.conv3d(torch.randn(1, 3, 4, 4, 4), torch.randn(4, 3, 3, 3, 3), stride=1.5), TypeError,
     "stride"),
    (lambda: cnnext.conv3d(torch.randn(1, 3, 0, 4, 4), torch.randn(4, 3, 1, 1, 1)), RuntimeError,
     r"non-zero spatial sizes, but got input of size \[1, 3, 0, 4, 4\]"),
    (lambda: cnnext.conv3d(torch.randn(1, 3, 4, 4, 4), torch.randn(0, 3, 1, 1, 1)), RuntimeError,
     "non-zero out_channels"),
    (lambda: cnnext.conv3d(torch.randn(1, 3, 4, 4, 4), torch.randn(4, 3, 1, 1, 1), torch.randn(4, device="meta")),
     RuntimeError, "conv3d: expected input, weight and bias on the same device"),
    (lambda: cnnext.conv3d(torch.randn(1, 3, 4, 4, 4).to_sparse(), torch.randn(4, 3, 1, 1, 1)), RuntimeError,
     r"conv3d: expected input to be a dense \(strided\) tensor"),
    (lambda: cnnext.conv3d(torch.randn(1, 3, 4, 4, 4).cfloat(), torch.randn(4, 3, 1, 1, 1)), RuntimeError,
     "complex dtype of input"),
    (lambda: cnnext.conv1d(torch.randn(1, 3, 4, 4), torch.randn(4, 3, 3)), RuntimeError, "3-D"),
    (lambda: cnnext.conv1d(torch.randn(1, 3, 8), torch.randn(4, 3, 3, 3)), RuntimeError, "weight to be 3-D"),
    (lambda: cnnext.conv1d(torch.randn(1, 3, 8), torch.randn(4, 2, 3)), RuntimeError, "channels"),
    (lambda: cnnext.conv1d(torch.randn(1, 3, 8), torch.randn(4, 3, 3), padding="same", stride=2), RuntimeError,
     "not supported for strided"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_nan_propagates():
    x = torch.randn(1, 2, 4, 4, 4)
    x[0, 0, 1, 1, 1] = float("nan")
    w = torch.randn(3, 2, 3, 3, 3)
    assert torch.equal(cnnext.conv3d(x, w).isnan(), F.conv3d(x, w).isnan())


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("ours, theirs, size", [(cnnext.Conv1d, nn.Conv1d, (2, 4, 11)),
                                                 (cnnext.Conv3d, nn.Conv3d, (2, 4, 5, 6, 7))])
def test_module_drop_in_and_state_dict(ours, theirs, size, padding_mode):
    kwargs = dict(in_channels=4, out_channels=6, kernel_size=3, stride=1, padding=1, dilation=1, groups=2,
                  padding_mode=padding_mode)
    torch.manual_seed(0)
    mine = ours(**kwargs).double()
    torch.manual_seed(0)
    reference = theirs(**kwargs).double()
    assert torch.equal(mine.weight, reference.weight)  # same initialisation
    reference.load_state_dict(mine.state_dict())
    mine.load_state_dict(reference.state_dict())
    x = torch.randn(size, dtype=torch.float64)
    torch.testing.assert_close(mine(x), reference(x))
    assert repr(mine).split("(", 1)[1] == repr(reference).split("(", 1)[1]


def test_module_padding_same():
    for ours, theirs, size in [(cnnext.Conv1d, nn.Conv1d, (2, 3, 10)), (cnnext.Conv3d, nn.Conv3d, (3, 5, 6, 7))]:
        mine, reference = ours(3, 4, 4, padding="same", dilation=1), theirs(3, 4, 4, padding="same", dilation=1)
        reference.load_state_dict(mine.state_dict())
        x = torch.randn(size)
        torch.testing.assert_close(mine(x), reference(x), rtol=1e-4, atol=1e-4)


def test_convert_swaps_conv1d_and_conv3d():
    model = nn.Sequential(nn.Conv1d(2, 3, 3), nn.Sequential(nn.Conv3d(3, 3, 1)))
    weight = model[0].weight
    cnnext.convert(model, "cnnext")
    assert type(model[0]) is cnnext.Conv1d and type(model[1][0]) is cnnext.Conv3d
    assert model[0].weight is weight
    cnnext.convert(model, "torch")
    assert type(model[0]) is nn.Conv1d and type(model[1][0]) is nn.Conv3d


DEPTH_TAP_CASES = [  # input, weight, arguments: strided/dilated/padded depth, groups, depthwise, 1-deep kernels
    ((2, 5, 7, 9, 8), (6, 5, 3, 3, 2), dict(stride=(2, 1, 2), padding=(1, 0, 1), dilation=(2, 1, 1))),
    ((3, 16, 4, 6, 6), (32, 16, 3, 3, 3), dict(padding=1)),
    ((1, 3, 5, 5, 5), (4, 3, 1, 3, 3), dict(stride=(3, 1, 1), padding=(2, 1, 1))),
    ((2, 32, 6, 6, 6), (32, 16, 2, 3, 3), dict(groups=2, padding=(0, 1, 1))),
    ((2, 8, 3, 5, 5), (8, 1, 3, 3, 3), dict(groups=8, padding=(3, 1, 1), dilation=(2, 1, 1))),
]


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last_3d])
@pytest.mark.parametrize("case", DEPTH_TAP_CASES, ids=lambda case: "x".join(map(str, case[0])))
def test_conv3d_float32_matches_float64_reference(case, memory_format):
    """float32 conv3d on AVX-512 CPUs runs as a sum over depth taps of the direct Conv2d kernel
    (a depth padding wider than the kernel leaves some taps with no input slice at all)."""
    torch.manual_seed(0)
    input_shape, weight_shape, args = case
    x = torch.randn(input_shape).contiguous(memory_format=memory_format).requires_grad_()
    w = torch.randn(weight_shape, requires_grad=True)
    b = torch.randn(weight_shape[0], requires_grad=True)
    out = cnnext.conv3d(x, w, b, **args)
    assert out.is_contiguous(memory_format=memory_format)
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x, w, b), grad_out)
    x64, w64, b64 = (t.detach().double().requires_grad_() for t in (x, w, b))
    expected = F.conv3d(x64, w64, b64, **args)
    expected_grads = torch.autograd.grad(expected, (x64, w64, b64), grad_out.double())
    torch.testing.assert_close(out.double(), expected, rtol=1e-4, atol=1e-4)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-3)
