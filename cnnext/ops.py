"""The registered ops (torch.ops.cnnext.*) with their autograd formulas and fake (meta) kernels.

The kernels themselves live in csrc/; this file only tells PyTorch how to differentiate the ops and
how to compute their output shapes without running them (for torch.compile and FakeTensor).
"""
import torch
from torch._prims_common import suggest_memory_format

from . import _C  # noqa: F401  (loading the library registers the ops)


def conv_output_size(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@torch.library.register_fake("cnnext::conv2d")
def _conv2d_fake(input, weight, bias, stride, padding, dilation, groups):
    torch._check(input.dim() == 4 and weight.dim() == 4, lambda: "conv2d: expected 4-D input and weight")
    out_hw = [conv_output_size(input.shape[2 + i], weight.shape[2 + i], stride[i], padding[i], dilation[i])
              for i in range(2)]
    shape = (input.shape[0], weight.shape[0], *out_hw)
    return torch.empty(shape, dtype=input.dtype, device=input.device, memory_format=suggest_memory_format(input))


@torch.library.register_fake("cnnext::conv2d_backward")
def _conv2d_backward_fake(grad_output, input, weight, stride, padding, dilation, groups, output_mask):
    skipped = input.new_empty(0)
    grad_input = (torch.empty(input.shape, dtype=input.dtype, device=input.device,
                              memory_format=suggest_memory_format(input)) if output_mask[0] else skipped)
    grad_weight = weight.new_empty(weight.shape) if output_mask[1] else skipped
    grad_bias = weight.new_empty(weight.shape[0]) if output_mask[2] else skipped
    return grad_input, grad_weight, grad_bias


def _conv2d_setup_context(ctx, inputs, output):
    input, weight, bias, stride, padding, dilation, groups = inputs
    ctx.save_for_backward(input, weight)
    ctx.conv_args = (stride, padding, dilation, groups)


def _conv2d_backward(ctx, grad_output):
    input, weight = ctx.saved_tensors
    mask = list(ctx.needs_input_grad[:3])
    grads = torch.ops.cnnext.conv2d_backward(grad_output, input, weight, *ctx.conv_args, mask)
    return tuple(g if wanted else None for g, wanted in zip(grads, mask)) + (None,) * 4


torch.library.register_autograd("cnnext::conv2d", _conv2d_backward, setup_context=_conv2d_setup_context)


# ---- conv3d: the conv2d formulas with a depth axis ----

@torch.library.register_fake("cnnext::conv3d")
def _conv3d_fake(input, weight, bias, stride, padding, dilation, groups):
    torch._check(input.dim() == 5 and weight.dim() == 5, lambda: "conv3d: expected 5-D input and weight")
    out_dhw = [conv_output_size(input.shape[2 + i], weight.shape[2 + i], stride[i], padding[i], dilation[i])
               for i in range(3)]
    shape = (input.shape[0], weight.shape[0], *out_dhw)
    return torch.empty(shape, dtype=input.dtype, device=input.device, memory_format=suggest_memory_format(input))


@torch.library.register_fake("cnnext::conv3d_backward")
def _conv3d_backward_fake(grad_output, input, weight, stride, padding, dilation, groups, output_mask):
    return _conv2d_backward_fake(grad_output, input, weight, stride, padding, dilation, groups, output_mask)


def _conv3d_backward(ctx, grad_output):
    input, weight = ctx.saved_tensors
    mask = list(ctx.needs_input_grad[:3])
    grads = torch.ops.cnnext.conv3d_backward(grad_output, input, weight, *ctx.conv_args, mask)
    return tuple(g if wanted else None for g, wanted in zip(grads, mask)) + (None,) * 4


torch.library.register_autograd("cnnext::conv3d", _conv3d_backward, setup_context=_conv2d_setup_context)


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


def _max_pool2d_setup_context(ctx, inputs, output):
    input, *pool_args = inputs
    _, indices = output
    ctx.mark_non_differentiable(indices)
    ctx.save_for_backward(input, indices)
    ctx.pool_args = pool_args


def _max_pool2d_backward(ctx, grad_output, grad_indices):
    input, indices = ctx.saved_tensors
    grad_input = torch.ops.cnnext.max_pool2d_backward(grad_output, input, indices, *ctx.pool_args)
    return (grad_input,) + (None,) * len(ctx.pool_args)


torch.library.register_autograd("cnnext::max_pool2d", _max_pool2d_backward, setup_context=_max_pool2d_setup_context)


@torch.library.register_fake("cnnext::avg_pool2d")
def _avg_pool2d_fake(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    return _pool2d_fake_output(input, kernel_size, stride, padding, (1, 1), ceil_mode)


@torch.library.register_fake("cnnext::avg_pool2d_backward")
def _avg_pool2d_backward_fake(grad_output, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                              divisor_override):
    return _like_input(input)


def _avg_pool2d_setup_context(ctx, inputs, output):
    input, *pool_args = inputs
    ctx.save_for_backward(input)
    ctx.pool_args = pool_args


def _avg_pool2d_backward(ctx, grad_output):
    (input,) = ctx.saved_tensors
    grad_input = torch.ops.cnnext.avg_pool2d_backward(grad_output, input, *ctx.pool_args)
    return (grad_input,) + (None,) * len(ctx.pool_args)


torch.library.register_autograd("cnnext::avg_pool2d", _avg_pool2d_backward, setup_context=_avg_pool2d_setup_context)
