// 1x1 convolutions of NCHW (NCDHW) tensors as matrix products on the tap kernel, with no layout conversion: an
// image's output [K, pixels] = weight [K, C] x input [C, pixels]. The tap kernel's rows are output channels (the
// weights broadcast), its vectors run along the pixels of an input row [C][pixels], and each tile is stored
// straight into the output's planes. The direct path would copy the input to channels-last and the output back,
// two passes over tensors that, at 112x112 pixels, are larger than the caches.
#pragma once
#include <ATen/ATen.h>

#include "../conv_params.h"

namespace cnnext::cpu {

bool pointwise_forward_applies(const at::Tensor& input, const Conv3dShape& s, const Conv3dParams& p,
                               at::MemoryFormat format);
// out = conv(input, weight) + bias (bias may be null), contiguous; input contiguous float32.
at::Tensor pointwise_forward(const at::Tensor& input, const at::Tensor& weight, const float* bias,
                             const Conv3dShape& s, const Conv3dParams& p);
// The grad input of a 1x1 layer: the 1x1 convolution of grad_output (contiguous) with weight transposed, for the
// grad-input problem `grad_shape` (grad_input_problem: input and output channels swapped).
at::Tensor pointwise_grad_input(const at::Tensor& grad_output, const at::Tensor& weight,
                                const Conv3dShape& grad_shape);

}  // namespace cnnext::cpu
