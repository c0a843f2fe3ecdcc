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
