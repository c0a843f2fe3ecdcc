"""The registered ops (torch.ops.cnnext.*) with their autograd formulas and fake (meta) kernels.

The kernels themselves live in csrc/; this file only tells PyTorch how to differentiate the ops and
how to compute their output shapes without running them (for torch.compile and FakeTensor).
"""
import torch
from torch._prims_common import suggest_memory_format

from ._extension import _C  # noqa: F401  (loads and checks the kernels; loading registers the ops)


def conv_output_size(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _conv_fake_output(op, input, weight, stride, padding, dilation):
    """The output a convolution of len(stride) spatial dimensions allocates, without computing it."""
    dims = len(stride) + 2
    torch._check(input.dim() == dims and weight.dim() == dims, lambda: f"{op}: expected {dims}-D input and weight")
    spatial = [conv_output_size(input.shape[2 + i], weight.shape[2 + i], stride[i], padding[i], dilation[i])
               for i in range(dims - 2)]
    shape = (input.shape[0], weight.shape[0], *spatial)
    return torch.empty(shape, dtype=input.dtype, device=input.device, memory_format=suggest_memory_format(input))


@torch.library.register_fake("cnnext::conv2d")
def _conv2d_fake(input, weight, bias, stride, padding, dilation, groups):
    return _conv_fake_output("conv2d", input, weight, stride, padding, dilation)


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


def _conv_double_backward(forward, backward, ctx, grad_grad_input, grad_grad_weight, grad_grad_bias):
    """Each gradient of a convolution is linear in grad_output and in one of (input, weight), so its own
    derivatives are again `forward` and `backward` calls (with the roles of the tensors swapped)."""
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
            d_grad_output = d_grad_output + forward(ggi, weight, None, *args)
        if ggw is not None:
            d_grad_output = d_grad_output + forward(input, ggw, None, *args)
        if ggb is not None:
            d_grad_output = d_grad_output + ggb.view(1, -1, *[1] * (grad_output.dim() - 2))
    if wants_input and ggw is not None:
        d_input = backward(grad_output, input, ggw, *args, [True, False, False])[0]
    if wants_weight and ggi is not None:
        d_weight = backward(grad_output, ggi, weight, *args, [False, True, False])[1]
    return d_grad_output, d_input, d_weight, None, None, None, None, None


def _conv2d_double_backward(ctx, *grads):
    return _conv_double_backward(torch.ops.cnnext.conv2d, torch.ops.cnnext.conv2d_backward, ctx, *grads)


torch.library.register_autograd("cnnext::conv2d_backward", _conv2d_double_backward,
                                setup_context=_conv2d_backward_setup_context)


# ---- conv3d: the conv2d formulas with a depth axis ----

@torch.library.register_fake("cnnext::conv3d")
def _conv3d_fake(input, weight, bias, stride, padding, dilation, groups):
    return _conv_fake_output("conv3d", input, weight, stride, padding, dilation)


@torch.library.register_fake("cnnext::conv3d_backward")
def _conv3d_backward_fake(grad_output, input, weight, stride, padding, dilation, groups, output_mask):
    return _conv2d_backward_fake(grad_output, input, weight, stride, padding, dilation, groups, output_mask)


def _conv3d_backward(ctx, grad_output):
    input, weight = ctx.saved_tensors
    mask = list(ctx.needs_input_grad[:3])
    grads = torch.ops.cnnext.conv3d_backward(grad_output, input, weight, *ctx.conv_args, mask)
    return tuple(g if wanted else None for g, wanted in zip(grads, mask)) + (None,) * 4


torch.library.register_autograd("cnnext::conv3d", _conv3d_backward, setup_context=_conv2d_setup_context)


def _conv3d_double_backward(ctx, *grads):
    return _conv_double_backward(torch.ops.cnnext.conv3d, torch.ops.cnnext.conv3d_backward, ctx, *grads)


torch.library.register_autograd("cnnext::conv3d_backward", _conv3d_double_backward,
                                setup_context=_conv2d_backward_setup_context)


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


# Double backward: each pooling backward is linear in grad_output (and does not depend on the input's values),
# so its derivative is the adjoint map: a gather through the indices for max, average pooling again for avg.

def _nonempty_max_windows(size, out_size, kernel, stride, padding, dilation, device):
    """For each output position along one axis, whether its max-pool window holds an input position
    (a window can hold none where dilation steps over an input smaller than the dilation)."""
    starts = torch.arange(out_size, device=device) * stride - padding
    first_inside = torch.where(starts < 0, starts + (-starts + dilation - 1) // dilation * dilation, starts)
    return first_inside < torch.clamp(starts + (kernel - 1) * dilation + 1, max=size)


def _max_pool2d_backward_setup_context(ctx, inputs, output):
    grad_output, input, indices, kernel_size, stride, padding, dilation, ceil_mode = inputs
    ctx.save_for_backward(indices)
    ctx.pool_geometry = (input.shape[2], input.shape[3], kernel_size, stride, padding, dilation)


def _max_pool2d_double_backward(ctx, grad_grad_input):
    (indices,) = ctx.saved_tensors
    height, width, kernel_size, stride, padding, dilation = ctx.pool_geometry
    if grad_grad_input is None or not ctx.needs_input_grad[0]:
        return (None,) * 8
    rows, cols = (_nonempty_max_windows(size, indices.shape[2 + i], kernel_size[i], stride[i], padding[i],
                                        dilation[i], indices.device)
                  for i, size in enumerate((height, width)))
    nonempty = rows[:, None] & cols[None, :]
    flat = indices.flatten(2).clamp(0, height * width - 1)
    picked = grad_grad_input.flatten(2).gather(2, flat).view(indices.shape)
    return (torch.where(nonempty, picked, torch.zeros_like(picked)),) + (None,) * 7


torch.library.register_autograd("cnnext::max_pool2d_backward", _max_pool2d_double_backward,
                                setup_context=_max_pool2d_backward_setup_context)


def _avg_pool2d_backward_setup_context(ctx, inputs, output):
    ctx.pool_args = inputs[2:]


def _avg_pool2d_double_backward(ctx, grad_grad_input):
    if grad_grad_input is None or not ctx.needs_input_grad[0]:
        return (None,) * 8
    return (torch.ops.cnnext.avg_pool2d(grad_grad_input, *ctx.pool_args),) + (None,) * 7


torch.library.register_autograd("cnnext::avg_pool2d_backward", _avg_pool2d_double_backward,
                                setup_context=_avg_pool2d_backward_setup_context)
