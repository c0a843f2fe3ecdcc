"""cnnext.conv2d: torch.nn.functional.conv2d's interface on cnnext's kernels.

Argument handling follows F.conv2d: ints or pairs, padding='valid'/'same' (asymmetric for even kernels,
as PyTorch pads), unbatched (C, H, W) input. The shape, dtype and device checks are done once, in C++
(csrc/conv_params.h), before any kernel runs.

A batched call with numeric padding goes straight to the op through cnnext._C's unboxed call (ints or tuples
of ints read in C++, no IValue boxing); C++ checks the values and runs the autograd formulas, so such a call
costs about what F.conv2d costs. Only when the call refuses the arguments does the checked path run, to
normalise what it does not take (a 1-tuple, numpy ints, tensor subclasses) or to say in F.conv2d's words what
is wrong.
"""
import numbers

import torch
import torch.nn.functional as F

from . import ops
from ._extension import _C


def _ntuple(value, n, name, op):
    """An int, or a sequence of n ints, as a tuple of n ints (F.convNd / F.*_pool2d accept both)."""
    values = tuple(value) if isinstance(value, (tuple, list, torch.Size)) else (value,) * n
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{op}: expected {name} to be an int or a tuple of {n} ints, but got {value!r}")
    if len(values) == 1:
        values = values * n
    if len(values) != n:
        raise RuntimeError(f"{op}: expected {name} to be a single int or a tuple of {n} ints, but got {value!r}")
    return tuple(int(v) for v in values)


def _pair(value, name):
    return _ntuple(value, 2, name, "conv2d")


