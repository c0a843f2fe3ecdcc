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


def _conv2d_backward_setup_context(ctx, inputs, output):
    grad_output, input, weight, stride, padding, dilation, groups, output_mask = inputs
    ctx.save_for_backward(grad_output, input, weight)
    ctx.conv_args = (stride, padding, dilation, groups)


def _conv2d_double_backward(ctx, grad_grad_input, grad_grad_weight, grad_grad_bias):
    """Each gradient of conv2d is linear in grad_output and in one of (input, weight), so its own
    derivatives are again conv2d and conv2d_backward calls (with the roles of the tensors swapped)."""
    grad_output, input, weight = ctx.saved_tensors
    args = ctx.conv_args
    wants_grad_output, wants_input, wants_weight = ctx.needs_input_grad[:3]
    # Gradients that were skipped come back empty (size 0): they contribute nothing.
    ggi = grad_grad_input if grad_grad_input is not None and grad_grad_input.numel() else None
    ggw = grad_grad_weight if grad_grad_weight is not None and grad_grad_weight.numel() else None
    ggb = grad_grad_bias if grad_grad_bias is not None and grad_grad_bias.numel() else None
    d_grad_output = d_input = d_weight = None
    if wants_grad_output:
        d_grad_output = torch.zeros_like(grad_output)
        if ggi is not None:
            d_grad_output = d_grad_output + torch.ops.cnnext.conv2d(ggi, weight, None, *args)
        if ggw is not None:
            d_grad_output = d_grad_output + torch.ops.cnnext.conv2d(input, ggw, None, *args)
        if ggb is not None:
            d_grad_output = d_grad_output + ggb.view(1, -1, 1, 1)
    if wants_input and ggw is not None:
        d_input = torch.ops.cnnext.conv2d_backward(grad_output, input, ggw, *args, [True, False, False])[0]
    if wants_weight and ggi is not None:
        d_weight = torch.ops.cnnext.conv2d_backward(grad_output, ggi, weight, *args, [False, True, False])[1]
    return d_grad_output, d_input, d_weight, None, None, None, None, None


torch.library.register_autograd("cnnext::conv2d_backward", _conv2d_double_backward,
                                setup_context=_conv2d_backward_setup_context)
