// Depthwise convolutions of NCHW tensors, plane by plane, with no layout conversion (the channels-last tap kernel
// would transpose the input to NHWC and the output back, two passes over tensors that, at 112x112 pixels, are
// larger than the caches). A task copies one (image, channel) plane into a zero-padded buffer that stays in L1/L2
// and convolves it with that channel's kernel: vectors run along the output rows, six rows per tile; for 3x3, 5x5
// and 7x7 kernels without dilation each input vector is loaded once and used by every output row that reads it
// (the first version loaded it once per row and was load-bound: 1.44 ms on 8 x 144 x 56 x 56, where reuse gives
// 0.49).
#pragma once
#include <ATen/ATen.h>

#include "../conv_params.h"

namespace cnnext::cpu {

bool depthwise_forward_applies(const at::Tensor& input, const Conv3dShape& s, const Conv3dParams& p,
                               at::MemoryFormat format);
// out = conv(input, weight) + bias (bias may be null), contiguous; input float32 [N, C, H, W], weight [C, 1, R, S].
at::Tensor depthwise_forward(const at::Tensor& input, const at::Tensor& weight, const float* bias,
                             const Conv3dShape& s, const Conv3dParams& p);

}  // namespace cnnext::cpu