def same_padding(kernel_size, dilation):
    """Per dimension (before, after) padding that keeps the size at stride 1, split like PyTorch's."""
    totals = [d * (k - 1) for k, d in zip(kernel_size, dilation)]
    return [(t // 2, t - t // 2) for t in totals]


def _resolve_padding(padding, input, weight, stride, dilation):
    """Returns (input, symmetric padding pair); 'same' with an even kernel pads the extra row/column here."""
    if not isinstance(padding, str):
        return input, _pair(padding, "padding")
    if padding == "valid":
        return input, (0, 0)
    if padding != "same":
        raise RuntimeError(f"conv2d: invalid padding string {padding!r}, expected 'valid', 'same', an int or a pair")
    if stride != (1, 1):
        raise RuntimeError(f"conv2d: padding='same' is not supported for strided convolutions, got stride={stride}")
    if weight.dim() != 4:
        return input, (0, 0)  # the C++ check reports the bad weight
    (top, bottom), (left, right) = same_padding(weight.shape[2:], dilation)
    if bottom != top or right != left:
        input = F.pad(input, (0, right - left, 0, bottom - top))
    return input, (top, left)


def _check_tensors(input, weight, bias, op="conv2d"):
    """What the dispatcher decides before the C++ checks can run: types, layout, one device."""
    for name, value in (("input", input), ("weight", weight)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{op}: expected {name} to be a Tensor, but got {type(value).__name__}")
    if bias is not None and not isinstance(bias, torch.Tensor):
        raise TypeError(f"{op}: expected bias to be a Tensor or None, but got {type(bias).__name__}")
    named = [("input", input), ("weight", weight)] + ([("bias", bias)] if bias is not None else [])
    for name, tensor in named:
        if tensor.layout != torch.strided:
            raise RuntimeError(f"{op}: expected {name} to be a dense (strided) tensor, but got layout {tensor.layout}")
    ops.check_same_device(op, **dict(named))


def _fast_call(op, input, *args):
    """torch.ops.cnnext.<op>(input, *args) through cnnext._C's unboxed call (csrc/python_calls.cpp), or None where
    the checked path must decide: arguments the call does not take plainly (it raises TypeError), arguments the op
    refuses (the checked path then says in F's words what is wrong), tracing by torch.compile."""
    if torch.compiler.is_compiling():
        return None
    try:
        return getattr(_C, op)(input, *args)
    except (TypeError, RuntimeError, NotImplementedError):
        return None


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Applies a 2-D convolution over an input image; same arguments and results as F.conv2d."""
    if not isinstance(padding, str) and getattr(input, "ndim", 0) == 4:
        out = _fast_call("conv2d", input, weight, bias, stride, padding, dilation, groups)
        if out is not None:
            return out
    _check_tensors(input, weight, bias)
    if input.dim() not in (3, 4):
        raise RuntimeError(
            f"conv2d: expected 3-D (unbatched C, H, W) or 4-D (batched N, C, H, W) input, but got input of size "
            f"{list(input.shape)}")
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool):
        raise TypeError(f"conv2d: expected groups to be an int, but got {groups!r}")
    if input.is_complex():
        return _complex_conv2d(input, weight, bias, stride, padding, dilation, groups)
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    unbatched = input.dim() == 3
    if unbatched:
        input = input.unsqueeze(0)
    input, padding = _resolve_padding(padding, input, weight, stride, dilation)
    out = torch.ops.cnnext.conv2d(input, weight, bias, stride, padding, dilation, int(groups))
    return out.squeeze(0) if unbatched else out


def _complex_conv2d(input, weight, bias, stride, padding, dilation, groups):
    return _complex_conv(conv2d, "conv2d", input, weight, bias, stride, padding, dilation, groups)


def _complex_conv(real_conv, op, input, weight, bias, stride, padding, dilation, groups):
    """(a + ib) * (c + id) = (ac - bd) + i(ad + bc), each product a real convolution `real_conv`."""
    if not weight.is_complex() or (bias is not None and not bias.is_complex()):
        raise RuntimeError(f"{op}: expected weight and bias with the complex dtype of input ({input.dtype}), "
                           f"but got weight {weight.dtype}" + (f" and bias {bias.dtype}" if bias is not None else ""))

    def conv(x, w, b=None):
        return real_conv(x, w, b, stride, padding, dilation, groups)

    real = conv(input.real, weight.real, None if bias is None else bias.real) - conv(input.imag, weight.imag)
    imag = conv(input.real, weight.imag, None if bias is None else bias.imag) + conv(input.imag, weight.real)
    return torch.complex(real, imag)


# ---- conv1d, conv3d: the same interface for 1 and 3 spatial dimensions ----

def _check_conv_args(op, input, weight, bias, groups, spatial_dims):
    """The Python-level checks of F.convNd; the shape, dtype and device checks are done in C++."""
    _check_tensors(input, weight, bias, op)
    layout = ", ".join("DHW"[3 - spatial_dims:]) if spatial_dims <= 3 else "..."
    if input.dim() not in (spatial_dims + 1, spatial_dims + 2):
        raise RuntimeError(
            f"{op}: expected {spatial_dims + 1}-D (unbatched C, {layout}) or {spatial_dims + 2}-D (batched N, C, "
            f"{layout}) input, but got input of size {list(input.shape)}")
    if weight.dim() != spatial_dims + 2:
        raise RuntimeError(
            f"{op}: expected weight to be {spatial_dims + 2}-D (out_channels, in_channels/groups, k{layout}), "
            f"but got weight of size {list(weight.shape)}")
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool):
        raise TypeError(f"{op}: expected groups to be an int, but got {groups!r}")


def _check_padding_string(op, padding, stride):
    if padding not in ("same", "valid"):
        raise RuntimeError(f"{op}: invalid padding string {padding!r}, expected 'valid', 'same', an int or a tuple")
    if padding == "same" and any(s != 1 for s in stride):
        raise RuntimeError(f"{op}: padding='same' is not supported for strided convolutions, got stride={stride}")


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Applies a 1-D convolution over a signal; same arguments and results as F.conv1d.

    Runs as cnnext.conv2d on images of height 1, so it shares Conv2d's kernels (and their speed).
    """
    _check_conv_args("conv1d", input, weight, bias, groups, spatial_dims=1)
    stride, dilation = _ntuple(stride, 1, "stride", "conv1d"), _ntuple(dilation, 1, "dilation", "conv1d")
    if isinstance(padding, str):
        _check_padding_string("conv1d", padding, stride)
    else:
        padding = (0, *_ntuple(padding, 1, "padding", "conv1d"))
    out = conv2d(input.unsqueeze(-2), weight.unsqueeze(-2), bias, (1, *stride), padding, (1, *dilation), groups)
    return out.squeeze(-2)  # complex input too: conv2d handles it


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Applies a 3-D convolution over a volume (or video); same arguments and results as F.conv3d."""
    if not isinstance(padding, str) and getattr(input, "ndim", 0) == 5:
        out = _fast_call("conv3d", input, weight, bias, stride, padding, dilation, groups)
        if out is not None:
            return out
    _check_conv_args("conv3d", input, weight, bias, groups, spatial_dims=3)
    if input.is_complex():
        return _complex_conv(conv3d, "conv3d", input, weight, bias, stride, padding, dilation, groups)
    stride, dilation = _ntuple(stride, 3, "stride", "conv3d"), _ntuple(dilation, 3, "dilation", "conv3d")
    unbatched = input.dim() == 4
    if unbatched:
        input = input.unsqueeze(0)
    if isinstance(padding, str):
        _check_padding_string("conv3d", padding, stride)
        before_after = same_padding(weight.shape[2:], dilation) if padding == "same" else [(0, 0)] * 3
        extra = [after - before for before, after in reversed(before_after)]  # F.pad order: W, H, D
        if any(extra):
            input = F.pad(input, (0, extra[0], 0, extra[1], 0, extra[2]))
        padding = tuple(before for before, _ in before_after)
    else:
        padding = _ntuple(padding, 3, "padding", "conv3d")
    out = torch.ops.cnnext.conv3d(input, weight, bias, stride, padding, dilation, int(groups))
    return out.squeeze(0) if unbatched else out


# ---- pooling ----

def _pool_input(op, input):
    """(input as 4-D, whether it came unbatched); pooling takes (C, H, W) or (N, C, H, W) like PyTorch."""
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"{op}: expected input to be a Tensor, but got {type(input).__name__}")
    if input.dim() not in (3, 4):
        raise RuntimeError(f"{op}: expected 3-D (unbatched C, H, W) or 4-D (batched N, C, H, W) input, but got input "
                           f"of size {list(input.shape)}")
    return (input.unsqueeze(0), True) if input.dim() == 3 else (input, False)


def _pool_stride(op, stride, kernel_size):
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        return kernel_size  # PyTorch's default: non-overlapping windows
    return _ntuple(stride, 2, "stride", op)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """2-D max pooling; same arguments and results as F.max_pool2d, including the returned indices."""
    if getattr(input, "ndim", 0) == 4:
        out = _fast_call("max_pool2d", input, kernel_size, kernel_size if stride is None else stride,
                         padding, dilation, ceil_mode)
        if out is not None:
            return out if return_indices else out[0]
    x, unbatched = _pool_input("max_pool2d", input)
    kernel_size = _ntuple(kernel_size, 2, "kernel_size", "max_pool2d")
    stride = _pool_stride("max_pool2d", stride, kernel_size)
    padding = _ntuple(padding, 2, "padding", "max_pool2d")
    dilation = _ntuple(dilation, 2, "dilation", "max_pool2d")
    out, indices = torch.ops.cnnext.max_pool2d(x, kernel_size, stride, padding, dilation, bool(ceil_mode))
    if unbatched:
        out, indices = out.squeeze(0), indices.squeeze(0)
    return (out, indices) if return_indices else out


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """2-D average pooling; same arguments and results as F.avg_pool2d."""
    if getattr(input, "ndim", 0) == 4:
        out = _fast_call("avg_pool2d", input, kernel_size, kernel_size if stride is None else stride,
                         padding, ceil_mode, count_include_pad, divisor_override)
        if out is not None:
            return out
    x, unbatched = _pool_input("avg_pool2d", input)
    kernel_size = _ntuple(kernel_size, 2, "kernel_size", "avg_pool2d")
    stride = _pool_stride("avg_pool2d", stride, kernel_size)
    padding = _ntuple(padding, 2, "padding", "avg_pool2d")
    if divisor_override is not None and (not isinstance(divisor_override, numbers.Integral)
                                         or isinstance(divisor_override, bool)):
        raise TypeError(f"avg_pool2d: expected divisor_override to be an int or None, but got {divisor_override!r}")
    out = torch.ops.cnnext.avg_pool2d(x, kernel_size, stride, padding, bool(ceil_mode), bool(count_include_pad),
                                      None if divisor_override is None else int(divisor_override))
    return out.squeeze(0) if unbatched else out
