"""cnnext.conv2d: torch.nn.functional.conv2d's interface on cnnext's kernels.

Argument handling follows F.conv2d: ints or pairs, padding='valid'/'same' (asymmetric for even kernels,
as PyTorch pads), unbatched (C, H, W) input. The shape, dtype and device checks are done once, in C++
(csrc/conv_params.h), before any kernel runs.
"""
import numbers

import torch
import torch.nn.functional as F

from . import ops  # noqa: F401  (registers the ops)


def _pair(value, name):
    values = tuple(value) if isinstance(value, (tuple, list, torch.Size)) else (value,)
    values = values * 2 if len(values) == 1 else values
    if len(values) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
        raise TypeError(f"conv2d: expected {name} to be an int or a pair of ints, but got {value!r}")
    return tuple(int(v) for v in values)


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


def _check_tensors(input, weight, bias):
    """What the dispatcher decides before the C++ checks can run: types, layout, one device."""
    for name, value in (("input", input), ("weight", weight)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"conv2d: expected {name} to be a Tensor, but got {type(value).__name__}")
    if bias is not None and not isinstance(bias, torch.Tensor):
        raise TypeError(f"conv2d: expected bias to be a Tensor or None, but got {type(bias).__name__}")
    named = [("input", input), ("weight", weight)] + ([("bias", bias)] if bias is not None else [])
    for name, tensor in named:
        if tensor.layout != torch.strided:
            raise RuntimeError(f"conv2d: expected {name} to be a dense (strided) tensor, but got layout {tensor.layout}")
    devices = {name: tensor.device for name, tensor in named}
    if len(set(devices.values())) > 1:
        found = ", ".join(f"{name} on {device}" for name, device in devices.items())
        raise RuntimeError(f"conv2d: expected input, weight and bias on the same device, but got {found}")


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Applies a 2-D convolution over an input image; same arguments and results as F.conv2d."""
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
    """(a + ib) * (c + id) = (ac - bd) + i(ad + bc), each product a real convolution."""
    if not weight.is_complex() or (bias is not None and not bias.is_complex()):
        raise RuntimeError(f"conv2d: expected weight and bias with the complex dtype of input ({input.dtype}), "
                           f"but got weight {weight.dtype}" + (f" and bias {bias.dtype}" if bias is not None else ""))

    def conv(x, w, b=None):
        return conv2d(x, w, b, stride, padding, dilation, groups)

    real = conv(input.real, weight.real, None if bias is None else bias.real) - conv(input.imag, weight.imag)
    imag = conv(input.real, weight.imag, None if bias is None else bias.imag) + conv(input.imag, weight.real)
    return torch.complex(real, imag)
