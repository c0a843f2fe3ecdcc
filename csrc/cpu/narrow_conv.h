// Narrow convolutions on the CPU: at most 12 output channels (AOD-Net's layers and their grad inputs; a
// 3-channel stem's grad input). With vectors over output channels, 3 channels leave 13 of 16 lanes idle. Here the
// vectors run along the output rows instead: a tile is a piece of one output row (up to 16 * kMaxNarrowVectors
// pixels) in up to kernels::kMaxNarrowRows output channels, summed over the taps and input channels of
// zero-padded NCHW planes (tap_tile with its roles swapped: rows are output channels, the weights are
// broadcast). Channels-last inputs are read in place and the result transposed back by registers. Stride 1
// along W only (the vectors read consecutive pixels); float32.
#pragma once
#include <ATen/ATen.h>

#include "../conv_params.h"

namespace cnnext::cpu {

bool narrow_forward_applies(const at::Tensor& input, const Conv3dShape& s, const Conv3dParams& p);
// out = conv(input, weight) + bias (bias may be null) in `format`; input and weight float32, [N, C, (D,) H, W].
at::Tensor narrow_forward(const at::Tensor& input, const at::Tensor& weight, const float* bias, const Conv3dShape& s,
                          const Conv3dParams& p, at::MemoryFormat format);

}  // namespace cnnext::cpu
