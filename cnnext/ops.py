"""The fake (meta) kernels of the registered ops (torch.ops.cnnext.*).

The kernels and the autograd formulas (including double backward) live in csrc/ (conv_autograd.cpp,
pool_autograd.cpp, registered for the Autograd dispatch key); this file only tells PyTorch how to compute
the ops' output shapes without running them (for torch.compile and FakeTensor).
"""
import torch
from torch._prims_common import suggest_memory_format

from ._extension import _C  # noqa: F401  (loads and checks the kernels; loading registers the ops)


def conv_output_size(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def check_same_device(op, **tensors):
    """A convolution's input, weight and bias (None: absent) must share one device; checked here too because
    a meta tensor among CPU tensors sends the call to these fake kernels, not to the kernels' own checks."""
    devices = {name: tensor.device for name, tensor in tensors.items() if tensor is not None}
    if len(set(devices.values())) > 1:
        found = ", ".join(f"{name} on {device}" for name, device in devices.items())
        raise RuntimeError(f"{op}: expected input, weight and bias on the same device, but got {found}")


def _conv_fake_output(op, input, weight, bias, stride, padding, dilation):
    """The output a convolution of len(stride) spatial dimensions allocates, without computing it."""
    check_same_device(op, input=input, weight=weight, bias=bias)
    dims = len(stride) + 2
    torch._check(input.dim() == dims and weight.dim() == dims, lambda: f"{op}: expected {dims}-D input and weight")
    spatial = [conv_output_size(input.shape[2 + i], weight.shape[2 + i], stride[i], padding[i], dilation[i])
               for i in range(dims - 2)]
    shape = (input.shape[0], weight.shape[0], *spatial)
    return torch.empty(shape, dtype=input.dtype, device=input.device, memory_format=suggest_memory_format(input))


@torch.library.register_fake("cnnext::conv2d")
def _conv2d_fake(input, weight, bias, stride, padding, dilation, groups):
    return _conv_fake_output("conv2d", input, weight, bias, stride, padding, dilation)


@torch.library.register_fake("cnnext::conv2d_backward")
def _conv2d_backward_fake(grad_output, input, weight, stride, padding, dilation, groups, output_mask):
    skipped = input.new_empty(0)
    grad_input = (torch.empty(input.shape, dtype=input.dtype, device=input.device,
                              memory_format=suggest_memory_format(input)) if output_mask[0] else skipped)
    grad_weight = weight.new_empty(weight.shape) if output_mask[1] else skipped
    grad_bias = weight.new_empty(weight.shape[0]) if output_mask[2] else skipped
    return grad_input, grad_weight, grad_bias


# ---- conv3d: the conv2d formulas with a depth axis ----

@torch.library.register_fake("cnnext::conv3d")
def _conv3d_fake(input, weight, bias, stride, padding, dilation, groups):
    return _conv_fake_output("conv3d", input, weight, bias, stride, padding, dilation)


@torch.library.register_fake("cnnext::conv3d_backward")
def _conv3d_backward_fake(grad_output, input, weight, stride, padding, dilation, groups, output_mask):
    return _conv2d_backward_fake(grad_output, input, weight, stride, padding, dilation, groups, output_mask)


# ---- pooling ----

def pool_output_size(size, kernel, stride, padding, dilation, ceil_mode):
    """PyTorch's pooling output size: with ceil_mode the last window must start inside the input or left padding."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _pool2d_fake_output(input, kernel_size, stride, padding, dilation, ceil_mode, dtype=None):
    torch._check(input.dim() == 4, lambda: "pooling: expected 4-D input")
    out_hw = [pool_output_size(input.shape[2 + i], kernel_size[i], stride[i], padding[i], dilation[i], ceil_mode)
              for i in range(2)]
    return torch.empty((*input.shape[:2], *out_hw), dtype=dtype or input.dtype, device=input.device,
                       memory_format=suggest_memory_format(input))


def _like_input(input):
    return torch.empty(input.shape, dtype=input.dtype, device=input.device, memory_format=suggest_memory_format(input))


@torch.library.register_fake("cnnext::max_pool2d")
def _max_pool2d_fake(input, kernel_size, stride, padding, dilation, ceil_mode):
    output = _pool2d_fake_output(input, kernel_size, stride, padding, dilation, ceil_mode)
    indices = _pool2d_fake_output(input, kernel_size, stride, padding, dilation, ceil_mode, dtype=torch.int64)
    return output, indices


@torch.library.register_fake("cnnext::max_pool2d_backward")
def _max_pool2d_backward_fake(grad_output, input, indices, kernel_size, stride, padding, dilation, ceil_mode):
    return _like_input(input)


@torch.library.register_fake("cnnext::avg_pool2d")
def _avg_pool2d_fake(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    return _pool2d_fake_output(input, kernel_size, stride, padding, (1, 1), ceil_mode)


@torch.library.register_fake("cnnext::avg_pool2d_backward")
def _avg_pool2d_backward_fake(grad_output, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                              divisor_override):
    return _like_input(input)
