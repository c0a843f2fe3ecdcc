"""The lab's hand-written convolution: 2-D cross-correlation as plain loops over output pixels.

Slow on purpose and easy to check by eye. Every step is ordinary tensor indexing, so autograd
differentiates it; it is the independent reference the tests hold the C++/CUDA kernels to.
"""
import torch
from torch import nn

from .functional import _pair, same_padding


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """out[n, k, i, j] = bias[k] + sum over c, r, s of x_padded[n, c, i*sh + r*dh, j*sw + s*dw] * w[k, c, r, s]."""
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    k_out, c_per_group, kh, kw = weight.shape
    if padding == "valid":
        padding = 0
    pads = same_padding((kh, kw), dilation) if padding == "same" else [(p, p) for p in _pair(padding, "padding")]
    n, c, h, w = x.shape
    padded = x.new_zeros(n, c, h + sum(pads[0]), w + sum(pads[1]))
    padded[:, :, pads[0][0]:pads[0][0] + h, pads[1][0]:pads[1][0] + w] = x
    span_h, span_w = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    out_h = (padded.shape[2] - span_h) // stride[0] + 1
    out_w = (padded.shape[3] - span_w) // stride[1] + 1
    k_per_group = k_out // groups
    rows = []
    for i in range(out_h):
        row = []
        for j in range(out_w):
            top, left = i * stride[0], j * stride[1]
            window = padded[:, :, top:top + span_h:dilation[0], left:left + span_w:dilation[1]]  # [N, C, kh, kw]
            pixel = []
            for g in range(groups):
                x_g = window[:, g * c_per_group:(g + 1) * c_per_group]
                w_g = weight[g * k_per_group:(g + 1) * k_per_group]
                pixel.append((x_g.unsqueeze(1) * w_g.unsqueeze(0)).sum(dim=(2, 3, 4)))  # [N, Kg]
            row.append(torch.cat(pixel, dim=1))
        rows.append(torch.stack(row, dim=-1))
    out = torch.stack(rows, dim=-2)  # [N, K, out_h, out_w]
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out.squeeze(0) if unbatched else out


class NaiveConv2d(nn.Conv2d):
    """nn.Conv2d whose forward is the hand-written loop convolution above (for tiny teaching runs)."""

    def _conv_forward(self, input, weight, bias):
        if self.padding_mode != "zeros":
            input = nn.functional.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return conv2d(input, weight, bias, self.stride, 0, self.dilation, self.groups)
        return conv2d(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)
